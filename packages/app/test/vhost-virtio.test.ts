// The virtio bdev module in storkit tgt (two reactors): bdev_virtio_attach_controller (trtype
// user, dev_type blk) over storkit's own vhost-blk socket and over qemu-storage-daemon's, with data
// checked end to end. The virtio bdev is exported again through vhost controllers on each
// reactor: on its owner reactor I/O goes straight to the initiator, on the other one it is
// forwarded to the owner through the shared staging memory.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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

type Bdev = {
  name: string;
  num_blocks: number;
  block_size: number;
  driver_specific: { virtio?: { owner_reactor: number } };
};

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.match(re);
    return;
  }
  throw new Error(`expected a failure matching ${re}`);
}

function qsdAvailable(): boolean {
  try {
    execFileSync('qemu-storage-daemon', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('storkit tgt: virtio bdevs (bdev_virtio_attach_controller, trtype user)', function () {
  this.timeout(60_000);
  let t: VhostRunning;
  let host: Host;
  const blk = (ctrlr: string, dev_name: string, cpumask: string) =>
    t.rpc.call('vhost_create_blk_controller', { ctrlr, dev_name, cpumask });

  before(async () => {
    t = await runVhostTarget(mallocConfig([{ name: 'Malloc0', mib: 16 }]));
    host = new Host();
  });
  after(async () => {
    host.close();
    await t.stop();
    removeDir(t.dir);
  });

  it("attaches to storkit's own vhost-blk controller; data crosses owner and forwarding reactors intact", async () => {
    // Two request queues offered: the initiator uses both (vq_count 2).
    await t.rpc.call('vhost_create_blk_controller', {
      ctrlr: 'vhost.0',
      dev_name: 'Malloc0',
      cpumask: '0x2',
      num_queues: 2,
    });
    const names = await t.rpc.call('bdev_virtio_attach_controller', {
      name: 'VirtioBlk0',
      trtype: 'user',
      traddr: join(t.dir, 'vhost.0'),
      dev_type: 'blk',
      vq_count: 2,
      vq_size: 64,
    });
    expect(names).to.deep.equal(['VirtioBlk0']);
    const [b] = await t.rpc.call<Bdev[]>('bdev_get_bdevs', { name: 'VirtioBlk0' });
    expect([b.num_blocks, b.block_size]).to.deep.equal([(16 << 20) / 512, 512]);
    expect(b.driver_specific.virtio?.owner_reactor).to.equal(0);
    // The virtio bdev served again: on reactor 0 (its owner) and on reactor 1 (forwarded).
    await blk('v.owner', 'VirtioBlk0', '0x1');
    await blk('v.fwd', 'VirtioBlk0', '0x2');
    await blk('m.direct', 'Malloc0', '0x1');
    const own = await host.attach(join(t.dir, 'v.owner'), 'own');
    const fwd = await host.attach(join(t.dir, 'v.fwd'), 'fwd');
    const direct = await host.attach(join(t.dir, 'm.direct'), 'direct');
    // Forwarded writes reach Malloc0.
    const a = pattern(2 << 20, 21);
    await host.write(fwd, 1 << 20, a);
    expect(Buffer.from(await host.read(direct, 1 << 20, 2 << 20)).equals(Buffer.from(a))).to.equal(true);
    // Direct writes are read through the owner path and the forwarding path.
    const c = pattern(1 << 20, 22);
    await host.write(direct, 8 << 20, c);
    expect(Buffer.from(await host.read(own, 8 << 20, 1 << 20)).equals(Buffer.from(c))).to.equal(true);
    expect(Buffer.from(await host.read(fwd, 8 << 20, 1 << 20)).equals(Buffer.from(c))).to.equal(true);
    // Owner-path writes, read back through the forwarding path.
    const d = pattern(512 << 10, 23);
    await host.write(own, 12 << 20, d);
    expect(Buffer.from(await host.read(fwd, 12 << 20, 512 << 10)).equals(Buffer.from(d))).to.equal(true);
    // Many forwarded I/Os at once (more than the staging slots: NOMEM retried by the bdev layer).
    const many = pattern(64 * 4096, 24);
    const sts = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        host.io((cb) =>
          fwd.writev([many.subarray(i * 4096, (i + 1) * 4096)], (4 << 20) / 512 + i * 8, 8, cb, null),
        ),
      ),
    );
    expect(sts.every((s) => s === IoStatus.SUCCESS)).to.equal(true);
    expect(Buffer.from(await host.read(direct, 4 << 20, many.length)).equals(Buffer.from(many))).to.equal(
      true,
    );
    // Write zeroes and unmap over more than a staging slot, forwarded and direct.
    expect(fwd.unmapSupported).to.equal(true);
    // 12 MiB: more than the whole staging area past this reactor's first slot.
    expect(await host.io((cb) => fwd.writeZeroes((2 << 20) / 512, (12 << 20) / 512, cb, null))).to.equal(
      IoStatus.SUCCESS,
    );
    const z = await host.read(direct, 2 << 20, 12 << 20);
    expect(Buffer.from(z).equals(Buffer.alloc(12 << 20))).to.equal(true);
    expect(await host.io((cb) => own.writeZeroes((8 << 20) / 512, (1 << 20) / 512, cb, null))).to.equal(
      IoStatus.SUCCESS,
    );
    expect(Buffer.from(await host.read(fwd, 8 << 20, 1 << 20)).equals(Buffer.alloc(1 << 20))).to.equal(true);
    expect(await host.io((cb) => fwd.unmap((12 << 20) / 512, (1 << 20) / 512, cb, null))).to.equal(
      IoStatus.SUCCESS,
    );
    expect(await host.io((cb) => fwd.flush(0, 0, cb, null))).to.equal(IoStatus.SUCCESS);
    for (const x of [own, fwd, direct]) host.detach(x);
  });

  it('lists devices, writes them to save_config, refuses bad params', async () => {
    const devs =
      await t.rpc.call<{ name: string; vq_count: number; vq_size: number }[]>('bdev_virtio_get_devices');
    expect(devs.map((x) => [x.name, x.vq_count, x.vq_size])).to.deep.equal([['VirtioBlk0', 2, 64]]);
    const saved = await t.rpc.call<SpdkConfig>('save_config');
    // In the bdev section ahead of the bdev modules' own entries, as SPDK saves it.
    const sec = saved.subsystems.find((s) => s.subsystem === 'bdev');
    expect(sec?.config?.[0]).to.deep.equal({
      method: 'bdev_virtio_attach_controller',
      params: {
        name: 'VirtioBlk0',
        trtype: 'user',
        traddr: join(t.dir, 'vhost.0'),
        dev_type: 'blk',
        vq_count: 2,
        vq_size: 64,
      },
    });
    expect(saved.subsystems.map((s) => s.subsystem)).to.not.include('bdev_virtio');
    const at = (p: unknown) => t.rpc.call('bdev_virtio_attach_controller', p);
    const ok = { name: 'V9', trtype: 'user', traddr: join(t.dir, 'vhost.0'), dev_type: 'blk' };
    await rejects(at({ ...ok, trtype: 'pcie' }), /trtype/);
    await rejects(at({ ...ok, dev_type: 'scsi' }), /dev_type/);
    await rejects(at({ ...ok, vq_size: 100 }), /power of two/);
    await rejects(at({ ...ok, name: 'VirtioBlk0' }), /already exists/);
    await rejects(at({ ...ok, traddr: join(t.dir, 'nothing-here') }), /nothing-here/);
    await rejects(at({ ...ok, name: 'Malloc0' }), /exists/);
    await rejects(t.rpc.call('bdev_virtio_detach_controller', { name: 'V9' }), /no virtio device V9/);
    const bdevs = await t.rpc.call<Bdev[]>('bdev_get_bdevs');
    expect(bdevs.map((b) => b.name).sort()).to.deep.equal(['Malloc0', 'VirtioBlk0']);
  });

  it('detaches: the bdev goes from every reactor (its vhost exports hear the removal)', async () => {
    await t.rpc.call('bdev_virtio_detach_controller', { name: 'VirtioBlk0' });
    const bdevs = await t.rpc.call<Bdev[]>('bdev_get_bdevs');
    expect(bdevs.map((b) => b.name)).to.deep.equal(['Malloc0']);
    expect(await t.rpc.call('bdev_virtio_get_devices')).to.deep.equal([]);
    for (const n of ['v.owner', 'v.fwd', 'm.direct'])
      await t.rpc.call('vhost_delete_controller', { ctrlr: n });
    // vhost.0 lost its frontend: it can be deleted now.
    for (let i = 0; ; i++) {
      try {
        await t.rpc.call('vhost_delete_controller', { ctrlr: 'vhost.0' });
        break;
      } catch (e) {
        if (i > 50) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });

  it("attaches to qemu-storage-daemon's vhost-user-blk export: its file's bytes, both ways", async () => {
    // .ci/run installs qemu-system-x86 (which brings qemu-storage-daemon).
    if (!qsdAvailable()) throw new Error('qemu-storage-daemon is needed');
    const img = join(t.dir, 'qsd.img');
    const content = pattern(8 << 20, 31);
    writeFileSync(img, content);
    const sock = join(t.dir, 'qsd.sock');
    const qsd = spawn(
      'qemu-storage-daemon',
      [
        '--blockdev',
        `driver=file,node-name=f,filename=${img}`,
        '--export',
        `type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=${sock},writable=on`,
      ],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; !existsSync(sock); i++) {
        if (i > 200) throw new Error('qemu-storage-daemon did not create its socket');
        await new Promise((r) => setTimeout(r, 25));
      }
      await t.rpc.call('bdev_virtio_attach_controller', {
        name: 'Qsd0',
        trtype: 'user',
        traddr: sock,
        dev_type: 'blk',
      });
      const [b] = await t.rpc.call<Bdev[]>('bdev_get_bdevs', { name: 'Qsd0' });
      expect(b.num_blocks * b.block_size).to.equal(8 << 20);
      // Owner is reactor 1 (round robin); export on reactor 0 forwards, on reactor 1 goes direct.
      expect(b.driver_specific.virtio?.owner_reactor).to.equal(1);
      await blk('q.fwd', 'Qsd0', '0x1');
      await blk('q.own', 'Qsd0', '0x2');
      const fwd = await host.attach(join(t.dir, 'q.fwd'), 'qf');
      const own = await host.attach(join(t.dir, 'q.own'), 'qo');
      expect(
        Buffer.from(await host.read(fwd, 0, 1 << 20)).equals(Buffer.from(content.subarray(0, 1 << 20))),
      ).to.equal(true);
      expect(
        Buffer.from(await host.read(own, 7 << 20, 1 << 20)).equals(Buffer.from(content.subarray(7 << 20))),
      ).to.equal(true);
      const w = pattern(1 << 20, 32);
      await host.write(fwd, 2 << 20, w);
      await host.write(own, 5 << 20, w);
      host.detach(fwd);
      host.detach(own);
      for (const n of ['q.fwd', 'q.own']) {
        for (let i = 0; ; i++) {
          try {
            await t.rpc.call('vhost_delete_controller', { ctrlr: n });
            break;
          } catch (e) {
            if (i > 50) throw e;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      }
      // Saved with the device attached; reloaded below once this target let go of qsd.
      const saved = await t.rpc.call<SpdkConfig>('save_config');
      await t.rpc.call('bdev_virtio_detach_controller', { name: 'Qsd0' });
      const file = readFileSync(img);
      expect(file.subarray(2 << 20, 3 << 20).equals(Buffer.from(w)), 'forwarded write in the file').to.equal(
        true,
      );
      expect(file.subarray(5 << 20, 6 << 20).equals(Buffer.from(w)), 'owner write in the file').to.equal(
        true,
      );
      expect(file.subarray(0, 2 << 20).equals(Buffer.from(content.subarray(0, 2 << 20)))).to.equal(true);
      // save_config round trip: a second target attaches from the saved config and reads the file.
      const t2 = await runVhostTarget(saved);
      try {
        const [b2] = await t2.rpc.call<Bdev[]>('bdev_get_bdevs', { name: 'Qsd0' });
        expect(b2.num_blocks * b2.block_size).to.equal(8 << 20);
        await t2.rpc.call('vhost_create_blk_controller', { ctrlr: 'q2', dev_name: 'Qsd0', cpumask: '0x2' });
        const q2 = await host.attach(join(t2.dir, 'q2'), 'q2');
        expect(Buffer.from(await host.read(q2, 2 << 20, 1 << 20)).equals(Buffer.from(w))).to.equal(true);
        host.detach(q2);
      } finally {
        await t2.stop();
        removeDir(t2.dir);
      }
    } finally {
      qsd.kill('SIGTERM');
      await new Promise((r) => qsd.once('exit', r));
    }
  });
});
