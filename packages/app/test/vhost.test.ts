// vhost_blk / vhost_scsi in storkit tgt (two reactors): every vhost_* method through the RPC
// socket, controllers placed on the reactor their cpumask names, data through storkit's
// virtio-user initiator on one controller checked through another controller (on the other
// reactor) over the same bdev, bad params, and a save_config round trip.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { IoStatus } from '@storkit/block';
import { expect } from 'chai';

import type { SpdkConfig } from '../src/index.js';
import {
  Host,
  mallocConfig,
  pattern,
  removeDir,
  runVhostTarget,
  type VhostRunning,
} from './vhost-helpers.js';

type Ctrl = {
  ctrlr: string;
  cpumask: string;
  socket: string;
  delay_base_us: number;
  iops_threshold: number;
  reactor_core: number;
  sessions: unknown[];
  stats: { requests: number };
  backend_specific: {
    block?: { bdev: string; readonly: boolean; packed_ring: boolean };
    scsi?: { scsi_dev_num: number; luns: { bdev_name: string }[] }[];
  };
};

async function rejects(p: Promise<unknown>, re: RegExp): Promise<number> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.match(re);
    return (e as { code: number }).code;
  }
  throw new Error(`expected a failure matching ${re}`);
}

/** What save_config must reproduce: the controllers without their live state. */
function shape(list: Ctrl[]): unknown[] {
  return list
    .map(({ sessions: _s, ...c }) => {
      const { stats: _st, ...rest } = c as Ctrl & { stats?: unknown };
      return rest;
    })
    .sort((a, b) => a.ctrlr.localeCompare(b.ctrlr));
}

