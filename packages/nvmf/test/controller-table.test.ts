// The shared controller table on its own: allocation across "reactors" (views over one
// SharedArrayBuffer, as each worker holds), generations, readiness and queue-ID claims.
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import { ControllerTable, nqnHash, StatField } from '../src/controller-table.js';

describe('nvmf: shared controller table', () => {
  it('hands out each controller ID once across views, and reuses freed IDs with a new generation', () => {
    const a = new ControllerTable(1, 4, 127);
    const b = new ControllerTable(1, 4, 127, a.sab);
    const h = nqnHash('nqn.2014-08.org.nvmexpress:uuid:host');
    const got = [a.alloc(0, h), b.alloc(1, h), a.alloc(0, h), b.alloc(1, h)];
    expect(got.map((x) => x!.cntlid).sort()).to.deep.equal([1, 2, 3, 4]);
    expect(a.alloc(0, h)).to.equal(undefined);
    const first = got[0]!;
    expect(b.lookup(first.cntlid)).to.deep.equal({ owner: 0, gen: first.gen, ready: false, hostHash: h });
    a.setReady(first.cntlid, first.gen, true);
    expect(b.lookup(first.cntlid)!.ready).to.equal(true);
    a.free(first.cntlid, first.gen);
    expect(b.lookup(first.cntlid)).to.equal(undefined);
    const again = b.alloc(1, h)!;
    expect(again.cntlid).to.equal(first.cntlid);
    expect(again.gen).to.not.equal(first.gen);
    // A stale generation changes nothing.
    a.setReady(again.cntlid, first.gen, true);
    expect(a.lookup(again.cntlid)!.ready).to.equal(false);
    a.free(again.cntlid, first.gen);
    expect(a.lookup(again.cntlid)!.owner).to.equal(1);
    expect(a.lookup(0)).to.equal(undefined);
    expect(a.lookup(5)).to.equal(undefined);
  });

  it('claims each I/O queue ID once, across views, within the cap', () => {
    const a = new ControllerTable(5, 5, 40); // one slot: cntlid 5
    const b = new ControllerTable(5, 5, 40, a.sab);
    const { cntlid, gen } = a.alloc(0, 7)!;
    expect(a.claimQid(cntlid, gen, 1)).to.equal(true);
    expect(b.claimQid(cntlid, gen, 1)).to.equal(false);
    expect(b.claimQid(cntlid, gen, 33)).to.equal(true);
    expect(b.claimQid(cntlid, gen, 40)).to.equal(true);
    expect(b.claimQid(cntlid, gen, 41)).to.equal(false);
    expect(b.claimQid(cntlid, gen, 0)).to.equal(false);
    expect(b.claimQid(cntlid, gen + 1, 2)).to.equal(false);
    expect(a.claimedQids(cntlid)).to.deep.equal([1, 33, 40]);
    a.releaseQid(cntlid, gen, 33);
    expect(b.claimQid(cntlid, gen, 33)).to.equal(true);
    // A new controller in the slot starts with no queues.
    a.free(cntlid, gen);
    const n = b.alloc(1, 7)!;
    expect(n.cntlid).to.equal(cntlid);
    expect(a.claimedQids(cntlid)).to.deep.equal([]);
    expect(n.cntlid).to.equal(5);
    // Slots (16-word header, 4 words + a 2-word bitmap each), then 4 float64 counters per reactor.
    expect(ControllerTable.bytes(1, 0xffef, 40)).to.equal((16 + 1024 * (4 + 2)) * 4 + 1024 * 4 * 8);
    expect(ControllerTable.bytes(1, 0xffef, 40, 2)).to.equal((16 + 1024 * (4 + 2)) * 4 + 1024 * 2 * 4 * 8);
  });

  it('keeps SMART counters per reactor and sums them; a new controller in the slot starts at zero', () => {
    const a = new ControllerTable(1, 8, 4, undefined, 3);
    const b = new ControllerTable(1, 8, 4, a.sab);
    expect(b.reactors).to.equal(3);
    const { cntlid, gen } = a.alloc(0, 1)!;
    for (let r = 0; r < 3; r++) {
      const base = b.statBase(cntlid, r);
      b.stats[base + StatField.ReadCommands] += r + 1;
      b.stats[base + StatField.BytesRead] += 4096 * (r + 1);
    }
    expect(a.statSum(cntlid, StatField.ReadCommands)).to.equal(6);
    expect(a.statSum(cntlid, StatField.BytesRead)).to.equal(6 * 4096);
    expect(a.statSum(cntlid, StatField.WriteCommands)).to.equal(0);
    expect(a.statBase(cntlid, 3)).to.equal(-1);
    expect(a.statBase(9, 0)).to.equal(-1);
    a.free(cntlid, gen);
    // Slots are handed out round robin: come back to the first and see it zeroed.
    let got: { cntlid: number; gen: number } | undefined;
    for (let k = 0; k < 8 && got?.cntlid !== cntlid; k++) {
      got = a.alloc(0, 1)!;
      if (got.cntlid !== cntlid) a.free(got.cntlid, got.gen);
    }
    expect(got?.cntlid).to.equal(cntlid);
    expect(a.statSum(cntlid, StatField.ReadCommands)).to.equal(0);
  });

  it('never gives one ID to two workers racing for it', async () => {
    const t = new ControllerTable(1, 256, 8);
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.mod).then(({ ControllerTable }) => {
        const t = new ControllerTable(1, 256, 8, workerData.sab);
        const got = [];
        for (;;) { const a = t.alloc(workerData.me, 1); if (!a) break; got.push(a.cntlid); }
        parentPort.postMessage(got);
      });`;
    const mod = new URL('../src/controller-table.js', import.meta.url).href;
    const run = (me: number) =>
      new Promise<number[]>((resolve, reject) => {
        const w = new Worker(src, { eval: true, workerData: { sab: t.sab, me, mod } });
        w.once('message', resolve);
        w.once('error', reject);
      });
    const [x, y] = await Promise.all([run(0), run(1)]);
    expect([...x, ...y].sort((p, q) => p - q)).to.deep.equal(Array.from({ length: 256 }, (_, i) => i + 1));
    for (const id of x) expect(t.lookup(id)!.owner).to.equal(0);
    for (const id of y) expect(t.lookup(id)!.owner).to.equal(1);
  });
});
