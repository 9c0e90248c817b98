import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { BlkDevice, VhostController } from '../src/index.js';
import { Blk } from '../src/spec.js';
import { harness, sockPath } from './helpers.js';
import { MockBlk } from './mock.js';

describe('interrupt coalescing (vhost_controller_set_coalescing)', () => {
  it('signals every completion batch without coalescing, and at most once per delay_base_us above the IOPS threshold', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 1024 });
    const path = sockPath('coalesce');
    const ctrl = new VhostController({ name: 'c', socketPath: path, device: new BlkDevice(ram) });
    ctrl.start();
    try {
      const m = await MockBlk.open(h, path);
      const q = ctrl.queues[0];
      const run = async (n: number) => {
        const before = q.stats.interrupts;
        const t0 = h.nowUs;
        for (let i = 0; i < n; i++) {
          m.q.add(m.request(Blk.T.In, i, 512));
          await m.complete(1);
        }
        return { interrupts: q.stats.interrupts - before, us: h.nowUs - t0 };
      };
      const plain = await run(40);
      expect(plain.interrupts).to.equal(40);
      ctrl.setCoalescing({ delayBaseUs: 5000, iopsThreshold: 100 });
      await run(40); // let the rate sampler see the load
      const held = await run(200);
      // One interrupt per 5 ms of (fake) time at most, plus the flush at the end of each period.
      expect(held.interrupts).to.be.lessThan(200 / 4);
      expect(held.interrupts).to.be.at.most(Math.ceil(held.us / 5000) + 1);
      // Below the threshold nothing is held back.
      ctrl.setCoalescing({ delayBaseUs: 5000, iopsThreshold: 10_000_000 });
      await run(40);
      const low = await run(40);
      expect(low.interrupts).to.equal(40);
      m.close();
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