describe('storkit tgt: vhost_blk and vhost_scsi', function () {
  this.timeout(60_000);
  let t: VhostRunning;
  let host: Host;

  before(async () => {
    t = await runVhostTarget(
      mallocConfig([
        { name: 'Malloc0', mib: 16 },
        { name: 'Malloc1', mib: 8, blockSize: 4096 },
      ]),
    );
    host = new Host();
  });
  after(async () => {
    host.close();
    await t.stop();
    removeDir(t.dir);
  });

  it('creates blk controllers on the reactor their cpumask names, sockets in the vhost dir', async () => {
    expect(
      await t.rpc.call('vhost_create_blk_controller', {
        ctrlr: 'vhost.0',
        dev_name: 'Malloc0',
        cpumask: '0x2',
      }),
    ).to.equal(true);
    expect(
      await t.rpc.call('vhost_create_blk_controller', { ctrlr: 'vhost.1', dev_name: 'Malloc0' }),
    ).to.equal(true);
    // First core of the mask the app has: [1,3] → core 1 (core 3 is not ours).
    await t.rpc.call('vhost_create_blk_controller', {
      ctrlr: 'vhost.ro',
      dev_name: 'Malloc0',
      cpumask: '[1,3]',
      readonly: true,
    });
    const all = await t.rpc.call<Ctrl[]>('vhost_get_controllers');
    const by = new Map(all.map((c) => [c.ctrlr, c]));
    expect(by.get('vhost.0')?.reactor_core).to.equal(1);
    expect(by.get('vhost.0')?.cpumask).to.equal('0x2');
    expect(by.get('vhost.1')?.reactor_core).to.equal(0);
    expect(by.get('vhost.1')?.cpumask).to.equal('0x3');
    expect(by.get('vhost.ro')?.reactor_core).to.equal(1);
    expect(by.get('vhost.ro')?.backend_specific.block).to.deep.include({ bdev: 'Malloc0', readonly: true });
    for (const n of ['vhost.0', 'vhost.1', 'vhost.ro']) {
      expect(by.get(n)?.socket).to.equal(join(t.dir, n));
      expect(existsSync(join(t.dir, n))).to.equal(true);
    }
  });

  it('serves the same bdev on both reactors: written through vhost.0 (core 1), read through vhost.1 (core 0)', async () => {
    const a = await host.attach(join(t.dir, 'vhost.0'), 'a');
    const b = await host.attach(join(t.dir, 'vhost.1'), 'b');
    expect(a.numBlocks * a.blockSize).to.equal(16 << 20);
    const data = pattern(1 << 20, 7);
    await host.write(a, 3 << 20, data);
    const back = await host.read(b, 3 << 20, 1 << 20);
    expect(Buffer.from(back).equals(Buffer.from(data))).to.equal(true);
    // And the other way round, at an unaligned-to-MiB offset.
    const d2 = pattern(64 << 10, 8);
    await host.write(b, 5 * 4096, d2);
    expect(Buffer.from(await host.read(a, 5 * 4096, 64 << 10)).equals(Buffer.from(d2))).to.equal(true);
    const [c0] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: 'vhost.0' });
    expect(c0.sessions).to.have.length(1);
    // 1 MiB in 128 KiB writes plus 64 KiB read back: at least 9 requests on this connection.
    expect(c0.stats.requests).to.be.at.least(9);
    // Connected: delete is refused (SPDK: EBUSY).
    await rejects(t.rpc.call('vhost_delete_controller', { ctrlr: 'vhost.0' }), /connected frontend/);
    host.detach(a);
    host.detach(b);
  });

  it('a readonly controller refuses writes and still reads', async () => {
    const ro = await host.attach(join(t.dir, 'vhost.ro'), 'ro');
    expect(ro.readOnly).to.equal(true);
    const st = await host.io((cb) => ro.writev([new Uint8Array(512)], 0, 1, cb, null));
    expect(st).to.not.equal(IoStatus.SUCCESS);
    const back = await host.read(ro, 3 << 20, 4096);
    expect(Buffer.from(back).equals(Buffer.from(pattern(1 << 20, 7).subarray(0, 4096)))).to.equal(true);
    host.detach(ro);
  });

  it('packed_ring offers packed virtqueues; a split-ring frontend is still served', async () => {
    await t.rpc.call('vhost_create_blk_controller', {
      ctrlr: 'vhost.p',
      dev_name: 'Malloc0',
      cpumask: '0x2',
      packed_ring: true,
      num_queues: 2,
    });
    const [c] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: 'vhost.p' });
    expect(c.backend_specific.block?.packed_ring).to.equal(true);
    const p = await host.attach(join(t.dir, 'vhost.p'), 'p');
    expect(p.queueCount).to.equal(1);
    const d = pattern(64 << 10, 9);
    await host.write(p, 10 << 20, d);
    expect(Buffer.from(await host.read(p, 10 << 20, 64 << 10)).equals(Buffer.from(d))).to.equal(true);
    host.detach(p);
  });

  it('vhost-scsi: targets added (explicit and -1), listed, removed', async () => {
    await t.rpc.call('vhost_create_scsi_controller', { ctrlr: 'vhost.s0', cpumask: '0x2' });
    expect(
      await t.rpc.call('vhost_scsi_controller_add_target', {
        ctrlr: 'vhost.s0',
        scsi_target_num: -1,
        bdev_name: 'Malloc1',
      }),
    ).to.equal(0);
    expect(
      await t.rpc.call('vhost_scsi_controller_add_target', {
        ctrlr: 'vhost.s0',
        scsi_target_num: 3,
        bdev_name: 'Malloc0',
      }),
    ).to.equal(3);
    expect(
      await t.rpc.call('vhost_scsi_controller_add_target', {
        ctrlr: 'vhost.s0',
        scsi_target_num: 5,
        bdev_name: 'Malloc0',
      }),
    ).to.equal(5);
    await t.rpc.call('vhost_scsi_controller_remove_target', { ctrlr: 'vhost.s0', scsi_target_num: 5 });
    const [s] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: 'vhost.s0' });
    expect(s.reactor_core).to.equal(1);
    expect(s.backend_specific.scsi?.map((x) => [x.scsi_dev_num, x.luns[0].bdev_name])).to.deep.equal([
      [0, 'Malloc1'],
      [3, 'Malloc0'],
    ]);
  });

  it('coalescing is applied on the controller and shown', async () => {
    await t.rpc.call('vhost_controller_set_coalescing', {
      ctrlr: 'vhost.0',
      delay_base_us: 50,
      iops_threshold: 60000,
    });
    const [c] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: 'vhost.0' });
    expect([c.delay_base_us, c.iops_threshold]).to.deep.equal([50, 60000]);
  });

  it('refuses bad params with a message naming the problem, creating nothing', async () => {
    const before = (await t.rpc.call<Ctrl[]>('vhost_get_controllers')).length;
    const c = (p: unknown) => t.rpc.call('vhost_create_blk_controller', p);
    await rejects(c({ ctrlr: 'x', dev_name: 'NoSuch' }), /no bdev NoSuch/);
    await rejects(c({ ctrlr: 'vhost.0', dev_name: 'Malloc0' }), /already exists/);
    await rejects(c({ ctrlr: 'x', dev_name: 'Malloc0', cpumask: '0x4' }), /no core the app runs on/);
    await rejects(c({ ctrlr: 'x', dev_name: 'Malloc0', cpumask: 'zz' }), /cpumask/);
    await rejects(c({ ctrlr: 'a/b', dev_name: 'Malloc0' }), /ctrlr/);
    await rejects(c({ ctrlr: 'x' }), /dev_name/);
    await rejects(c({ ctrlr: 'x', dev_name: 'Malloc0', packed_ring: 'yes' }), /packed_ring/);
    await rejects(c({ ctrlr: 'x', dev_name: 'Malloc0', bogus: 1 }), /bogus/);
    await rejects(c({ ctrlr: 'x', dev_name: 'Malloc0', num_queues: 0 }), /num_queues/);
    const add = (p: unknown) => t.rpc.call('vhost_scsi_controller_add_target', p);
    await rejects(add({ ctrlr: 'vhost.0', scsi_target_num: 0, bdev_name: 'Malloc0' }), /not a vhost-scsi/);
    await rejects(add({ ctrlr: 'vhost.s0', scsi_target_num: 0, bdev_name: 'Malloc0' }), /exists/);
    await rejects(add({ ctrlr: 'vhost.s0', scsi_target_num: 8, bdev_name: 'Malloc0' }), /scsi_target_num/);
    await rejects(add({ ctrlr: 'vhost.s0', scsi_target_num: 1, bdev_name: 'Nope' }), /no bdev Nope/);
    await rejects(
      add({ ctrlr: 'none', scsi_target_num: 1, bdev_name: 'Malloc0' }),
      /no vhost controller none/,
    );
    await rejects(
      t.rpc.call('vhost_scsi_controller_remove_target', { ctrlr: 'vhost.s0', scsi_target_num: 6 }),
      /no target 6/,
    );
    await rejects(
      t.rpc.call('vhost_controller_set_coalescing', {
        ctrlr: 'vhost.0',
        delay_base_us: -1,
        iops_threshold: 0,
      }),
      /delay_base_us/,
    );
    await rejects(t.rpc.call('vhost_delete_controller', { ctrlr: 'none' }), /no vhost controller none/);
    await rejects(t.rpc.call('vhost_get_controllers', { name: 'none' }), /no vhost controller none/);
    expect((await t.rpc.call<Ctrl[]>('vhost_get_controllers')).length).to.equal(before);
  });

  it('save_config writes vhost_blk and vhost_scsi sections that rebuild the same controllers', async () => {
    const saved = await t.rpc.call<SpdkConfig>('save_config');
    const names = saved.subsystems.map((s) => s.subsystem);
    expect(names).to.include.members(['vhost_blk', 'vhost_scsi']);
    const blk = saved.subsystems.find((s) => s.subsystem === 'vhost_blk')?.config ?? [];
    expect(blk.map((e) => e.method)).to.include('vhost_controller_set_coalescing');
    const want = shape(await t.rpc.call<Ctrl[]>('vhost_get_controllers'));
    // The same config in a second target (its own vhost dir; the sockets keep their names).
    const t2 = await runVhostTarget(saved);
    try {
      const got = shape(await t2.rpc.call<Ctrl[]>('vhost_get_controllers'));
      const rebased = (want as Ctrl[]).map((c) => ({ ...c, socket: join(t2.dir, c.ctrlr) }));
      expect(got).to.deep.equal(rebased);
    } finally {
      await t2.stop();
      removeDir(t2.dir);
    }
  });

  it('a bdev deleted under its controllers: blk requests fail from then on, the SCSI target goes', async () => {
    await t.rpc.call('bdev_malloc_create', { name: 'Gone', num_blocks: 8192, block_size: 512 });
    await t.rpc.call('vhost_create_blk_controller', { ctrlr: 'hr.blk', dev_name: 'Gone', cpumask: '0x2' });
    await t.rpc.call('vhost_create_scsi_controller', { ctrlr: 'hr.scsi' });
    await t.rpc.call('vhost_scsi_controller_add_target', {
      ctrlr: 'hr.scsi',
      scsi_target_num: 1,
      bdev_name: 'Gone',
    });
    const d = await host.attach(join(t.dir, 'hr.blk'), 'hr');
    await host.write(d, 0, pattern(4096, 5));
    // The delete completes: every vhost descriptor of the bdev was closed on REMOVE.
    await t.rpc.call('bdev_malloc_delete', { name: 'Gone' });
    expect(await host.io((cb) => d.writev([new Uint8Array(4096)], 0, 8, cb, null))).to.not.equal(
      IoStatus.SUCCESS,
    );
    expect(await host.io((cb) => d.readv([new Uint8Array(4096)], 0, 8, cb, null))).to.not.equal(
      IoStatus.SUCCESS,
    );
    const [s] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: 'hr.scsi' });
    expect(s.backend_specific.scsi).to.deep.equal([]);
    host.detach(d);
    for (const n of ['hr.blk', 'hr.scsi']) {
      for (let i = 0; ; i++) {
        try {
          await t.rpc.call('vhost_delete_controller', { ctrlr: n });
          break;
        } catch (e) {
          if (i > 50 || !/connected/.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  });

  it('deletes controllers (socket removed) and releases their bdevs', async () => {
    for (const n of ['vhost.0', 'vhost.1', 'vhost.ro', 'vhost.p', 'vhost.s0']) {
      // A frontend that just hung up may still be seen as connected for one control poll.
      for (let i = 0; ; i++) {
        try {
          await t.rpc.call('vhost_delete_controller', { ctrlr: n });
          break;
        } catch (e) {
          if (i > 50 || !/connected/.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      expect(existsSync(join(t.dir, n))).to.equal(false);
    }
    expect(await t.rpc.call('vhost_get_controllers')).to.deep.equal([]);
    // No descriptor left open: the bdevs can be deleted.
    await t.rpc.call('bdev_malloc_delete', { name: 'Malloc1' });
    await t.rpc.call('bdev_malloc_delete', { name: 'Malloc0' });
  });
});
