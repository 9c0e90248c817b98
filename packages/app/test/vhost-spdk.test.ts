// SPDK's own virtio-user initiator (SPDK v24.01's bdevperf with bdev_virtio_attach_controller)
// against storkit tgt's vhost-user-blk and vhost-user-scsi controllers, created with SPDK's
// parameters only (no storkit num_queues): SPDK's initiator opens a request queue per channel and
// asks for two, which storkit offers by default. bdevperf writes and verifies every block it reads.
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { expect } from 'chai';

import { mallocConfig, removeDir, runVhostTarget, type VhostRunning } from './vhost-helpers.js';

const run = promisify(execFile);
/** SPDK's programs: `<repo root>/../shared/peers/spdk/bin` (../shared/peers/README.md). */
const BDEVPERF = fileURLToPath(new URL('../../../../../shared/peers/spdk/bin/bdevperf', import.meta.url));

/** bdevperf -w verify over one virtio-user bdev; the Total line's IOPS and failures per second. */
async function bdevperf(
  dir: string,
  attach: Record<string, unknown>,
): Promise<{ iops: number; fails: number; out: string }> {
  const cfg = join(dir, `${attach.name}.json`);
  writeFileSync(
    cfg,
    JSON.stringify({
      subsystems: [
        { subsystem: 'bdev', config: [{ method: 'bdev_virtio_attach_controller', params: attach }] },
      ],
    }),
  );
  // -g -s 512: DPDK memory a vhost-user backend can map; no core lock (another SPDK program of the
  // machine may hold one); the tool on core 1 while the target's reactor 0 serves the controller.
  const args = [
    '--json',
    cfg,
    ...'-g -s 512 --disable-cpumask-locks -q 32 -o 4096 -w verify -t 3 -m 0x2'.split(' '),
  ];
  const { stdout } = await run(BDEVPERF, args, { timeout: 120_000, maxBuffer: 16 << 20 });
  const total = /^\s*Total\s*:\s*([\d.]+)\s+[\d.]+\s+([\d.]+)/m.exec(stdout);
  expect(total, stdout).to.not.equal(null);
  return { iops: Number(total![1]), fails: Number(total![2]), out: stdout };
}

describe("storkit tgt: SPDK's virtio-user initiator (bdevperf) on vhost-blk and vhost-scsi", function () {
  this.timeout(300_000);
  let t: VhostRunning;

  before(async () => {
    if (!existsSync(BDEVPERF))
      throw new Error(`SPDK's bdevperf missing: ${BDEVPERF} (see ../shared/peers/README.md)`);
    t = await runVhostTarget(
      mallocConfig([
        { name: 'Malloc0', mib: 64 },
        { name: 'Malloc1', mib: 64, blockSize: 4096 },
      ]),
    );
    await t.rpc.call('vhost_create_blk_controller', {
      ctrlr: 'vhost.0',
      dev_name: 'Malloc0',
      cpumask: '0x1',
    });
    await t.rpc.call('vhost_create_scsi_controller', { ctrlr: 'vhost.1', cpumask: '0x1' });
    await t.rpc.call('vhost_scsi_controller_add_target', {
      ctrlr: 'vhost.1',
      scsi_target_num: 0,
      bdev_name: 'Malloc1',
    });
  });
  after(async () => {
    await t?.stop();
    if (t) removeDir(t.dir);
  });

  it('vhost-blk: two request queues (vq_count 2) of 512 entries, verified random I/O', async () => {
    const r = await bdevperf(t.dir, {
      name: 'VirtioBlk0',
      trtype: 'user',
      traddr: join(t.dir, 'vhost.0'),
      dev_type: 'blk',
      vq_count: 2,
      vq_size: 512,
    });
    expect(r.iops, r.out).to.be.greaterThan(0);
    expect(r.fails, r.out).to.equal(0);
    expect(r.out).to.not.match(/miscompare/i);
  });

  it('vhost-scsi: target 0 (4096-byte blocks) as bdev VirtioScsi0t0, verified random I/O', async () => {
    const r = await bdevperf(t.dir, {
      name: 'VirtioScsi0',
      trtype: 'user',
      traddr: join(t.dir, 'vhost.1'),
      dev_type: 'scsi',
      vq_count: 2,
      vq_size: 512,
    });
    expect(r.out).to.match(/VirtioScsi0t0/);
    expect(r.iops, r.out).to.be.greaterThan(0);
    expect(r.fails, r.out).to.equal(0);
    expect(r.out).to.not.match(/miscompare/i);
  });
});
