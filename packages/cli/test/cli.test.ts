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

describe('cli', () => {
  it('lists commands with --help and exits 0', async () => {
    const r = await storkit('--help');
    expect(r.code).to.equal(0);
    expect(r.stdout)
      .to.match(/usage: storkit <command>/)
      .and.match(/demo/);
  });

  it('is a command after npm ci: npx storkit runs it from the checkout (node_modules/.bin/storkit)', async () => {
    const root = fileURLToPath(new URL('../../../../', import.meta.url));
    const r = await run('npx', ['--no-install', 'storkit', '--help'], { cwd: root });
    expect(r.stdout).to.match(/usage: storkit <command>/);
    // From a package directory too, as the README's commands are typed.
    const sub = await run('npx', ['--no-install', 'storkit', '--help'], { cwd: `${root}packages/app` });
    expect(sub.stdout).to.match(/usage: storkit <command>/);
  });

  it('exits 2 with usage on no command and on an unknown one', async () => {
    expect((await storkit()).code).to.equal(2);
    const r = await storkit('no-such-thing');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/unknown command 'no-such-thing'/);
  });

  it('demo pins workers and checksums', async () => {
    const r = await storkit('demo', '--mib', '4');
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/worker pinned to CPU 0: runs on CPU 0/);
    expect(r.stdout).to.match(/CRC32C \(hardware\) of 4 MiB: 0x[0-9a-f]{8}/);
  });

  it('demo rejects bad options with exit 2', async () => {
    const r = await storkit('demo', '--mib', 'lots');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/--mib takes/);
  });
});
