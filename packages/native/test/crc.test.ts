import { expect } from 'chai';
import fc from 'fast-check';

import { crc32c, crc32cHardware, crc32cList, crc32cRange } from '../src/index.js';

// Bitwise reference (reflected polynomial 0x82F63B78), independent of the native code.
function crc32cRef(data: Uint8Array, seed = 0): number {
  let c = ~seed >>> 0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('native: CRC32C', () => {
  it('uses the hardware instruction on x86_64', () => {
    if (process.arch === 'x64') expect(crc32cHardware).to.equal(true);
  });

  it('matches RFC 3720 appendix B.4', () => {
    expect(crc32c(new Uint8Array(32))).to.equal(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).to.equal(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).to.equal(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).to.equal(0x113fdb5c);
    const read = new Uint8Array(48);
    read.set([0x01, 0xc0], 0);
    read[16] = 0x14;
    read[22] = 0x04;
    read[27] = 0x14;
    read[31] = 0x18;
    read[32] = 0x28;
    read[40] = 0x02;
    expect(crc32c(read)).to.equal(0xd9963a56);
  });

  it('agrees with a bitwise reference, chains by seed, and over buffer lists', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.nat(), (data, cutRaw) => {
        const cut = data.length ? cutRaw % data.length : 0;
        const whole = crc32c(data);
        expect(whole).to.equal(crc32cRef(data));
        expect(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut)))).to.equal(whole);
        expect(crc32cList([data.subarray(0, cut), data.subarray(cut)])).to.equal(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('reads a view at its offset, not its buffer start', () => {
    const buf = Uint8Array.from({ length: 100 }, (_, i) => i);
    expect(crc32c(buf.subarray(10, 42))).to.equal(crc32cRef(buf.subarray(10, 42)));
  });

  it('crc32cRange equals crc32c of the same subarray, for any range and seed (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.nat(),
        fc.nat(),
        fc.nat({ max: 0xffffffff }),
        (data, a, b, seed) => {
          const s = data.length ? a % (data.length + 1) : 0;
          const e = s + (data.length - s ? b % (data.length - s + 1) : 0);
          expect(crc32cRange(data, s, e, seed)).to.equal(crc32cRef(data.subarray(s, e), seed));
          expect(crc32cRange(data, s, e)).to.equal(crc32c(data.subarray(s, e)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('crc32cRange refuses ranges outside the buffer and non-byte arrays', () => {
    const buf = new Uint8Array(16);
    for (const [s, e] of [
      [0, 17],
      [5, 4],
      [-1, 4],
      [0.5, 4],
      [Number.NaN, 4],
    ])
      expect(() => crc32cRange(buf, s as number, e as number), `${s}..${e}`).to.throw(
        RangeError,
        /crc32cRange/,
      );
    expect(() => crc32cRange(buf, 0, 4, 2 ** 32)).to.throw(RangeError);
    expect(() => crc32cRange(new Int32Array(4) as unknown as Uint8Array, 0, 4)).to.throw(
      RangeError,
      /Uint8Array/,
    );
    expect(crc32cRange(buf, 16, 16, 123)).to.equal(123);
  });
});
