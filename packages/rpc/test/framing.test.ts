import { expect } from 'chai';
import fc from 'fast-check';

import { JsonFramer } from '../src/index.js';

const container = fc.oneof(
  fc.array(fc.jsonValue(), { maxLength: 5 }),
  fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 5 }),
);

describe('rpc: JSON framing', () => {
  it('recovers back-to-back values however the stream is chunked', () => {
    fc.assert(
      fc.property(
        fc.array(container, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom('', ' ', '\n', '\r\n\t'),
        (values, cutsRaw, sep) => {
          const bytes = Buffer.from(values.map((v) => JSON.stringify(v)).join(sep));
          const cuts = [...new Set(cutsRaw.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const f = new JsonFramer(1 << 20);
          const got: unknown[] = [];
          let prev = 0;
          for (const c of [...cuts, bytes.length]) {
            for (const r of f.push(bytes.subarray(prev, c))) {
              expect(r.kind).to.equal('value');
              if (r.kind === 'value') got.push(JSON.parse(r.text));
            }
            prev = c;
          }
          expect(got).to.deep.equal(JSON.parse(JSON.stringify(values)));
          expect(f.pending).to.equal(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('recovers the same values from chunks of every size, down to one byte, held across many pushes', () => {
    fc.assert(
      fc.property(
        fc.array(container, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 16 }),
        (values, sizes) => {
          const bytes = Buffer.from(values.map((v) => JSON.stringify(v)).join(' '));
          const f = new JsonFramer(1 << 20);
          const got: unknown[] = [];
          for (let o = 0, k = 0; o < bytes.length; k++) {
            const n = sizes[k % sizes.length];
            for (const r of f.push(bytes.subarray(o, o + n)))
              if (r.kind === 'value') got.push(JSON.parse(r.text));
            o += n;
          }
          expect(got).to.deep.equal(JSON.parse(JSON.stringify(values)));
          expect(f.pending).to.equal(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('regression: a request dripped a byte at a time was copied whole on every byte (quadratic: 256 KiB took 13.5 s)', () => {
    const text = Buffer.from(
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'm', params: { s: 'a'.repeat(1 << 20) } }),
    );
    const f = new JsonFramer(4 << 20);
    let values = 0;
    for (let i = 0; i < text.length; i++) values += f.push(text.subarray(i, i + 1)).length;
    expect(values).to.equal(1);
    // Linear: every byte is copied in once, plus what doubling the buffer moves (< the total again).
    expect(f.copied).to.be.below(3 * text.length);
  });

  it('never throws on arbitrary bytes, and bounds what it holds', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }), (chunks) => {
        const f = new JsonFramer(512);
        for (const c of chunks) {
          const out = f.push(Buffer.from(c));
          expect(f.pending).to.be.at.most(512);
          if (out.some((r) => r.kind === 'error')) return;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('is not fooled by brackets and escaped quotes inside strings', () => {
    const f = new JsonFramer(1024);
    const text = JSON.stringify({ a: '}{][\\"', b: ['"}'] });
    const out = f.push(Buffer.from(`${text}${text}`));
    expect(out.map((r) => r.kind)).to.deep.equal(['value', 'value']);
  });

  it('rejects a top-level scalar and an oversized value', () => {
    expect(new JsonFramer(64).push(Buffer.from('42'))).to.deep.equal([
      { kind: 'error', reason: 'not-json-container' },
    ]);
    const big = new JsonFramer(64).push(Buffer.from(`{"a":"${'x'.repeat(100)}`));
    expect(big).to.deep.equal([{ kind: 'error', reason: 'too-large' }]);
    // complete in one chunk is still too large
    const whole = new JsonFramer(64).push(Buffer.from(`{"a":"${'x'.repeat(100)}"}`));
    expect(whole).to.deep.equal([{ kind: 'error', reason: 'too-large' }]);
  });
});
