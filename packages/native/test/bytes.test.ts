import { expect } from 'chai';
import fc from 'fast-check';

import { compareRange, copyRange, DmaRegion, MappedRegion, MmioRegion } from '../src/index.js';

describe('native: byte ranges and the region of a buffer', () => {
  it('copyRange is memmove over ranges (property, against a plain-JS reference)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.nat(300),
        fc.nat(300),
        fc.nat(300),
        (data, a, b, n) => {
          const buf = new Uint8Array(700);
          buf.set(data);
          const ref = buf.slice();
          const len = Math.min(n, 700 - Math.max(a, b));
          copyRange(buf, a, buf, b, len);
          ref.copyWithin(a, b, b + len);
          expect(buf).to.deep.equal(ref);
          // two views of one buffer (the Node-API path), overlapping as memmove allows
          const other = new Uint8Array(buf.buffer, 0, 700);
          copyRange(buf, b, other, a, len);
          ref.copyWithin(b, a, a + len);
          expect(buf).to.deep.equal(ref);
        },
      ),
    );
  });

  it('compareRange is memcmp over ranges; bad ranges throw RangeError EINVAL', () => {
    const x = Uint8Array.from([1, 2, 3, 4, 5]);
    const y = Uint8Array.from([9, 2, 3, 5, 5]);
    expect(compareRange(x, 1, y, 1, 2)).to.equal(0);
    expect(compareRange(x, 0, y, 0, 5)).to.equal(-1);
    expect(compareRange(y, 0, x, 0, 5)).to.equal(1);
    expect(compareRange(x, 3, y, 3, 0)).to.equal(0);
    expect(() => compareRange(x, 3, y, 0, 3))
      .to.throw(RangeError)
      .with.property('code', 'EINVAL');
    expect(() => copyRange(x, 0, y, 4, 2)).to.throw(RangeError);
    expect(() => copyRange(x, -1, y, 0, 1)).to.throw(RangeError);
    // within one array too (its copyWithin path would clamp a bad range instead of failing)
    expect(() => copyRange(x, 3, x, 0, 3)).to.throw(RangeError);
    expect(() => copyRange(x, 0, x, 4, 2)).to.throw(RangeError);
    expect(() => copyRange(x, 0.5, x, 0, 1)).to.throw(RangeError);
    expect(() => copyRange(x, 0, x, -1, 1)).to.throw(RangeError);
    expect(x).to.deep.equal(Uint8Array.from([1, 2, 3, 4, 5]));
  });

  it('finds the region of a view, and forgets it once closed', () => {
    const r = DmaRegion.create(8192, { hugepages: 'never' });
    const view = r.bytes.subarray(100, 200);
    expect(DmaRegion.of(view)).to.equal(r);
    expect(MappedRegion.of(new DataView(r.buffer, 8))).to.equal(r);
    expect(DmaRegion.of(new Uint8Array(10))).to.equal(undefined);
    const bar = MmioRegion.createShared(4096);
    expect(MappedRegion.of(bar.bytes)).to.equal(bar);
    expect(DmaRegion.of(bar.bytes)).to.equal(undefined);
    bar.close();
    r.close();
    expect(DmaRegion.of(view)).to.equal(undefined);
  });
});
