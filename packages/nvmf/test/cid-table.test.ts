import { expect } from 'chai';
import fc from 'fast-check';

import { CidTable } from '../src/cid-table.js';

describe('nvmf CidTable', () => {
  it('agrees with a Map under any sequence of adds and deletes (fast-check)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        cid: fc.integer({ min: 0, max: 65535 }),
        slot: fc.nat(200),
      }),
      // CIDs from a narrow range collide in the table and exercise the backward shift.
      fc.record({
        kind: fc.constant('add' as const),
        cid: fc.integer({ min: 0, max: 40 }),
        slot: fc.nat(200),
      }),
      fc.record({
        kind: fc.constant('del' as const),
        cid: fc.integer({ min: 0, max: 40 }),
        slot: fc.nat(200),
      }),
      fc.record({ kind: fc.constant('delOwn' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(op, { maxLength: 400 }), (cap, ops) => {
        const t = new CidTable(cap);
        const m = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === 'add') {
            const want = !m.has(o.cid) && m.size < cap;
            expect(t.add(o.cid, o.slot)).to.equal(want);
            if (want) m.set(o.cid, o.slot);
          } else if (o.kind === 'del') {
            const want = m.get(o.cid) === o.slot;
            expect(t.delete(o.cid, o.slot)).to.equal(want);
            if (want) m.delete(o.cid);
          } else if (m.size > 0) {
            const [cid, slot] = [...m][o.pick % m.size];
            expect(t.delete(cid, slot)).to.equal(true);
            m.delete(cid);
          }
          expect(t.size).to.equal(m.size);
        }
        for (const [cid, slot] of m) expect(t.get(cid)).to.equal(slot);
        for (let cid = 0; cid <= 40; cid++) if (!m.has(cid)) expect(t.get(cid)).to.equal(-1);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps CIDs that share low bits (a generation counter in the high bits) apart', () => {
    const t = new CidTable(4);
    for (let g = 0; g < 4; g++) expect(t.add((g << 12) | 7, g)).to.equal(true);
    expect(t.add(9, 9)).to.equal(false); // full
    expect(t.delete((1 << 12) | 7, 1)).to.equal(true);
    for (const g of [0, 2, 3]) expect(t.get((g << 12) | 7)).to.equal(g);
    expect(t.get((1 << 12) | 7)).to.equal(-1);
    t.clear();
    expect(t.size).to.equal(0);
    expect(t.get(7)).to.equal(-1);
  });
});
