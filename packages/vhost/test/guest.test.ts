import { createHash } from 'node:crypto';

import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { BlkDevice, VhostController, VhostScsiDevice } from '../src/index.js';
import { PackedQueue } from '../src/packed.js';
import { bootGuest, type GuestRun } from './guest.js';
import { harness, pattern, sockPath, until } from './helpers.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** The pattern the guest's rw.sh writes over [4M, 8M). */
function guestPattern(): Buffer {
  let s = '';
  for (let i = 0; i < 8192; i++) s += `${`storkit-vhost sector ${i}`.padEnd(511)}\n`;
  return Buffer.from(s, 'latin1');
}

function field(run: GuestRun, prefix: string): string {
  const l = run.results.find((r) => r.startsWith(prefix));
  if (l === undefined) throw new Error(`guest printed no "${prefix}" line:\n${run.log.slice(-3000)}`);
  return l.slice(prefix.length).trim();
}

describe('a QEMU guest (TCG) on a storkit vhost-user-blk disk', function () {
  this.timeout(240_000);

  it('boots, reads, writes and verifies; the host sees the same bytes in the backend', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 32768 });
    ram.data.set(pattern(8 << 20, 42));
    const head = md5(ram.data.subarray(0, 8 << 20));
    const path = sockPath('guest-blk');
    const ctrl = new VhostController({
      name: 'vhost.0',
      socketPath: path,
      device: new BlkDevice(ram, { numQueues: 2 }),
    });
    ctrl.start();
    try {
      let run: GuestRun | null = null;
      bootGuest({ socket: path, type: 'blk', workload: 'rw.sh' }).done.then((r) => {
        run = r;
      });
      await until(h, () => run !== null, 'guest', 200_000);
      const r = run as unknown as GuestRun;
      expect(r.results, r.log.slice(-3000)).to.include('END rc=0');
      expect(field(r, 'dev=')).to.equal(`/dev/vda size=${16 << 20} lbs=512`);
      expect(field(r, 'md5 head:')).to.equal(head);
      const pat = guestPattern();
      expect(field(r, 'verify OK md5=')).to.equal(md5(pat));
      expect(Buffer.from(ram.data.subarray(4 << 20, 8 << 20)).equals(pat)).to.equal(true);
      await until(h, () => !ctrl.connected, 'disconnect after poweroff');
      expect(ctrl.stats.connections).to.equal(1);
      expect(ctrl.stats.protocolErrors).to.equal(0);
      expect(ctrl.queues.length).to.equal(2);
    } finally {
      ctrl.close();
      h.close();
    }
  });
});

describe('a QEMU guest (TCG) on a storkit vhost-user-scsi disk', function () {
  this.timeout(240_000);

  it('finds the LUN through the shared SCSI layer, reads, writes and verifies; the host sees the bytes', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc1', blockSize: 512, numBlocks: 32768 });
    ram.data.set(pattern(8 << 20, 43));
    const head = md5(ram.data.subarray(0, 8 << 20));
    const path = sockPath('guest-scsi');
    const dev = new VhostScsiDevice({ name: 'vhost.1' });
    dev.addTarget(0, ram);
    const ctrl = new VhostController({ name: 'vhost.1', socketPath: path, device: dev });
    ctrl.start();
    try {
      let run: GuestRun | null = null;
      bootGuest({ socket: path, type: 'scsi', workload: 'rw.sh' }).done.then((r) => {
        run = r;
      });
      await until(h, () => run !== null, 'guest', 200_000);
      const r = run as unknown as GuestRun;
      expect(r.results, r.log.slice(-3000)).to.include('END rc=0');
      expect(field(r, 'dev=')).to.equal(`/dev/sda size=${16 << 20} lbs=512`);
      expect(field(r, 'md5 head:')).to.equal(head);
      const pat = guestPattern();
      expect(field(r, 'verify OK md5=')).to.equal(md5(pat));
      expect(Buffer.from(ram.data.subarray(4 << 20, 8 << 20)).equals(pat)).to.equal(true);
      expect(ctrl.stats.protocolErrors).to.equal(0);
    } finally {
      ctrl.close();
      h.close();
    }
  });
});

