// Property tests of the codec and the allocator bitmap: any blob metadata survives serialize →
// pages → decode → parse (including chains that span pages and extent pages), and the bitmap
// behaves like a set of integers under any sequence of operations.
import { expect } from 'chai';
import fc from 'fast-check';
import { Bitmap } from '../src/bitmap.js';
import {
  applyExtentPage,
  type BlobMd,
  decodeMdPage,
  EXTENTS_PER_PAGE,
  encodeMdPage,
  INVALID_PAGE,
  parseBlob,
  serializeBlob,
  serializeExtentPage,
} from '../src/format/index.js';

const xattr = fc.record({
  name: fc.string({ minLength: 1, maxLength: 24 }).filter((s) => !s.includes('\0')),
  value: fc.uint8Array({ minLength: 0, maxLength: 700 }),
});

const blobMd = fc
  .record({
    page: fc.integer({ min: 0, max: 5000 }),
    thin: fc.boolean(),
    table: fc.boolean(),
    readOnly: fc.boolean(),
    unknownDataRo: fc.boolean(),
    xattrs: fc.array(xattr, { maxLength: 12 }),
    internal: fc.array(xattr, { maxLength: 4 }),
    numClusters: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 2600 })),
    seed: fc.integer(),
    holes: fc.integer({ min: 0, max: 100 }),
  })
  .map((r) => {
    // Clusters: runs of consecutive indexes with jumps and (in thin blobs) holes.
    let s = r.seed >>> 0;
    const rnd = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const clusters: number[] = [];
    let c = 1 + Math.floor(rnd() * 1000);
    for (let i = 0; i < r.numClusters; i++) {
      if (r.thin && rnd() * 100 < r.holes) clusters.push(0);
      else {
        if (rnd() < 0.2) c = 1 + Math.floor(rnd() * 100000);
        clusters.push(c++);
      }
    }
    const eps = r.table ? Math.ceil(r.numClusters / EXTENTS_PER_PAGE) : 0;
    const extentPages: number[] = [];
    for (let i = 0; i < eps; i++) {
      const slice = clusters.slice(i * EXTENTS_PER_PAGE, (i + 1) * EXTENTS_PER_PAGE);
      extentPages.push(r.thin && slice.every((x) => x === 0) ? 0 : 6000 + i);
    }
    const md: BlobMd = {
      id: 2 ** 32 + r.page,
      invalidFlags: (r.thin ? 1n : 0n) | (r.table ? 4n : 0n) | (r.internal.length > 0 ? 2n : 0n),
      dataRoFlags: (r.readOnly ? 1n : 0n) | (r.unknownDataRo ? 0x80n : 0n),
      mdRoFlags: 0n,
      xattrs: r.xattrs,
      internalXattrs: r.internal,
      useExtentTable: r.table,
      numClusters: r.numClusters,
      clusters,
      numExtentPages: eps,
      extentPages,
    };
    return md;
  });

describe('blob format: properties', () => {
  it('serialize → encode → decode → parse gives the blob back', () => {
    fc.assert(
      fc.property(blobMd, (md) => {
        const pages = serializeBlob(md);
        const chain = pages.map((_, i) => (i === 0 ? md.id - 2 ** 32 : 9000 + i));
        pages.forEach((p, i) => {
          p.next = i + 1 < pages.length ? chain[i + 1] : INVALID_PAGE;
        });
        const decoded = pages.map((p, i) => decodeMdPage(encodeMdPage(p), chain[i]));
        const set = new Set(md.clusters as number[]);
        const used = (c: number) => set.has(c);
        const b = parseBlob(md.id, decoded, used);
        b.extentPages.forEach((ep, i) => {
          const page = ep === 0 ? null : decodeMdPage(encodeMdPage(serializeExtentPage(md, i)), ep);
          applyExtentPage(md.id, b, i, page, used);
        });
        expect(b.invalidFlags).to.equal(md.invalidFlags);
        expect(b.dataRoFlags).to.equal(md.dataRoFlags);
        expect(b.xattrs).to.deep.equal(md.xattrs);
        expect(b.internalXattrs).to.deep.equal(md.internalXattrs);
        expect(b.clusters).to.deep.equal(md.clusters);
        // SPDK writes no extent descriptor for an empty run-length blob.
        if (md.numClusters > 0 || md.useExtentTable) expect(b.useExtentTable).to.equal(md.useExtentTable);
        expect(b.remaining).to.equal(0);
      }),
      { numRuns: 300, seed: 0x5eed },
    );
  });

  it('the bitmap is a set of integers', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), i: fc.nat(300) }),
      fc.record({ k: fc.constant('clear' as const), i: fc.nat(300) }),
      fc.record({ k: fc.constant('ffc' as const), i: fc.nat(310) }),
      fc.record({ k: fc.constant('ffs' as const), i: fc.nat(310) }),
      fc.record({ k: fc.constant('resize' as const), i: fc.nat(320) }),
      fc.record({ k: fc.constant('bytes' as const), i: fc.nat(1) }),
    );
    fc.assert(
      fc.property(fc.nat(300), fc.array(op, { maxLength: 200 }), (len0, ops) => {
        let len = len0;
        let b = new Bitmap(len);
        const model = new Set<number>();
        for (const o of ops) {
          const i = len === 0 ? 0 : o.i % Math.max(len, 1);
          switch (o.k) {
            case 'set':
              if (len === 0) break;
              b.set(i);
              model.add(i);
              break;
            case 'clear':
              if (len === 0) break;
              b.clear(i);
              model.delete(i);
              break;
            case 'ffc': {
              let want = -1;
              for (let j = o.i; j < len; j++)
                if (!model.has(j)) {
                  want = j;
                  break;
                }
              expect(b.findFirstClear(o.i)).to.equal(want);
              break;
            }
            case 'ffs': {
              let want = -1;
              for (let j = o.i; j < len; j++)
                if (model.has(j)) {
                  want = j;
                  break;
                }
              expect(b.findFirstSet(o.i)).to.equal(want);
              break;
            }
            case 'resize':
              len = o.i;
              b.resize(len);
              for (const x of [...model]) if (x >= len) model.delete(x);
              break;
            case 'bytes':
              b = Bitmap.fromBytes(b.toBytes(), len);
              break;
          }
          expect(b.count).to.equal(model.size);
          expect(b.countClear).to.equal(len - model.size);
        }
      }),
      { numRuns: 300, seed: 0xb17 },
    );
  });
});
