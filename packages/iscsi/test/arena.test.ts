import { expect } from 'chai';
import fc from 'fast-check';

import { TxArena } from '../src/arena.js';

describe('iscsi TxArena', () => {
  it('hands out disjoint live slices of the asked sizes, reusing views only for the same range (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 48, max: 9000 }), fc.constant(0)), { maxLength: 300 }),
        (ops) => {
          const a = new TxArena(64 * 1024);
          const live: Uint8Array[] = [];
          let stamp = 1;
          for (const n of ops) {
            if (n === 0) {
              // release the oldest: its bytes may be reused from now on
              if (live.length) {
                live.shift();
                a.release();
              }
              continue;
            }
            const s = a.alloc(n);
            expect(s.length).to.equal(n);
            s.fill(stamp & 0xff);
            live.push(s);
            stamp++;
            // every live slice still holds its own stamp: no two overlap
            for (const l of live) expect(l.every((v) => v === l[0])).to.equal(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('gives the same view back when a drained ring hands out the same offset and size again', () => {
    const a = new TxArena(64 * 1024);
    const first = [a.alloc(4144), a.alloc(4144)];
    a.release();
    a.release();
    const again = [a.alloc(4144), a.alloc(4144)];
    expect(again[0]).to.equal(first[0]);
    expect(again[1]).to.equal(first[1]);
    a.release();
    a.release();
    const other = a.alloc(100); // same offset, other size: a new view of exactly 100 bytes
    expect(other).to.not.equal(first[0]);
    expect(other.length).to.equal(100);
    expect(other.byteOffset).to.equal(first[0].byteOffset);
  });
});
