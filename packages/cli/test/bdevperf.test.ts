import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { expect } from 'chai';

const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
const run = promisify(execFile);

async function storkit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [main, ...args]);
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('storkit bdevperf', function () {
  this.timeout(60_000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-bdevperf-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function config(calls: object[]): string {
    const p = join(dir, `${calls.length}-${Date.now()}.json`);
    writeFileSync(p, JSON.stringify({ subsystems: [{ subsystem: 'bdev', config: calls }] }));
    return p;
  }

  it('rejects bad options with usage (exit 2)', async () => {
    expect((await storkit('bdevperf', '-q', '8')).stderr).to.match(/--json CONFIG is required/);
    const c = config([]);
    const r = await storkit('bdevperf', '--json', c, '-w', 'sideways');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/-w takes randread\|randwrite/);
  });

  it('runs verify on a malloc bdev and prints progress and the SPDK-style table', async () => {
    const c = config([
      { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
    ]);
    const r = await storkit(
      'bdevperf',
      '--json',
      c,
      '-q',
      '8',
      '-o',
      '4k',
      '-w',
      'verify',
      '-t',
      '2',
      '-m',
      '0x1',
    );
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/Running I\/O for 2 seconds/);
    expect(r.stdout.match(/ IOPS, /g)).to.have.length(2);
    expect(r.stdout).to.match(/Job: Malloc0 \(Core Mask 0x1\)/);
    const total = /^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)/m.exec(r.stdout);
    expect(Number(total?.[1])).to.be.greaterThan(100);
    expect(Number(total?.[3])).to.equal(0); // Fail/s
  });

  it('fails (exit 1) with a clear message for a config method it lacks', async () => {
    const c = config([{ method: 'bdev_nvme_attach_controller', params: { name: 'N' } }]);
    const r = await storkit('bdevperf', '--json', c, '-w', 'randread', '-t', '1');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/bdev_nvme_attach_controller is not supported/);
  });
});
