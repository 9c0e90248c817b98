import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const SCRIPT = fileURLToPath(new URL('./fixtures/app-signal.js', import.meta.url));

function runUntilSignal(
  sig: NodeJS.Signals,
): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: Record<string, unknown>[] = [];
    let buf = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const l = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        lines.push(l);
        // Let traffic flow for a moment, then signal while messages are in flight.
        if (l.started && !sent) {
          sent = true;
          setTimeout(() => child.kill(sig), 200);
        }
        i = buf.indexOf('\n');
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, lines }));
  });
}

describe('orderly shutdown on signals', function () {
  this.timeout(60_000);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig}: fini in reverse order on each reactor, nothing leaked, workers gone, exit 0`, async () => {
      const { code, lines } = await runUntilSignal(sig);
      expect(code).to.equal(0);
      const end = lines.find((l) => 'result' in l)!;
      expect(end.result).to.deep.equal({ code: 0, leaked: [] });
      expect(end.workersAlive).to.equal(0);
      const reports = lines.filter((l) => 'report' in l).map((l) => l.report as Record<string, unknown>);
      for (const r of [0, 1]) {
        const order = reports
          .filter((x) => x.reactor === r && ('fini' in x || x.kind === 'traffic'))
          .map((x) => (x.fini as string) ?? x.kind);
        expect(order).to.deep.equal(['traffic', 'second', 'first']);
      }
    });
  }
});
