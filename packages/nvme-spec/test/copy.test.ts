// copyBytes takes two routes (TypedArray#set for a whole source, Buffer#copy for a part of one);
// both must copy exactly what a byte loop would.

import { expect } from 'chai';
import fc from 'fast-check';

import { copyBytes } from '../src/tcp/copy.js';

describe('nvme/tcp: copyBytes', () => {
  it('copies src[start, end) to dst at any offset, whole sources and parts alike', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.nat(64),
        fc.nat(64),
        fc.nat(80),
        fc.boolean(),
        (src, a, b, at, whole) => {
          const start = whole ? 0 : Math.min(a, b, src.length);
          const end = whole ? src.length : Math.min(Math.max(a, b), src.length);
          const dst = new Uint8Array(96).fill(0xee);
          const want = dst.slice();
          const n = Math.min(end - start, Math.max(0, dst.length - at));
          for (let i = 0; i < n; i++) want[at + i] = src[start + i];
          const got = copyBytes(src, start, end, dst, Math.min(at, dst.length));
          expect(got).to.equal(n);
          expect(dst).to.deep.equal(want);
        },
      ),
    );
  });
});
