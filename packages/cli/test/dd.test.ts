import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { expect } from 'chai';

import { parseDd, progressLine } from '../src/commands/dd.js';

const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
const run = promisify(execFile);
const MiB = 1024 * 1024;

async function storkit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [main, ...args]);
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

describe('storkit dd', function () {
  this.timeout(60_000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-dd-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function config(name: string, calls: object[]): string {
    const p = join(dir, name);
    writeFileSync(p, JSON.stringify({ subsystems: [{ subsystem: 'bdev', config: calls }] }));
    return p;
  }

  it("parses spdk_dd's options and refuses bad ones", () => {
    const a = parseDd(['--if', 'x', '--of', 'y', '--bs', '8192', '--count', '3', '--skip', '1', '--qd', '4']);
    expect(a).to.include({ inFile: 'x', outFile: 'y', bs: 8192, count: 3, skip: 1, seek: 0, qd: 4 });
    expect(() => parseDd(['--if', 'x'])).to.throw(/give one of --of and --ob/);
    expect(() => parseDd(['--if', 'x', '--ib', 'b', '--of', 'y'])).to.throw(/give one of --if and --ib/);
    expect(() => parseDd(['--if', 'x', '--ob', 'b'])).to.throw(/need --json CONFIG/);
    expect(() => parseDd(['--if', 'x', '--of', 'y', '--bs', '0'])).to.throw(/--bs needs an integer >= 1/);
    expect(() => parseDd(['--if', 'x', '--of', 'y', '--frobnicate'])).to.throw(/unknown option/);
  });

  it("prints spdk_dd's progress line (kB below a MiB, MB above)", () => {
    expect(progressLine(512 * 1024, 768 * 1024, 1, false)).to.equal('Copying: 512/768 [kB] (512 kBps)');
    expect(progressLine(3 * MiB, 3 * MiB, 0.5, true)).to.equal('Copying: 3/3 [MB] (average 6 MBps)');
  });

  it('copies a file into a thin lvol (created by the config) and, in a new process, back out by examine', async () => {
    const disk = join(dir, 'disk');
    await run('truncate', ['-s', `${32 * MiB}`, disk]);
    const input = join(dir, 'in');
    const data = pattern(3 * MiB + 4096, 7);
    writeFileSync(input, data);
    const aio = { method: 'bdev_aio_create', params: { name: 'Aio0', filename: disk, block_size: 4096 } };
    const make = config('make.json', [
      aio,
      { method: 'bdev_lvol_create_lvstore', params: { bdev_name: 'Aio0', lvs_name: 'lvs', cluster_sz: MiB } },
      {
        method: 'bdev_lvol_create',
        params: { lvs_name: 'lvs', lvol_name: 'thin', size_in_mib: 8, thin_provision: true },
      },
    ]);
    const w = await storkit(
      'dd',
      '--json',
      make,
      '--if',
      input,
      '--ob',
      'lvs/thin',
      '--bs',
      '65536',
      '--qd',
      '4',
    );
    expect(w.stderr).to.equal('');
    expect(w.code).to.equal(0);
    // Not a terminal: only the final line, spdk_dd's.
    expect(w.stdout).to.match(/^Copying: 3\/3 \[MB\] \(average \d+ MBps\)\n$/);

    const found = config('found.json', [aio]);
    const output = join(dir, 'out');
    const r = await storkit(
      'dd',
      '--json',
      found,
      '--ib',
      'lvs/thin',
      '--of',
      output,
      '--count',
      '2',
      '--skip',
      '8',
      '--bs',
      `${MiB / 4}`,
    );
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    expect(readFileSync(output).equals(data.subarray(2 * MiB, 2 * MiB + MiB / 2))).to.equal(true);

    // A block past the data written reads as zeros (thin: never allocated).
    const tail = join(dir, 'tail');
    const t = await storkit(
      'dd',
      '--json',
      found,
      '--ib',
      'lvs/thin',
      '--of',
      tail,
      '--count',
      '1',
      '--skip',
      '7',
      '--bs',
      `${MiB}`,
    );
    expect(t.code).to.equal(0);
    expect(readFileSync(tail).equals(Buffer.alloc(MiB))).to.equal(true);
  });

  it('draws the progress line in place on a terminal', async () => {
    const input = join(dir, 'tty-in');
    writeFileSync(input, pattern(2 * MiB, 3));
    const output = join(dir, 'tty-out');
    // script(1) gives dd a pseudo-terminal for stdout.
    const cmd = [process.execPath, main, 'dd', '--if', input, '--of', output, '--bs', '4096', '--qd', '1']
      .map((s) => `'${s}'`)
      .join(' ');
    const { stdout } = await run('script', ['-qec', cmd, '/dev/null']);
    expect(stdout).to.include('\r\x1b[2KCopying: ');
    expect(stdout).to.match(/Copying: 2\/2 \[MB\] \(average \d+ MBps\)\r?\n$/);
    expect(readFileSync(output).equals(readFileSync(input))).to.equal(true);
  });

  it('fails with a clear message for a bdev that is not there (exit 1)', async () => {
    const c = config('none.json', [
      { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 256, block_size: 512 } },
    ]);
    const r = await storkit('dd', '--json', c, '--ib', 'lvs/nope', '--of', join(dir, 'x'));
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/storkit dd: .*lvs\/nope/);
  });
});
