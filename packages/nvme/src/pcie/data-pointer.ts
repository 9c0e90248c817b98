// Data pointers of NVMe over PCIe commands, built from the IO addresses of the caller's DMA
// region (zero copy): PRP entries and PRP lists (NVMe Base 2.0 §4.1.1), and SGL Data Block /
// Last Segment descriptors (§4.1.2) when the controller supports SGLs for the NVM command set.
// Every function writes in place into the SQE and the command's own list area; nothing
// allocates.

import type { IoMap } from '@storkit/native';

/** Memory page size of the host (CC.MPS = 0). */
export const PAGE = 4096;
const TWO32 = 0x1_0000_0000;

/** SQE offsets of the data pointer: PRP1/PRP2, or SGL1 (same 16 bytes). */
const DPTR = 24;
/** PSDT (SQE byte 1 bits 7:6) = 01b: SGLs, MPTR holds a contiguous metadata buffer. */
export const PSDT_SGL_MPTR_CONTIG = 0x40;
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

/** The IO address of byte `off` of a region mapped as `map`. */
export function ioAt(map: IoMap, off: number): number {
  if (map.contiguous) return map.pages[0] + off;
  const p = Math.floor(off / map.pageSize);
  return map.pages[p] + (off - p * map.pageSize);
}

function put64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32), true);
}

/** Where a command's PRP list or SGL segment goes: a DataView over its bytes and their IO address. */
export interface ListArea {
  dv: DataView;
  /** Byte offset of this command's area in `dv`. */
  off: number;
  /** IO address of that byte. */
  io: number;
  /** Bytes in the area (a power of two up to 4096, so it never crosses a memory page). */
  bytes: number;
}

/**
 * PRP1/PRP2 for `len` (> 0) bytes at byte `off` of the region. Returns false when PRPs cannot
 * describe it: the start is not dword aligned, or it needs more list entries than the area holds.
 */
export function buildPrps(
  sq: DataView,
  s: number,
  map: IoMap,
  off: number,
  len: number,
  list: ListArea,
): boolean {
  const a0 = ioAt(map, off);
  if ((a0 & 3) !== 0) return false;
  const first = PAGE - (a0 & (PAGE - 1));
  put64(sq, s + DPTR, a0);
  if (len <= first) {
    put64(sq, s + DPTR + 8, 0);
    return true;
  }
  const pages = Math.ceil((len - first) / PAGE);
  const next = off + first;
  if (pages === 1) {
    put64(sq, s + DPTR + 8, ioAt(map, next));
    return true;
  }
  if (pages * 8 > list.bytes) return false;
  const dv = list.dv;
  let at = list.off;
  if (map.contiguous) {
    let a = map.pages[0] + next;
    for (let i = 0; i < pages; i++, at += 8, a += PAGE) put64(dv, at, a);
  } else {
    for (let i = 0; i < pages; i++, at += 8) put64(dv, at, ioAt(map, next + i * PAGE));
  }
  put64(sq, s + DPTR + 8, list.io);
  return true;
}

/**
 * SGL1 for `len` bytes at byte `off`: one Data Block when the bytes are contiguous in IO space,
 * else a Last Segment of Data Blocks (one per piece) in the list area. Sets PSDT. Returns false
 * when the controller's alignment rule (dword) is broken or the pieces do not fit the area.
 */
export function buildSgl(
  sq: DataView,
  s: number,
  map: IoMap,
  off: number,
  len: number,
  list: ListArea,
  support: SglSupport,
): boolean {
  const a0 = ioAt(map, off);
  if (support === SglSupport.Dword && ((a0 & 3) !== 0 || (len & 3) !== 0)) return false;
  sq.setUint8(s + 1, (sq.getUint8(s + 1) & 0x3f) | PSDT_SGL_MPTR_CONTIG);
  const ps = map.pageSize;
  const contiguous = map.contiguous || Math.floor(off / ps) === Math.floor((off + len - 1) / ps);
  if (contiguous) {
    descriptor(sq, s + DPTR, a0, len, SGL_DATA_BLOCK);
    return true;
  }
  // Physical pages: one Data Block per page piece.
  const dv = list.dv;
  let at = list.off;
  let o = off;
  let n = 0;
  while (o < off + len) {
    const piece = Math.min(ps - (o % ps), off + len - o);
    if ((n + 1) * 16 > list.bytes) return false;
    descriptor(dv, at, ioAt(map, o), piece, SGL_DATA_BLOCK);
    at += 16;
    o += piece;
    n++;
  }
  descriptor(sq, s + DPTR, list.io, n * 16, SGL_LAST_SEGMENT);
  return true;
}

function descriptor(dv: DataView, at: number, address: number, length: number, id: number): void {
  put64(dv, at, address);
  dv.setUint32(at + 8, length >>> 0, true);
  dv.setUint16(at + 12, 0, true);
  dv.setUint8(at + 14, 0);
  dv.setUint8(at + 15, id);
}
