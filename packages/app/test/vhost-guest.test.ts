// A QEMU TCG guest whose disk is served by `storkit tgt` (two reactors): the host writes a pattern
// into the bdev through one vhost-blk controller (reactor 0, storkit's virtio-user initiator), the
// guest reads it through another controller on reactor 1 (vhost-user-blk-pci, then
// vhost-user-scsi-pci), writes its own pattern and verifies it; the host reads the guest's bytes
// back through the bdev. Two guest boots in all.
import { createHash } from 'node:crypto';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  bootGuest,
  field,
  type GuestRun,
  guestAvailable,
  Host,
  mallocConfig,
  pattern,
  removeDir,
  runVhostTarget,
  type VhostRunning,
} from './vhost-helpers.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** What the guest's vhost-tgt.sh writes over [4M, 8M). */
function guestPattern(): Buffer {
  let s = '';
  for (let i = 0; i < 8192; i++) s += `${`storkit-tgt vhost sector ${i}`.padEnd(511)}\n`;
  return Buffer.from(s, 'latin1');
}

type Ctrl = {
  ctrlr: string;
  reactor_core: number;
  stats: { connections: number; requests: number; protocolErrors: number };
};

describe('storkit tgt: a QEMU guest (TCG) on vhost-user disks', function () {
  this.timeout(300_000);
  let t: VhostRunning;
  let host: Host;

  before(() => {
    if (!guestAvailable()) {
      // .ci/run installs qemu-system-x86, linux-image-amd64 and busybox-static.
      throw new Error('qemu-system-x86_64, a kernel in /boot and /bin/busybox are needed');
    }
  });
  beforeEach(async () => {
    t = await runVhostTarget(
      mallocConfig([
        { name: 'Malloc0', mib: 32 },
        { name: 'Malloc1', mib: 32 },
      ]),
    );
    host = new Host();
  });
  afterEach(async () => {
    host.close();
    await t.stop();
    removeDir(t.dir);
  });

  /** Host writes the head, the guest runs, the host checks the guest's bytes. */
  async function run(type: 'blk' | 'scsi', bdev: string, guestCtrl: string, seed: number): Promise<GuestRun> {
    // The host's view of the bdev: a blk controller on reactor 0.
    await t.rpc.call('vhost_create_blk_controller', { ctrlr: 'host.0', dev_name: bdev, cpumask: '0x1' });
    const dev = await host.attach(join(t.dir, 'host.0'));
    const head = pattern(8 << 20, seed);
    await host.write(dev, 0, head);
    const r = await bootGuest(join(t.dir, guestCtrl), type, 'vhost-tgt.sh');
    expect(r.results, r.log.slice(-3000)).to.include('END rc=0');
    expect(field(r, 'dev=')).to.equal(`${type === 'blk' ? '/dev/vda' : '/dev/sda'} size=${32 << 20} lbs=512`);
    expect(field(r, 'md5 head:')).to.equal(md5(head));
    const pat = guestPattern();
    expect(field(r, 'verify OK md5=')).to.equal(md5(pat));
    const back = await host.read(dev, 4 << 20, 4 << 20);
    expect(Buffer.from(back).equals(pat), 'the guest pattern through the bdev').to.equal(true);
    const [c] = await t.rpc.call<Ctrl[]>('vhost_get_controllers', { name: guestCtrl });
    expect(c.reactor_core).to.equal(1);
    expect(c.stats.connections).to.equal(1);
    expect(c.stats.protocolErrors).to.equal(0);
    return r;
  }

  it('vhost-user-blk-pci on reactor 1: the guest reads the host bytes, the host reads the guest bytes', async () => {
    await t.rpc.call('vhost_create_blk_controller', {
      ctrlr: 'vm.blk',
      dev_name: 'Malloc0',
      cpumask: '0x2',
      num_queues: 2,
    });
    await run('blk', 'Malloc0', 'vm.blk', 11);
  });

  it('vhost-user-scsi-pci on reactor 1 (target 0 = Malloc1): the same through the SCSI layer', async () => {
    await t.rpc.call('vhost_create_scsi_controller', { ctrlr: 'vm.scsi', cpumask: '0x2' });
    await t.rpc.call('vhost_scsi_controller_add_target', {
      ctrlr: 'vm.scsi',
      scsi_target_num: 0,
      bdev_name: 'Malloc1',
    });
    await run('scsi', 'Malloc1', 'vm.scsi', 12);
  });
});
