// The malloc bdev's copies through the accel framework: done at once on the CPU by the software
// module, and on an I/OAT channel (the device model) once ioat_scan_accel_module assigned copy and
// fill to it, the I/O completing with the engine.
import {
  accelFinish,
  accelInitialize,
  accelIoatScan,
  accelIoatSetDevices,
  accelStarted,
} from '@storkit/accel';
import { IoatModel } from '@storkit/ioat/testing';
import { DmaRegion } from '@storkit/native';
import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { bdevRead, bdevWrite, bdevWriteZeroes, IoStatus } from '../src/index.js';
import { bdevMallocCreate, bdevMallocDelete } from '../src/modules/index.js';
import { harness, open, pattern, until } from './helpers.js';

async function stopAccel(h: TestHarness): Promise<void> {
  if (!accelStarted()) return;
  h.setThread(0);
  let done = false;
  void accelFinish().then(() => (done = true));
  for (let i = 0; i < 100_000 && !done; i++) {
    h.pollOnce();
    await new Promise((r) => setImmediate(r));
  }
  expect(done).to.equal(true);
}

describe('bdev malloc through accel', function () {
  this.timeout(60_000);

  it('copies and zeroes on the I/OAT device model; a plain buffer is copied by the CPU', async () => {
    const model = await IoatModel.start({ channels: 1 });
    const h = harness();
    const mem = DmaRegion.create(1 << 20, { hugepages: 'never' });
    try {
      await stopAccel(h); // an earlier test started it with its software defaults
      accelIoatSetDevices(model.devices);
      accelIoatScan();
      await accelInitialize();
      h.setThread(0);
      bdevMallocCreate({ name: 'MA', num_blocks: 2048, block_size: 512 });
      const o = open('MA');
      const st: IoStatus[] = [];
      const cb = (s: IoStatus) => st.push(s);
      const out = mem.bytes.subarray(0, 64 * 1024);
      out.set(pattern(out.length, 7));
      const back = mem.bytes.subarray(65536, 131072);
      const before = model.stats(0).descriptors;
      expect(bdevWrite(o.desc, o.ch, out, 0, 128, cb, null)).to.equal(0);
      await untilAsync(h, () => st.length === 1);
      expect(bdevRead(o.desc, o.ch, back, 0, 128, cb, null)).to.equal(0);
      await untilAsync(h, () => st.length === 2);
      expect(Buffer.from(back).equals(Buffer.from(out))).to.equal(true);
      expect(model.stats(0).descriptors - before).to.be.at.least(2);
      // Zeroes by the engine's fill.
      expect(bdevWriteZeroes(o.desc, o.ch, 0, 8, cb, null)).to.equal(0);
      await untilAsync(h, () => st.length === 3);
      const plain = new Uint8Array(4096);
      expect(bdevRead(o.desc, o.ch, plain, 0, 8, cb, null)).to.equal(0);
      await untilAsync(h, () => st.length === 4);
      expect(plain.every((b) => b === 0)).to.equal(true);
      expect(st).to.deep.equal([IoStatus.SUCCESS, IoStatus.SUCCESS, IoStatus.SUCCESS, IoStatus.SUCCESS]);
      o.close();
      let gone = false;
      bdevMallocDelete({ name: 'MA' }, () => (gone = true));
      until(h, () => gone);
    } finally {
      await stopAccel(h);
      accelIoatScan(false);
      accelIoatSetDevices([]);
      mem.close();
      await model.stop();
    }
  });
});

async function untilAsync(h: TestHarness, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200_000 && !cond(); i++) {
    h.pollOnce();
    if ((i & 63) === 0) await new Promise((r) => setImmediate(r));
  }
  expect(cond()).to.equal(true);
}
