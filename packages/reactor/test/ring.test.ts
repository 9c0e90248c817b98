import { expect } from 'chai';
import fc from 'fast-check';

import { ReactorError } from '../src/index.js';
import { RingConsumer, RingProducer, recordSlots, ringBytes } from '../src/ring.js';
import { runRingStress } from './fixtures/ring-stress.js';

function ring(capacity: number) {
  const sab = new SharedArrayBuffer(ringBytes(capacity));
  return { p: new RingProducer(sab, 0, capacity), c: new RingConsumer(sab, 0, capacity) };
}

type Op =
  | { kind: 'write'; tag: number; words: number[] }
  | { kind: 'publish' }
  | { kind: 'read' }
  | { kind: 'release' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      tag: fc.integer({ min: 0, max: 0xfffe }),
      words: fc.array(fc.integer(), { maxLength: 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: 'read' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'release' as const }) },
);

describe('SPSC ring', () => {
  it('matches a queue model under any sequence of write/publish/read/release (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(16, 32, 64), fc.array(opArb, { maxLength: 400 }), (capacity, ops) => {
        const { p, c } = ring(capacity);
        // Model: slots in use = records reserved (with their padding) and not yet released.
        const unpublished: { tag: number; words: number[] }[] = [];
        const published: { tag: number; words: number[] }[] = [];
        let readSlots = 0; // read but not released, including padding
        let usedSlots = 0; // reserved and not released
        let head = 0; // model slot index of the producer
        const padBefore: number[] = [];
        for (const op of ops) {
          if (op.kind === 'write') {
            const n = recordSlots(op.words.length);
            if (n > capacity / 2) {
              expect(() => p.reserve(op.tag, op.words.length)).to.throw(ReactorError);
              continue;
            }
            const pos = head % capacity;
            const pad = pos + n > capacity ? capacity - pos : 0;
            const fits = capacity - usedSlots >= pad + n;
            const off = p.reserve(op.tag, op.words.length);
            expect(off >= 0).to.equal(fits);
            if (!fits) continue;
            p.words.set(op.words, off);
            head += pad + n;
            usedSlots += pad + n;
            padBefore.push(pad);
            unpublished.push(op);
          } else if (op.kind === 'publish') {
            p.publish();
            published.push(...unpublished.splice(0));
          } else if (op.kind === 'read') {
            const off = c.read();
            const want = published.shift();
            if (want === undefined) {
              expect(off).to.equal(-1);
              continue;
            }
            expect(off).to.be.at.least(1);
            expect(c.tag).to.equal(want.tag);
            expect(c.bodyWords).to.equal(recordSlots(want.words.length) * 4 - 1);
            expect([...c.words.subarray(off, off + want.words.length)]).to.deep.equal(want.words);
            readSlots += padBefore.shift()! + recordSlots(want.words.length);
          } else {
            c.release();
            usedSlots -= readSlots;
            readSlots = 0;
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('fills exactly to capacity, then refuses, then accepts after a release', () => {
    const { p, c } = ring(16);
    for (let i = 0; i < 16; i++) expect(p.reserve(1, 3)).to.be.at.least(0);
    expect(p.reserve(1, 0)).to.equal(-1);
    p.publish();
    expect(c.read()).to.be.at.least(0);
    expect(p.reserve(1, 0)).to.equal(-1);
    c.release();
    expect(p.reserve(1, 0)).to.be.at.least(0);
  });

  it('pads a record that would wrap and starts it at slot 0', () => {
    const { p, c } = ring(16);
    for (let i = 0; i < 14; i++) p.reserve(7, 0);
    p.publish();
    for (let i = 0; i < 14; i++) c.read();
    c.release();
    const off = p.reserve(9, 11); // 3 slots: 2 left before the end, so pad 2 and start at 0
    expect(off).to.equal(1);
    p.words.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], off);
    p.publish();
    expect(c.read()).to.equal(1);
    expect(c.tag).to.equal(9);
    expect([...c.words.subarray(1, 12)]).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(c.read()).to.equal(-1);
  });

  it('rejects oversize records and bad geometry with typed errors', () => {
    const { p } = ring(16);
    expect(() => p.reserve(0, p.maxBodyWords + 1))
      .to.throw(ReactorError)
      .with.property('code', 'EMSGSIZE');
    expect(p.reserve(0, p.maxBodyWords)).to.equal(1);
    expect(() => ringBytes(12))
      .to.throw(ReactorError)
      .with.property('code', 'EINVAL');
    expect(() => new RingProducer(new SharedArrayBuffer(1024), 64, 4)).to.throw(ReactorError);
    expect(() => new RingProducer(new SharedArrayBuffer(256), 0, 4)).to.throw(ReactorError);
  });

  it('carries 20 M small records between two workers with checksums, every batch size 1..256', async function () {
    this.timeout(120_000);
    const r = await runRingStress({ messages: 20_000_000, capacity: 256, maxBody: 3 });
    expect(r.received).to.equal(r.sent);
    expect(r.consumerSum).to.equal(r.producerSum);
    expect(r.wraps).to.be.greaterThan(1000);
    expect(r.fullHits).to.be.greaterThan(0);
  });

  it('carries 500 k variable-length records (2..511 words) between two workers with checksums', async function () {
    this.timeout(120_000);
    const r = await runRingStress({ messages: 500_000, capacity: 1024, maxBody: 511 });
    expect(r.received).to.equal(r.sent);
    expect(r.consumerSum).to.equal(r.producerSum);
    expect(r.fullHits).to.be.greaterThan(0);
  });
});
