// Steady-state allocation of the target engine per command, measured as heap growth between
// garbage collections while batches of 4 KiB reads and in-capsule writes run through it in memory
// (alloc-worker.ts, in a worker so only the engine's isolate is weighed). What remains is known:
// the short-lived view Node 20's Buffer.copy makes for a partial copy (one or two per command),
// plus one setImmediate per batch. A per-command object, closure or promise would push it over
// the bound.

import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import type { AllocResult } from './alloc-worker.js';

describe('nvmf: steady-state allocation per command', function () {
  this.timeout(30000);

  it('stays within a few hundred bytes per 4 KiB read or write (only Buffer.copy views)', async () => {
    const w = new Worker(new URL('./alloc-worker.js', import.meta.url));
    const [res] = (await once(w, 'message')) as [AllocResult];
    await w.terminate();
    expect(res.closed).to.equal(false);
    expect(res.internalErrors).to.equal(0);
    expect(res.read.length, 'read windows without a scavenge').to.be.greaterThan(2);
    expect(res.write.length, 'write windows without a scavenge').to.be.greaterThan(2);
    const r = Math.min(...res.read);
    const wr = Math.min(...res.write);
    // Measured ~80-190 bytes (one Buffer.copy view is ~100-170 bytes) and harness array growth.
    expect(r, `read: ${r.toFixed(0)} bytes/command`).to.be.below(300);
    expect(wr, `write: ${wr.toFixed(0)} bytes/command`).to.be.below(300);
    // 64 KiB reads borrow iobuf pool buffers: taking and giving them back allocates nothing.
    expect(res.read64.length, '64 KiB read windows without a scavenge').to.be.greaterThan(2);
    const r64 = Math.min(...res.read64);
    expect(r64, `64 KiB read: ${r64.toFixed(0)} bytes/command`).to.be.below(300);
  });
});
