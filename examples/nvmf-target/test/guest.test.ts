// The Linux kernel's own initiators against two examples, in ONE QEMU (TCG) guest boot: the nvmf-target
// example (nvme-tcp, as `nvme connect` drives it, two CPUs so two I/O queues) and a disk of the
// vhost-blk example (vhost-user-blk-pci on the controller of reactor 1). Each example runs as its
// README says; the guest writes, reads back and compares on both. Peers: qemu-system-x86,
// linux-image-amd64, busybox-static (.ci/run installs them), and the initramfs builder of
// ../shared/peers/guest.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { freePort, MAIN, type Started, start } from './helpers.js';

/** The vhost-blk example, built next to this one in the repository. */
const VHOST = fileURLToPath(new URL('../../../vhost-blk/dist/src/main.js', import.meta.url));
const WORKLOAD = fileURLToPath(new URL('../../test/guest/workload.sh', import.meta.url));
const MKINITRD = fileURLToPath(new URL('../../../../../shared/peers/guest/mkinitrd.sh', import.meta.url));
const NQN = 'nqn.2016-06.io.storkit:cnode1';

/** One JSON-RPC call on a Unix socket (the examples print theirs). */
function rpc(path: string, method: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path, () => s.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method })}\n`));
    let buf = '';
    s.on('data', (d) => {
      buf += d;
      try {
        const r = JSON.parse(buf);
        s.end();
        if (r.error) reject(new Error(r.error.message));
        else resolve(r.result);
      } catch {
        // not all of it yet
      }
    });
    s.on('error', reject);
  });
}

function kernel(): string {
  const k = readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .sort()
    .pop();
  if (k === undefined) throw new Error('no kernel in /boot (.ci/run installs linux-image-amd64)');
  return `/boot/${k}`;
}

/** Boot the guest; resolve with its GUEST-RESULT lines and its log. */
function boot(qemuArgs: string[], timeoutMs: number): Promise<{ results: string[]; log: string }> {
  const q = spawn('qemu-system-x86_64', qemuArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const onData = (d: Buffer) => (log += d.toString('latin1').replace(/\r/g, ''));
  q.stdout.on('data', onData);
  q.stderr.on('data', onData);
  const timer = setTimeout(() => q.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    q.on('exit', () => {
      clearTimeout(timer);
      const results = log
        .split('\n')
        .filter((l) => l.includes('GUEST-RESULT: '))
        .map((l) => l.slice(l.indexOf('GUEST-RESULT: ') + 14).trim());
      resolve({ results, log });
    });
  });
}

describe('examples/nvmf-target and examples/vhost-blk: the kernel initiators in one QEMU guest', function () {
  this.timeout(400_000);
  const started: Started[] = [];
  let dir = '';

  before(() => {
    for (const p of [VHOST, MKINITRD])
      if (!existsSync(p))
        throw new Error(`missing ${p} (the vhost-blk example is built by tsc -b; peers: ../shared/peers)`);
    execFileSync('qemu-system-x86_64', ['--version']); // throws if QEMU is missing
    dir = mkdtempSync(join(tmpdir(), 'examples-guest-'));
  });
  after(async () => {
    for (const s of started) s.child.kill('SIGINT');
    for (const s of started) await s.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it('nvme-tcp and vhost-user-blk: written, read back and compared by the guest', async () => {
    const port = await freePort();
    const nvmf = await start(MAIN, ['-m', '0x3', '-p', String(port), '--mib', '64']);
    started.push(nvmf);
    expect(nvmf.lines).to.include(`    nvme connect -t tcp -a 127.0.0.1 -s ${port} -n ${NQN}`);
    expect(nvmf.lines).to.include.members([
      '  core 0: poll group nvmf_tgt_poll_group_000',
      '  core 1: poll group nvmf_tgt_poll_group_001',
    ]);
    const vhost = await start(VHOST, ['-m', '0x3', '--mib', '32', '-S', dir]);
    started.push(vhost);
    // The printed QEMU line of the controller on core 1, as a user would paste it.
    const line = vhost.lines.find((l) => l.includes(`path=${dir}/vhost.1 `));
    expect(line, vhost.lines.join('\n')).to.be.a('string');
    const vhostArgs = line!
      .trim()
      .replace(/^qemu-system-x86_64 /, '')
      .replace(/ \.\.\.$/, '')
      .split(' ');

    const initrd = join(dir, 'initrd.cpio.gz');
    execFileSync(MKINITRD, [initrd, WORKLOAD], {
      env: {
        ...process.env,
        MODS: 'virtio_blk failover net_failover virtio_net nvme-core nvme-fabrics nvme-tcp',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // biome-ignore format: one QEMU option per line
    const r = await boot([
      '-accel', 'tcg', '-smp', '2', ...vhostArgs,
      '-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0',
      '-kernel', kernel(), '-initrd', initrd,
      '-append', `console=ttyS0 quiet panic=-1 nqn=${NQN} port=${port}`,
      '-nographic', '-no-reboot',
    ], 300_000);
    const got = (prefix: string) => r.results.find((l) => l.startsWith(prefix));
    expect(r.results, r.log.slice(-4000)).to.include.members(['nvme disconnected']);
    expect(got('END rc=0'), r.log.slice(-4000)).to.be.a('string');
    expect(got('vhost dev=')).to.equal(`vhost dev=/dev/vda size=${32 << 20} queues=2`);
    expect(got('vhost verify OK')).to.be.a('string');
    expect(got('nvme serial=')).to.equal(`nvme serial=STORKIT-EXAMPLE-01 size=${64 << 20} queues=2`);
    expect(got('nvme verify OK')).to.be.a('string');
    // One poll group per reactor; the kernel's admin queue and two I/O queues landed on them.
    const stats = (await rpc(rpcSocket(nvmf.lines), 'nvmf_get_stats')) as {
      poll_groups: { name: string; admin_qpairs: number; io_qpairs: number }[];
    };
    expect(stats.poll_groups.map((g) => g.name)).to.deep.equal([
      'nvmf_tgt_poll_group_000',
      'nvmf_tgt_poll_group_001',
    ]);
    expect(stats.poll_groups.reduce((n, g) => n + g.admin_qpairs, 0)).to.equal(1);
    expect(stats.poll_groups.reduce((n, g) => n + g.io_qpairs, 0)).to.equal(2);
  });
});

function rpcSocket(lines: string[]): string {
  const l = lines.find((x) => x.trim().startsWith('JSON-RPC:'));
  return l!.trim().split(/\s+/)[1];
}
