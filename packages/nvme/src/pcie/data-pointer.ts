// Data pointers of NVMe over PCIe commands, built from the IO addresses of the caller's DMA
// region (zero copy): PRP entries and PRP lists (NVMe Base 2.0 §4.1.1), and SGL Data Block /
// Last Segment descriptors (§4.1.2) when the controller supports SGLs for the NVM command set.
// Every function writes in place, dword by dword, into the SQE and the command's own list area
// (Uint32Arrays over the queue memory); nothing allocates. IO addresses are above 2^31, so they
// never cross a function boundary as numbers (a double passed to or returned from a call that is
// not inlined is boxed on the heap): each builder computes them from the map and a small offset.

import type { IoMap } from '@storkit/native';

/** Memory page size of the host (CC.MPS = 0). */
export const PAGE = 4096;
const TWO32 = 0x1_0000_0000;

/** SQE dword of the data pointer: PRP1/PRP2, or SGL1 (the same 16 bytes). */
const DPTR = 6;
/** PSDT (SQE byte 1 bits 7:6, dword 0 bits 15:14) = 01b: SGLs, MPTR a contiguous metadata buffer. */
export const PSDT_SGL_MPTR_CONTIG = 0x40;
const PSDT_MASK_DW0 = 0xc000;
/** SGL descriptor identifiers (type << 4 | subtype 0 = address). */
const SGL_DATA_BLOCK = 0x00;
const SGL_LAST_SEGMENT = 0x30;

/** Controller SGL support (Identify SGLS bits 1:0): none, any alignment, dword alignment. */
export const SglSupport = { None: 0, Byte: 1, Dword: 2 } as const;
export type SglSupport = (typeof SglSupport)[keyof typeof SglSupport];

export function sglSupportOf(sgls: number): SglSupport {
  const s = sgls & 3;
  return s === 1 ? SglSupport.Byte : s === 2 ? SglSupport.Dword : SglSupport.None;
}

/** The IO address of byte `off` of a region mapped as `map` (control paths; builders inline it). */
export function ioAt(map: IoMap, off: number): number {
  if (map.contiguous) return map.pages[0] + off;
  const p = Math.floor(off / map.pageSize);
  return map.pages[p] + (off - p * map.pageSize);
}

/**
 * Where a command's PRP list or SGL segment goes: `bytes` bytes at byte offset `off` of the queue
 * region (`u32` views all of it, `map` is its IO map). `bytes` is a power of two up to a page, so
 * the area never crosses a memory page.
 */
export interface ListArea {
  u32: Uint32Array;
  off: number;
  bytes: number;
  map: IoMap;
}

/**
 * PRP1/PRP2 for `len` (> 0) bytes at byte `off` of the region, into the SQE at dword `w` of `sq`.
 * Returns false when PRPs cannot describe it: the start is not dword aligned, or it needs more
 * list entries than the area holds.
 */
export function buildPrps(
  sq: Uint32Array,
  w: number,
  map: IoMap,
  off: number,
  len: number,
  list: ListArea,
): boolean {
  const pages = map.pages;
  const ps = map.pageSize;
  const contiguous = map.contiguous;
  let p = contiguous ? 0 : Math.floor(off / ps);
  const a0 = pages[p] + (off - p * ps);
  if ((a0 & 3) !== 0) return false;
  const first = PAGE - (a0 & (PAGE - 1));
  sq[w + DPTR] = a0 >>> 0;
  sq[w + DPTR + 1] = (a0 / TWO32) >>> 0;
  if (len <= first) {
    sq[w + DPTR + 2] = 0;
    sq[w + DPTR + 3] = 0;
    return true;
  }
  const n = Math.ceil((len - first) / PAGE);
  const next = off + first;
  if (n === 1) {
    p = contiguous ? 0 : Math.floor(next / ps);
    const a = pages[p] + (next - p * ps);
    sq[w + DPTR + 2] = a >>> 0;
    sq[w + DPTR + 3] = (a / TWO32) >>> 0;
    return true;
  }
  if (n * 8 > list.bytes) return false;
  const u = list.u32;
  let at = list.off >> 2;
  for (let i = 0; i < n; i++, at += 2) {
    const o = next + i * PAGE;
    p = contiguous ? 0 : Math.floor(o / ps);
    const a = pages[p] + (o - p * ps);
    u[at] = a >>> 0;
    u[at + 1] = (a / TWO32) >>> 0;
  }
  const lm = list.map;
  const lp = lm.contiguous ? 0 : Math.floor(list.off / lm.pageSize);
  const l = lm.pages[lp] + (list.off - lp * lm.pageSize);
  sq[w + DPTR + 2] = l >>> 0;
  sq[w + DPTR + 3] = (l / TWO32) >>> 0;
  return true;
}

/**
 * SGL1 for `len` bytes at byte `off`: one Data Block when the bytes are contiguous in IO space,
 * else a Last Segment of Data Blocks (one per piece) in the list area. Sets PSDT. Returns false
 * when the controller's alignment rule (dword) is broken or the pieces do not fit the area.
 */
export function buildSgl(
  sq: Uint32Array,
  w: number,
  map: IoMap,
  off: number,
  len: number,
  list: ListArea,
  support: SglSupport,
): boolean {
  const pages = map.pages;
  const ps = map.pageSize;
  const contiguous = map.contiguous;
  let p = contiguous ? 0 : Math.floor(off / ps);
  const a0 = pages[p] + (off - p * ps);
  if (support === SglSupport.Dword && ((a0 & 3) !== 0 || (len & 3) !== 0)) return false;
  sq[w] = ((sq[w] & ~PSDT_MASK_DW0) | (PSDT_SGL_MPTR_CONTIG << 8)) >>> 0;
  if (contiguous || p === Math.floor((off + len - 1) / ps)) {
    sq[w + DPTR] = a0 >>> 0;
    sq[w + DPTR + 1] = (a0 / TWO32) >>> 0;
    sq[w + DPTR + 2] = len;
    sq[w + DPTR + 3] = SGL_DATA_BLOCK << 24;
    return true;
  }
  // Physical pages: one Data Block per page piece, in a Last Segment.
  const u = list.u32;
  let at = list.off >> 2;
  let o = off;
  let n = 0;
  while (o < off + len) {
    const piece = Math.min(ps - (o % ps), off + len - o);
    if ((n + 1) * 16 > list.bytes) return false;
    p = Math.floor(o / ps);
    const a = pages[p] + (o - p * ps);
    u[at] = a >>> 0;
    u[at + 1] = (a / TWO32) >>> 0;
    u[at + 2] = piece;
    u[at + 3] = SGL_DATA_BLOCK << 24;
    at += 4;
    o += piece;
    n++;
  }
  const lm = list.map;
  const lp = lm.contiguous ? 0 : Math.floor(list.off / lm.pageSize);
  const l = lm.pages[lp] + (list.off - lp * lm.pageSize);
  sq[w + DPTR] = l >>> 0;
  sq[w + DPTR + 1] = (l / TWO32) >>> 0;
  sq[w + DPTR + 2] = n * 16;
  sq[w + DPTR + 3] = (SGL_LAST_SEGMENT << 24) >>> 0;
  return true;
}
