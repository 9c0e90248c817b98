// Steady-state allocation of the PCIe driver per command (pcie-alloc-worker.ts, in a worker so
// only the driver's isolate is weighed): zero copy from DMA buffers, completions polled by phase
// tag, doorbells once per poll.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import type { PcieAllocResult } from './pcie-alloc-worker.js';

describe('nvme pcie: steady-state allocation per command', function () {
  this.timeout(60000);

  it('allocates next to nothing per 4 KiB read or write', async () => {
    const w = new Worker(new URL('./pcie-alloc-worker.js', import.meta.url));
    const [res] = (await once(w, 'message')) as [PcieAllocResult];
    await w.terminate();
    expect(res.errors).to.equal(0);
    expect(res.completed).to.be.greaterThan(300 * 32);
    expect(res.read.length, 'read windows without a scavenge').to.be.greaterThan(2);
    expect(res.write.length, 'write windows without a scavenge').to.be.greaterThan(2);
    const r = Math.min(...res.read);
    const wr = Math.min(...res.write);
    // One object, closure or boxed number per command is 12-60 bytes: any would show.
    expect(r, `read: ${r.toFixed(1)} bytes/command`).to.be.below(4);
    expect(wr, `write: ${wr.toFixed(1)} bytes/command`).to.be.below(4);
  });
});
