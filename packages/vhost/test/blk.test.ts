import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { BlkDevice, VhostController } from '../src/index.js';
import { Blk } from '../src/spec.js';
import { harness, sockPath } from './helpers.js';
import { DATA, MockBlk } from './mock.js';

describe('virtio-blk requests (mock driver)', () => {
  it('GET_ID across segments, and IOERR / UNSUPP for bad requests; config space fields', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 4096, numBlocks: 256 });
    const path = sockPath('blkreq');
    const dev = new BlkDevice(ram, { serial: 'SN-storkit-0001', numQueues: 3, readonly: true });
    const ctrl = new VhostController({ name: 'b', socketPath: path, device: dev });
    ctrl.start();
    try {
      const m = await MockBlk.open(h, path);
      const cfg = await m.fe.config(Blk.Config.size);
      const dv = new DataView(cfg.buffer, cfg.byteOffset);
      expect(Number(dv.getBigUint64(Blk.Config.capacity, true))).to.equal((256 * 4096) / 512);
      expect(dv.getUint32(Blk.Config.blkSize, true)).to.equal(4096);
      expect(dv.getUint16(Blk.Config.numQueues, true)).to.equal(3);
      expect(dv.getUint32(Blk.Config.segMax, true)).to.be.greaterThan(100);
      expect(dv.getUint32(Blk.Config.maxDiscardSeg, true)).to.equal(1);
      expect(dv.getUint32(Blk.Config.discardSectorAlignment, true)).to.equal(8);
      // GET_ID into a 7 + 13 byte buffer.
      m.header(DATA, Blk.T.GetId, 0);
      m.mem.fill(0xff, DATA + 4096, DATA + 4200);
      m.q.add([
        { addr: DATA, len: 16, write: false },
        { addr: DATA + 4096, len: 7, write: true },
        { addr: DATA + 4160, len: 13, write: true },
        { addr: DATA + 512, len: 1, write: true },
      ]);
      let [[, len]] = await m.complete(1);
      expect(len).to.equal(21);
      const id = Buffer.concat([
        m.mem.subarray(DATA + 4096, DATA + 4103),
        m.mem.subarray(DATA + 4160, DATA + 4173),
      ]);
      expect(id.toString('latin1')).to.equal('SN-storkit-0001\0\0\0\0\0');
      expect(m.status()).to.equal(Blk.S.Ok);
      const expectStatus = async (type: number, sector: number, bytes: number, status: number) => {
        m.q.add(m.request(type, sector, bytes));
        [[, len]] = await m.complete(1);
        expect(m.status(), `type ${type} sector ${sector} bytes ${bytes}`).to.equal(status);
      };
      await expectStatus(Blk.T.In, 0, 4096, Blk.S.Ok);
      await expectStatus(Blk.T.In, 1, 4096, Blk.S.IoErr); // not aligned to the 4 KiB block
      await expectStatus(Blk.T.In, 0, 1000, Blk.S.IoErr); // not a whole block
      await expectStatus(Blk.T.In, 255 * 8, 8192, Blk.S.IoErr); // past the end
      await expectStatus(Blk.T.Out, 0, 4096, Blk.S.IoErr); // read-only
      await expectStatus(99, 0, 0, Blk.S.Unsupp);
      await expectStatus(Blk.T.Flush, 0, 0, Blk.S.Ok);
      expect(dev.invalid).to.equal(5);
      m.close();
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
