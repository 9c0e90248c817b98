import type { IoMap } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';

import { buildPrps, buildSgl, type ListArea, PAGE, SglSupport } from '../src/pcie/data-pointer.js';
import { queueLayout } from '../src/pcie/queue-memory.js';

// An independent reading of what a data pointer describes: the list of [io, length] pieces a
// controller would transfer, walked from the SQE and the list area as the spec says.
function walkPrps(sq: DataView, list: ListArea, len: number): [number, number][] {
  const ldv = new DataView(list.u32.buffer);
  const r64 = (dv: DataView, o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 2 ** 32;
  const prp1 = r64(sq, 24);
  const prp2 = r64(sq, 32);
  const out: [number, number][] = [];
  const first = Math.min(len, PAGE - (prp1 % PAGE));
  out.push([prp1, first]);
  let left = len - first;
  if (left === 0) {
    expect(prp2).to.equal(0);
    return out;
  }
  if (left <= PAGE) {
    expect(prp2 % PAGE, 'PRP2 is a page').to.equal(0);
    out.push([prp2, left]);
    return out;
  }
  expect(prp2).to.equal(LIST_IO);
  for (let at = list.off; left > 0; at += 8) {
    const e = r64(ldv, at);
    expect(e % PAGE, 'list entries are pages').to.equal(0);
    const n = Math.min(PAGE, left);
    out.push([e, n]);
    left -= n;
  }
  return out;
}

function walkSgl(sq: DataView, list: ListArea): [number, number][] {
  const ldv = new DataView(list.u32.buffer);
  const r64 = (dv: DataView, o: number) => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 2 ** 32;
  expect(sq.getUint8(1) >> 6, 'PSDT').to.equal(1);
  const id = sq.getUint8(39);
  if (id === 0x00) return [[r64(sq, 24), sq.getUint32(32, true)]];
  expect(id, 'a last segment').to.equal(0x30);
  expect(r64(sq, 24)).to.equal(LIST_IO);
  const out: [number, number][] = [];
  for (let i = 0; i < sq.getUint32(32, true) / 16; i++) {
    expect(ldv.getUint8(list.off + i * 16 + 15)).to.equal(0);
    out.push([r64(ldv, list.off + i * 16), ldv.getUint32(list.off + i * 16 + 8, true)]);
  }
  return out;
}

/** The IO addresses the pieces should cover, from the map directly, byte range by byte range. */
function expected(map: IoMap, off: number, len: number): [number, number][] {
  const out: [number, number][] = [];
  for (let o = off; o < off + len; ) {
    const p = Math.floor(o / map.pageSize);
    const n = Math.min(map.pageSize - (o % map.pageSize), off + len - o);
    out.push([map.pages[p] + (o % map.pageSize), n]);
    o += n;
  }
  return out;
}

/** Merge adjacent pieces, so PRP page pieces compare with page-map pieces. */
function merge(p: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, n] of p) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === a) last[1] += n;
    else out.push([a, n]);
  }
  return out;
}

const iova: IoMap = {
  space: 'iova',
  pageSize: 2 << 20,
  pages: Float64Array.from([7 * 2 ** 32, 7 * 2 ** 32 + (2 << 20)]),
  contiguous: true,
};
// Physical hugepages, not in order: pieces break at 2 MiB boundaries.
const phys: IoMap = {
  space: 'physical',
  pageSize: 2 << 20,
  pages: Float64Array.from([0x1_4000_0000, 0x9000_0000, 0x2_0000_0000]),
  contiguous: false,
};

// The list area: page 1 of a queue region whose IO space starts at 0x5_0000_0000.
const queueMap: IoMap = {
  space: 'iova',
  pageSize: 4096,
  pages: Float64Array.from([0x5_0000_0000, 0x5_0000_1000]),
  contiguous: true,
};
const LIST_IO = 0x5_0000_1000;

function area(): ListArea {
  return { u32: new Uint32Array(2048), off: 4096, bytes: 4096, map: queueMap };
}

describe('nvme pcie: data pointers', () => {
  it('PRPs describe exactly the bytes of the buffer, for any dword-aligned start and length', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(iova, phys),
        fc.integer({ min: 0, max: (4 << 20) / 4 - 1 }),
        fc.integer({ min: 1, max: 511 * PAGE }),
        (map, o4, len) => {
          const off = Math.min(o4 * 4, map.pages.length * map.pageSize - len);
          if (off < 0 || off % 4 !== 0) return;
          const sq = new DataView(new ArrayBuffer(64));
          const list = area();
          expect(buildPrps(new Uint32Array(sq.buffer), 0, map, off, len, list)).to.equal(true);
          expect(merge(walkPrps(sq, list, len))).to.deep.equal(merge(expected(map, off, len)));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('SGLs describe exactly the bytes: one data block when contiguous, a segment across hugepages', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(iova, phys),
        fc.integer({ min: 0, max: (6 << 20) - 1 }),
        fc.integer({ min: 1, max: 4 << 20 }),
        (map, o, len) => {
          const off = Math.min(o, map.pages.length * map.pageSize - len);
          if (off < 0) return;
          const sq = new DataView(new ArrayBuffer(64));
          const list = area();
          expect(buildSgl(new Uint32Array(sq.buffer), 0, map, off, len, list, SglSupport.Byte)).to.equal(
            true,
          );
          expect(merge(walkSgl(sq, list))).to.deep.equal(merge(expected(map, off, len)));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('refuses what the controller cannot take: misaligned PRP starts, dword SGL rules, too long lists', () => {
    const sq = new Uint32Array(16);
    expect(buildPrps(sq, 0, iova, 2, 512, area())).to.equal(false);
    expect(buildSgl(sq, 0, iova, 2, 512, area(), SglSupport.Dword)).to.equal(false);
    expect(buildSgl(sq, 0, iova, 4, 510, area(), SglSupport.Dword)).to.equal(false);
    expect(buildSgl(sq, 0, iova, 2, 512, area(), SglSupport.Byte)).to.equal(true);
    const small = { ...area(), bytes: 256 };
    expect(buildPrps(sq, 0, iova, 0, 33 * PAGE + 1, small), '33 entries do not fit 256 bytes').to.equal(
      false,
    );
    expect(buildPrps(sq, 0, iova, 0, 33 * PAGE, small), '32 entries do').to.equal(true);
  });

  it('lays out queues page aligned, with a list area per command that never crosses a page', () => {
    const l = queueLayout(127, 128 * 1024);
    expect(l.entries).to.equal(128);
    expect(l.cqOffset % PAGE).to.equal(0);
    expect(l.listOffset % PAGE).to.equal(0);
    expect(l.listBytes).to.equal(512);
    expect(PAGE % l.listBytes).to.equal(0);
    expect(queueLayout(8, 511 * PAGE).listBytes).to.equal(PAGE);
  });
});
