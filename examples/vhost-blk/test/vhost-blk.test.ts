// The example as its README runs it (two reactors, a controller on each), then SPDK's own
// virtio-user initiator (SPDK v24.01's bdevperf, bdev_virtio_attach_controller) writing and
// verifying through each controller. A QEMU guest on these controllers runs in
// examples/nvmf-target/test/guest.test.ts, which boots one guest for both examples.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
/** SPDK's programs: `<repo root>/../shared/peers/spdk/bin` (../shared/peers/README.md). */
const BDEVPERF = fileURLToPath(new URL('../../../../../shared/peers/spdk/bin/bdevperf', import.meta.url));

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
    void exited.then((code) => reject(new Error(`vhost-blk exited (${code}) before it was ready:\n${out}`)));
  });
}

describe('examples/vhost-blk', function () {
  this.timeout(180_000);
  let dir = '';
  before(() => {
    if (!existsSync(BDEVPERF))
      throw new Error(`SPDK's bdevperf missing: ${BDEVPERF} (see ../shared/peers/README.md)`);
    dir = mkdtempSync(join(tmpdir(), 'vhost-blk-test-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("serves a controller per reactor that SPDK's virtio-user initiator writes and verifies", async () => {
    const { child, lines, exited } = await start(['-m', '0x3', '--mib', '64', '-S', dir]);
    try {
      expect(lines[0]).to.equal('vhost-blk: 2 vhost-user-blk controllers, 64 MiB RAM disk each');
      expect(lines).to.include(`  vhost.0 on core 0: Malloc0 at ${dir}/vhost.0`);
      expect(lines).to.include(`  vhost.1 on core 1: Malloc1 at ${dir}/vhost.1`);
      const qemu = lines.filter((l) => l.trim().startsWith('qemu-system-x86_64'));
      expect(qemu[0]).to.include(`-chardev socket,id=vhost0,path=${dir}/vhost.0 -device vhost-user-blk-pci`);
      expect(qemu[0]).to.include('memory-backend-memfd,id=mem,size=512M,share=on');
      for (const ctrl of ['vhost.0', 'vhost.1']) {
        const cfg = join(dir, `${ctrl}.json`);
        // bdevperf may open two channels: two queues.
        writeFileSync(
          cfg,
          JSON.stringify({
            subsystems: [
              {
                subsystem: 'bdev',
                config: [
                  {
                    method: 'bdev_virtio_attach_controller',
                    params: {
                      name: 'VirtioBlk0',
                      trtype: 'user',
                      traddr: join(dir, ctrl),
                      dev_type: 'blk',
                      vq_count: 2,
                      vq_size: 128,
                    },
                  },
                ],
              },
            ],
          }),
        );
        // -g -s 512: DPDK memory that vhost-user can share; no core lock files (another SPDK program
        // of the machine may hold core 0's).
        const args = '-g -s 512 --disable-cpumask-locks -q 16 -o 4096 -w verify -t 2 -m 0x1'.split(' ');
        const out = execFileSync(BDEVPERF, ['--json', cfg, ...args], {
          encoding: 'utf8',
          timeout: 90_000,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        // Total: IOPS MiB/s Fail/s TO/s avg min max; verify fails the job on any mismatch.
        const total = /^\s*Total\s*:\s*([\d.]+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)/m.exec(out);
        expect(total, out).to.not.equal(null);
        expect(Number(total![1]), `${ctrl} IOPS`).to.be.greaterThan(0);
        expect(Number(total![2]), `${ctrl} failures/s`).to.equal(0);
        expect(out).to.not.match(/miscompare|error/i);
      }
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).to.equal(0);
  });
});