describe('target restart with the guest reconnecting', function () {
  this.timeout(240_000);

  it('the guest keeps its disk across a restart of the storkit controller (QEMU reconnect=1)', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc2', blockSize: 512, numBlocks: 32768 });
    const path = sockPath('guest-restart');
    const make = () => {
      const c = new VhostController({
        name: 'vhost.2',
        socketPath: path,
        device: new BlkDevice(ram, { numQueues: 2 }),
      });
      c.start();
      return c;
    };
    let ctrl = make();
    let paused = false;
    let run: GuestRun | null = null;
    try {
      bootGuest({
        socket: path,
        type: 'blk',
        workload: 'restart.sh',
        reconnect: true,
        onResult: (l) => {
          if (l === 'PAUSE') paused = true;
        },
      }).done.then((r) => {
        run = r;
      });
      await until(h, () => paused || run !== null, 'guest PAUSE', 200_000);
      expect(run === null ? '' : (run as unknown as GuestRun).log.slice(-2000)).to.equal('');
      // Target restart: the controller goes away (socket removed), then comes back on the same path.
      ctrl.close();
      await new Promise((r) => setTimeout(r, 300));
      ctrl = make();
      await until(h, () => run !== null, 'guest', 200_000);
      const r = run as unknown as GuestRun;
      expect(r.results, r.log.slice(-3000)).to.include('verify OK');
      expect(r.results).to.include('END rc=0');
      expect(ctrl.stats.connections).to.equal(1);
      let s = '';
      for (let i = 0; i < 2048; i++) s += `${`after-restart ${i}`.padEnd(511)}\n`;
      expect(Buffer.from(ram.data.subarray(2 << 20, 3 << 20)).equals(Buffer.from(s, 'latin1'))).to.equal(
        true,
      );
    } finally {
      ctrl.close();
      h.close();
    }
  });
});

describe('a QEMU guest (TCG) using packed virtqueues', function () {
  this.timeout(240_000);

  it('negotiates VIRTIO_F_RING_PACKED and reads, writes and verifies through packed rings', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc3', blockSize: 512, numBlocks: 32768 });
    ram.data.set(pattern(8 << 20, 44));
    const head = md5(ram.data.subarray(0, 8 << 20));
    const path = sockPath('guest-packed');
    const ctrl = new VhostController({
      name: 'vhost.3',
      socketPath: path,
      device: new BlkDevice(ram, { numQueues: 2 }),
      packedRing: true,
    });
    ctrl.start();
    try {
      let run: GuestRun | null = null;
      let sawPacked = false;
      let negotiated = 0n;
      const seen: string[] = [];
      bootGuest({ socket: path, type: 'blk', workload: 'rw.sh', packed: true }).done.then((r) => {
        run = r;
      });
      await until(
        h,
        () => {
          sawPacked ||= ctrl.queues[0] instanceof PackedQueue && ctrl.queues[0].running;
          if (ctrl.features !== 0n && ctrl.features !== negotiated) {
            negotiated = ctrl.features;
            seen.push(negotiated.toString(16));
          }
          return run !== null;
        },
        'guest',
        200_000,
      );
      const r = run as unknown as GuestRun;
      expect(r.results, r.log.slice(-3000)).to.include('END rc=0');
      expect(
        sawPacked,
        `features ${seen.join(',')} offered 0x${ctrl.offeredFeatures.toString(16)} ${ctrl.lastError} ${r.log.slice(-1500)}`,
      ).to.equal(true);
      expect(field(r, 'md5 head:')).to.equal(head);
      const pat = guestPattern();
      expect(field(r, 'verify OK md5=')).to.equal(md5(pat));
      expect(Buffer.from(ram.data.subarray(4 << 20, 8 << 20)).equals(pat)).to.equal(true);
      expect(ctrl.stats.protocolErrors).to.equal(0);
    } finally {
      ctrl.close();
      h.close();
    }
  });
});

describe('a guest rebooting inside the same VM', function () {
  this.timeout(240_000);

  it('QEMU resets the device (GET_VRING_BASE, rings restarted on the same connection); data survives', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc4', blockSize: 512, numBlocks: 32768 });
    const path = sockPath('guest-reboot');
    const ctrl = new VhostController({
      name: 'vhost.4',
      socketPath: path,
      device: new BlkDevice(ram, { numQueues: 2 }),
    });
    ctrl.start();
    try {
      let run: GuestRun | null = null;
      bootGuest({
        socket: path,
        type: 'blk',
        workload: 'reboot.sh',
        reboot: true,
        // Two TCG boots: the default 120 s for one guest run is short on a loaded host.
        timeoutMs: 200_000,
      }).done.then((r) => {
        run = r;
      });
      await until(h, () => run !== null, 'guest', 210_000);
      const r = run as unknown as GuestRun;
      expect(r.results, r.log.slice(-3000)).to.include('first boot wrote');
      expect(r.results, r.log.slice(-3000)).to.include('second boot verify OK');
      expect(r.results).to.include('END rc=0');
      expect(ctrl.stats.connections).to.equal(1);
      expect(ctrl.stats.protocolErrors).to.equal(0);
      let s = '';
      for (let i = 0; i < 2048; i++) s += `${`across-reboot ${i}`.padEnd(511)}\n`;
      expect(Buffer.from(ram.data.subarray(3 << 20, 4 << 20)).equals(Buffer.from(s, 'latin1'))).to.equal(
        true,
      );
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
