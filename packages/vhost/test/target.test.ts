import * as fs from 'node:fs';
import * as net from 'node:net';

import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { VhostTarget } from '../src/index.js';
import { Blk, bits, Feature } from '../src/spec.js';
import { harness, pattern, sockPath } from './helpers.js';
import { DATA, MockBlk } from './mock.js';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'none';
}

describe('VhostTarget: SPDK vhost RPC surface', () => {
  it('creates, lists, configures and deletes blk and scsi controllers with SPDK parameter names', async () => {
    const h = harness();
    const dir = sockPath('dir').replace(/\.sock$/, '');
    await import('node:fs').then((fs) => fs.mkdirSync(dir, { recursive: true }));
    const bdevs = new Map([
      ['Malloc0', new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 })],
      ['Malloc1', new RamBackend({ name: 'Malloc1', blockSize: 4096, numBlocks: 256 })],
    ]);
    const t = new VhostTarget({ socketDir: dir, lookupBdev: (n) => bdevs.get(n) });
    const rpc = t.rpcHandlers() as Record<string, (p: unknown) => unknown>;
    try {
      expect(
        rpc.vhost_create_blk_controller({ ctrlr: 'vhost.0', dev_name: 'Malloc0', cpumask: '0x1' }),
      ).to.equal(true);
      expect(rpc.vhost_create_scsi_controller({ ctrlr: 'vhost.1' })).to.equal(true);
      expect(
        rpc.vhost_scsi_controller_add_target({ ctrlr: 'vhost.1', scsi_target_num: 0, bdev_name: 'Malloc1' }),
      ).to.equal(0);
      expect(
        rpc.vhost_scsi_controller_add_target({ ctrlr: 'vhost.1', scsi_target_num: -1, bdev_name: 'Malloc0' }),
      ).to.equal(1);
      expect(code(() => rpc.vhost_create_blk_controller({ ctrlr: 'vhost.0', dev_name: 'Malloc0' }))).to.equal(
        'EEXIST',
      );
      expect(code(() => rpc.vhost_create_blk_controller({ ctrlr: 'x', dev_name: 'Nope' }))).to.equal(
        'ENOENT',
      );
      expect(
        code(() => rpc.vhost_create_blk_controller({ ctrlr: 'y', dev_name: 'Malloc0', cpumask: 'zz' })),
      ).to.equal('EINVAL');
      // packed_ring as the app takes it: offered in GET_FEATURES and shown in the listing.
      expect(
        rpc.vhost_create_blk_controller({ ctrlr: 'vhost.p', dev_name: 'Malloc0', packed_ring: true }),
      ).to.equal(true);
      expect(t.controller('vhost.p').offeredFeatures & bits(Feature.RingPacked)).to.equal(
        bits(Feature.RingPacked),
      );
      expect(t.controller('vhost.0').offeredFeatures & bits(Feature.RingPacked)).to.equal(0n);
      expect(
        (rpc.vhost_get_controllers({ name: 'vhost.p' }) as { backend_specific: { block: object } }[])[0]
          .backend_specific.block,
      ).to.deep.include({ packed_ring: true });
      expect(rpc.vhost_delete_controller({ ctrlr: 'vhost.p' })).to.equal(true);
      // Another target may not take over a socket a live controller listens on...
      const other = new VhostTarget({ socketDir: dir, lookupBdev: (n) => bdevs.get(n) });
      expect(
        code(() => other.vhost_create_blk_controller({ ctrlr: 'vhost.0', dev_name: 'Malloc1' })),
      ).to.equal('EADDRINUSE');
      // ...but replaces a socket file nobody listens on any more (its owner died).
      const stale = net.createServer().listen(`${dir}/vhost.stale`);
      await new Promise((r) => stale.once('listening', r));
      // Closing a node:net server unlinks its file: take a hard link to keep a stale one.
      fs.linkSync(`${dir}/vhost.stale`, `${dir}/vhost.2`);
      await new Promise((r) => stale.close(r));
      expect(fs.statSync(`${dir}/vhost.2`).isSocket()).to.equal(true);
      expect(other.vhost_create_blk_controller({ ctrlr: 'vhost.2', dev_name: 'Malloc1' })).to.equal(true);
      other.close();
      expect(code(() => rpc.vhost_create_blk_controller({ ctrlr: '../evil', dev_name: 'Malloc0' }))).to.equal(
        'EINVAL',
      );
      expect(
        code(() =>
          rpc.vhost_scsi_controller_add_target({
            ctrlr: 'vhost.1',
            scsi_target_num: 0,
            bdev_name: 'Malloc0',
          }),
        ),
      ).to.equal('EEXIST');
      expect(
        code(() =>
          rpc.vhost_scsi_controller_add_target({
            ctrlr: 'vhost.1',
            scsi_target_num: 8,
            bdev_name: 'Malloc0',
          }),
        ),
      ).to.equal('EINVAL');
      expect(
        code(() =>
          rpc.vhost_scsi_controller_add_target({
            ctrlr: 'vhost.0',
            scsi_target_num: 2,
            bdev_name: 'Malloc0',
          }),
        ),
      ).to.equal('EINVAL');
      expect(
        rpc.vhost_controller_set_coalescing({ ctrlr: 'vhost.0', delay_base_us: 80, iops_threshold: 12000 }),
      ).to.equal(true);
      expect(
        code(() =>
          rpc.vhost_controller_set_coalescing({ ctrlr: 'vhost.0', delay_base_us: -1, iops_threshold: 0 }),
        ),
      ).to.equal('EINVAL');
      const list = rpc.vhost_get_controllers({}) as Record<string, unknown>[];
      expect(list.map((c) => c.ctrlr)).to.deep.equal(['vhost.0', 'vhost.1']);
      expect(list[0]).to.deep.include({
        ctrlr: 'vhost.0',
        cpumask: '0x1',
        delay_base_us: 80,
        iops_threshold: 12000,
        socket: `${dir}/vhost.0`,
      });
      expect(list[0].backend_specific).to.deep.equal({
        block: { readonly: false, bdev: 'Malloc0', packed_ring: false, transport: 'vhost_user_blk' },
      });
      expect(list[1].backend_specific).to.deep.equal({
        scsi: [
          { scsi_dev_num: 0, id: 0, target_name: 'Target 0', luns: [{ id: 0, bdev_name: 'Malloc1' }] },
          { scsi_dev_num: 1, id: 1, target_name: 'Target 1', luns: [{ id: 0, bdev_name: 'Malloc0' }] },
        ],
      });
      expect(rpc.vhost_scsi_controller_remove_target({ ctrlr: 'vhost.1', scsi_target_num: 1 })).to.equal(
        true,
      );
      expect(
        code(() => rpc.vhost_scsi_controller_remove_target({ ctrlr: 'vhost.1', scsi_target_num: 1 })),
      ).to.equal('ENOENT');
      // A connected controller cannot be deleted (SPDK: EBUSY); it serves I/O meanwhile.
      const m = await MockBlk.open(h, `${dir}/vhost.0`);
      expect(code(() => rpc.vhost_delete_controller({ ctrlr: 'vhost.0' }))).to.equal('EBUSY');
      m.mem.set(pattern(512, 1), DATA + 4096);
      m.q.add(m.request(Blk.T.Out, 1, 512));
      await m.complete(1);
      expect(m.status()).to.equal(Blk.S.Ok);
      // The first controller still owns its socket (the probe connection came and went).
      expect(t.controller('vhost.0').stats.requests).to.equal(1);
      m.q.add(m.request(Blk.T.In, 1, 512));
      m.q.add(m.request(Blk.T.In, 2, 512));
      await m.complete(2);
      expect(t.controller('vhost.0').stats.requests).to.equal(3);
      expect(t.controller('vhost.0').stats.interrupts).to.be.greaterThan(0);
      m.close();
      for (let i = 0; i < 200 && t.controller('vhost.0').connected; i++) {
        h.advanceTime(250);
        h.pollOnce();
        await new Promise((r) => setImmediate(r));
      }
      expect(rpc.vhost_delete_controller({ ctrlr: 'vhost.0' })).to.equal(true);
      expect(rpc.vhost_delete_controller({ ctrlr: 'vhost.1' })).to.equal(true);
      expect(code(() => rpc.vhost_get_controllers({ name: 'vhost.0' }))).to.equal('ENOENT');
      expect(rpc.vhost_get_controllers({})).to.deep.equal([]);
    } finally {
      t.close();
      h.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
