import { IoStatus } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { BlkDevice, VhostController, VirtioUserBlk } from '../src/index.js';
import { harness, io, pattern, pumper, sockPath, until } from './helpers.js';

describe('virtio-user initiator against the vhost-blk controller (one process)', () => {
  it('writes, reads back, flushes, discards and zeroes through the rings on several queues', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 8192 });
    const path = sockPath('blk');
    const ctrl = new VhostController({
      name: 'vhost.0',
      socketPath: path,
      device: new BlkDevice(ram, { numQueues: 2 }),
    });
    ctrl.start();
    try {
      const dev = await VirtioUserBlk.attach({
        path,
        name: 'VirtioUser0',
        numQueues: 2,
        queueSize: 16,
        pump: pumper(h),
      });
      expect(dev.queueCount).to.equal(2);
      expect(dev.numBlocks).to.equal(8192);
      expect(dev.blockSize).to.equal(512);
      expect(ctrl.connected).to.equal(true);
      const data = pattern(8192, 1);
      expect(
        await io(h, (cb) => dev.writev([data.subarray(0, 4096), data.subarray(4096)], 100, 16, cb, null)),
      ).to.equal(IoStatus.SUCCESS);
      expect(Buffer.from(ram.data.subarray(100 * 512, 116 * 512)).equals(Buffer.from(data))).to.equal(true);
      const back = new Uint8Array(8192);
      expect(await io(h, (cb) => dev.readv([back], 100, 16, cb, null))).to.equal(IoStatus.SUCCESS);
      expect(Buffer.from(back).equals(Buffer.from(data))).to.equal(true);
      expect(await io(h, (cb) => dev.flush(0, 0, cb, null))).to.equal(IoStatus.SUCCESS);
      expect(await io(h, (cb) => dev.writeZeroes(100, 8, cb, null))).to.equal(IoStatus.SUCCESS);
      expect(ram.data.subarray(100 * 512, 108 * 512).every((b) => b === 0)).to.equal(true);
      expect(await io(h, (cb) => dev.unmap(108, 8, cb, null))).to.equal(IoStatus.SUCCESS);
      // Many at once: more than a queue's depth, spread over both queues.
      let done = 0;
      let failed = 0;
      for (let i = 0; i < 24; i++) {
        const b = pattern(512, i + 10);
        dev.writev(
          [b],
          1000 + i,
          1,
          (s) => {
            done++;
            if (s !== IoStatus.SUCCESS && s !== IoStatus.NOMEM) failed++;
          },
          null,
        );
      }
      await until(h, () => done === 24, 'batch');
      expect(failed).to.equal(0);
      expect(ctrl.queues[0].stats.requests).to.be.greaterThan(0);
      expect(ctrl.queues[1].stats.requests).to.be.greaterThan(0);
      dev.detach();
      await until(h, () => !ctrl.connected, 'disconnect');
      // Zero copy: buffers in the initiator's shared area go straight to the backend.
      const zc = await VirtioUserBlk.attach({
        path,
        name: 'Zc',
        queueSize: 8,
        bufferBytes: 65536,
        pump: pumper(h),
      });
      const wbuf = zc.sharedBuffer(4096, 4096);
      wbuf.set(pattern(4096, 66));
      expect(await io(h, (cb) => zc.writev([wbuf], 2000, 8, cb, null))).to.equal(IoStatus.SUCCESS);
      expect(
        Buffer.from(ram.data.subarray(2000 * 512, 2008 * 512)).equals(Buffer.from(pattern(4096, 66))),
      ).to.equal(true);
      const rbuf = zc.sharedBuffer(8192, 4096);
      expect(await io(h, (cb) => zc.readv([rbuf], 2000, 8, cb, null))).to.equal(IoStatus.SUCCESS);
      expect(Buffer.from(rbuf).equals(Buffer.from(pattern(4096, 66)))).to.equal(true);
      expect(() => zc.sharedBuffer(65000, 4096)).to.throw(/outside/);
      zc.detach();
      await until(h, () => !ctrl.connected, 'disconnect');
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
