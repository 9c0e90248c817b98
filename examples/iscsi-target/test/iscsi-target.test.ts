// The example as its README runs it (the command, two reactors, on a free port), then the command
// lines it prints, run as printed: libiscsi's iscsi-ls and iscsi-inq (package libiscsi-bin).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Start the example; resolve with what it printed once it printed its last banner line. */
function start(
  args: string[],
): Promise<{ child: ChildProcess; lines: string[]; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let out = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d) => (out += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('stop:')) resolve({ child, lines: out.split('\n'), exited });
    });
    void exited.then((code) =>
      reject(new Error(`iscsi-target exited (${code}) before it was ready:\n${out}`)),
    );
  });
}

describe('examples/iscsi-target', function () {
  this.timeout(120_000);

  it('serves a LUN on two reactors that libiscsi lists and inquires with the printed commands', async () => {
    const port = await freePort();
    const { child, lines, exited } = await start(['-m', '0x3', '-p', String(port), '--mib', '64']);
    try {
      expect(lines[0]).to.equal(
        'iscsi-target: iqn.2016-06.io.storkit:disk1, LUN 0 = Malloc0 (64 MiB, 512-byte blocks)',
      );
      expect(lines[1]).to.include('reactors on cores 0,1');
      const printed = (tool: string) => {
        const l = lines.find((x) => x.trim().startsWith(`${tool} `));
        if (l === undefined) throw new Error(`no ${tool} line in:\n${lines.join('\n')}`);
        const [cmd, ...args] = l.trim().split(/\s+/);
        return execFileSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
      };
      const ls = printed('iscsi-ls');
      expect(ls).to.include(`Target:iqn.2016-06.io.storkit:disk1 Portal:127.0.0.1:${port},1`);
      expect(ls).to.match(/Lun:0\s+Type:DIRECT_ACCESS \(Size:6[34]M\)/);
      const inq = printed('iscsi-inq');
      expect(inq).to.include('Peripheral Device Type:DIRECT_ACCESS');
      expect(inq).to.match(/Vendor:STORKIT/);
      // Several logins: SO_REUSEPORT spreads them over the reactors; each one must work.
      for (let i = 0; i < 4; i++) expect(printed('iscsi-inq')).to.match(/Product:storkit disk/);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).to.equal(0);
  });

  it('refuses bad arguments with exit 2 and a usage line', () => {
    let err: { status: number; stderr: string } | undefined;
    try {
      execFileSync(process.execPath, [MAIN, '-p', 'seventy'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      err = e as { status: number; stderr: string };
    }
    expect(err?.status).to.equal(2);
    expect(err?.stderr).to.include('usage: iscsi-target');
  });
});
