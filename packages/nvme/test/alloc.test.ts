// Steady-state allocation of the host NVMe/TCP engine per command (alloc-worker.ts, in a worker so
// only the engine's isolate is weighed). What remains is known: the short-lived view Node 20's
// Buffer.copy makes when a read's data is copied out of a part of the receive buffer, plus one
// setImmediate per batch. A per-command object, closure or promise would push it over the bound.

import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import type { AllocResult } from './alloc-worker.js';

describe('nvme host: steady-state allocation per command', function () {
  this.timeout(30000);

  it('stays near the known floor per 4 KiB read (Buffer.copy view) or in-capsule write', async () => {
    const w = new Worker(new URL('./alloc-worker.js', import.meta.url));
    const [res] = (await once(w, 'message')) as [AllocResult];
    await w.terminate();
    expect(res.errors).to.equal(0);
    expect(res.completed).to.be.greaterThan(300 * 32);
    expect(res.read.length, 'read windows without a scavenge').to.be.greaterThan(2);
    expect(res.write.length, 'write windows without a scavenge').to.be.greaterThan(2);
    const r = Math.min(...res.read);
    const wr = Math.min(...res.write);
    // Measured ~160 bytes (reads) and ~65 (writes); one closure and object per write measured
    // ~260, so these bounds catch a single per-command allocation.
    expect(r, `read: ${r.toFixed(0)} bytes/command`).to.be.below(240);
    expect(wr, `write: ${wr.toFixed(0)} bytes/command`).to.be.below(150);
  });
});
