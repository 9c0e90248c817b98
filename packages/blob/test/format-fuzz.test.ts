// Fuzzing the metadata parsers from the corpus in test/corpus (pages SPDK wrote: super blocks,
// blob roots, chain pages, extent pages). Mutations keep the CRC valid, so they reach the
// descriptor and chain parsers; every input must decode or fail with a BlobError, quickly.
import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import fc from 'fast-check';
import { BlobError } from '../src/errors.js';
import { decodeMdPage, decodeSuper, MD, PAGE_SIZE, pageCrc, parseBlob } from '../src/format/index.js';

const dir = new URL('../../test/corpus/', import.meta.url);
const corpus = readdirSync(dir)
  .filter((f) => f.endsWith('.page'))
  .sort()
  .map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(new URL(f, dir))) }));

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(PAGE_SIZE - 5), v: fc.nat(255) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(PAGE_SIZE - 8), v: fc.nat() }),
  fc.record({
    kind: fc.constant('len' as const),
    at: fc.nat(60),
    v: fc.oneof(fc.nat(8200), fc.constant(0xffffffff)),
  }),
  fc.record({ kind: fc.constant('type' as const), at: fc.nat(60), v: fc.nat(9) }),
);

function mutate(src: Uint8Array, ms: { kind: string; at: number; v: number }[]): Uint8Array {
  const p = src.slice();
  const v = new DataView(p.buffer);
  for (const m of ms) {
    if (m.kind === 'byte') p[m.at] = m.v;
    else if (m.kind === 'u32') v.setUint32(m.at, m.v >>> 0, true);
    else if (m.kind === 'len') v.setUint32(MD.DESCRIPTORS + m.at + 1, m.v >>> 0, true);
    else p[MD.DESCRIPTORS + m.at] = m.v;
  }
  v.setUint32(MD.CRC, pageCrc(p), true);
  return p;
}

function onlyBlobErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof BlobError)) throw e;
    expect(e.code).to.be.oneOf(['EILSEQ', 'ENOENT']);
  }
}

describe('blob format: fuzzing the parsers from the corpus', function () {
  this.timeout(60000);

  it('has a corpus of SPDK-written pages', () => {
    expect(corpus.map((c) => c.name)).to.include.members(['super-lvs.page', 'md-lvs-1.page', 'md-bs-7.page']);
  });

  it('mutated metadata pages: decoded and parsed, or a BlobError', () => {
    fc.assert(
      fc.property(fc.nat(corpus.length - 1), fc.array(mutation, { minLength: 1, maxLength: 6 }), (i, ms) => {
        const p = mutate(corpus[i].bytes, ms);
        onlyBlobErrors(() => {
          const d = decodeMdPage(p, 7);
          parseBlob(d.id, [d], () => true);
        });
      }),
      { numRuns: 4000, seed: 0xf022 },
    );
  });

  it('mutated super blocks: decoded, or a BlobError', () => {
    const supers = corpus.filter((c) => c.name.startsWith('super'));
    fc.assert(
      fc.property(fc.nat(supers.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, ms) => {
        const p = mutate(
          supers[i].bytes,
          ms.map((m) => ({ ...m, at: m.kind === 'byte' || m.kind === 'u32' ? m.at % 96 : m.at })),
        );
        onlyBlobErrors(() => decodeSuper(p, 16 * 1024 * 1024, 4096));
      }),
      { numRuns: 3000, seed: 0x5b },
    );
  });
});
