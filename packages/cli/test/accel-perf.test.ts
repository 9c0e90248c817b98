import { execFile } from 'node:child_process';
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

/** The Total row: transfers/s, MiB/s, failed, miscompares. */
function total(stdout: string): number[] {
  const m = /^Total\s+(\d+)\/s\s+(\d+) MiB\/s\s+(\d+)\s+(\d+)$/m.exec(stdout);
  expect(m, stdout).to.not.equal(null);
  return (m as RegExpExecArray).slice(1).map(Number);
}

describe('storkit accel-perf and ioat-perf', function () {
  this.timeout(120_000);

  it('every workload runs and verifies on the software module, in SPDK accel_perf shape', async () => {
    for (const w of ['copy', 'fill', 'crc32c', 'copy_crc32c', 'compare', 'dualcast']) {
      const r = await storkit('accel-perf', '-w', w, '-t', '1', '-q', '16', '-y');
      expect(r.stderr, w).to.equal('');
      expect(r.code, w).to.equal(0);
      expect(r.stdout).to.match(new RegExp(`Workload Type:  ${w}\\n`));
      expect(r.stdout).to.match(/Module:\s+software/);
      const [xfers, , failed, mis] = total(r.stdout);
      expect(xfers, w).to.be.greaterThan(100);
      expect([failed, mis], w).to.deep.equal([0, 0]);
    }
  });

  it('crc32c over vectors, -P miscompares counted right, two threads', async () => {
    const v = await storkit('accel-perf', '-w', 'crc32c', '-C', '4', '-o', '1k', '-t', '1', '-T', '2', '-y');
    expect(v.code).to.equal(0);
    expect(v.stdout).to.match(/^0,1\s/m);
    // Half the compares differ on purpose: each one that reports a miscompare is right.
    const p = await storkit('accel-perf', '-w', 'compare', '-P', '50', '-t', '1');
    expect(p.code).to.equal(0);
    expect(total(p.stdout)[3]).to.equal(0);
  });

  it('-M ioat runs copies on the I/OAT device model; -M offload runs crc32c in the pool', async () => {
    const io = await storkit('accel-perf', '-w', 'copy', '-M', 'ioat', '--ioat-model', '1', '-t', '1', '-y');
    expect(io.stderr).to.equal('');
    expect(io.code).to.equal(0);
    expect(io.stdout).to.match(/Module:\s+ioat/);
    expect(total(io.stdout)[0]).to.be.greaterThan(100);
    const off = await storkit(
      'accel-perf',
      '-w',
      'crc32c',
      '-M',
      'offload',
      '-o',
      '1m',
      '-q',
      '4',
      '-t',
      '1',
      '-y',
    );
    expect(off.code).to.equal(0);
    expect(off.stdout).to.match(/Module:\s+offload/);
    expect(total(off.stdout).slice(2)).to.deep.equal([0, 0]);
    const none = await storkit('accel-perf', '-w', 'copy', '-M', 'ioat', '-t', '1');
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/--ioat-model/);
  });

  it('ioat-perf drives the model and reports the driver CPU per operation', async () => {
    const r = await storkit('ioat-perf', '--ioat-model', '1', '-t', '1', '-o', '4k', '-b', '8');
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/^Total\s+\d+\s+\d+$/m);
    expect(r.stdout).to.match(/driver CPU per operation: submission [\d.]+ ns/);
    const f = await storkit('ioat-perf', '--ioat-model', '1', '-t', '1', '-w', 'fill', '-o', '64k');
    expect(f.code).to.equal(0);
  });
});
