// raid0 (SPDK's raid0.c): strips of strip_size_kb laid round robin over the bases. The bdev layer
// splits reads and writes at the strip (the raid's optimal I/O boundary), so each reaches one base.
import type { Layout, Raid } from './raid.js';

export const raid0Layout: Layout = {
  slotOf(r: Raid, off: number): number {
    return Math.floor(off / r.stripBlocks) % r.slots.length;
  },
  baseOffset(r: Raid, _slot: number, off: number): number {
    const strip = Math.floor(off / r.stripBlocks);
    return Math.floor(strip / r.slots.length) * r.stripBlocks + (off % r.stripBlocks);
  },
  extentEnd(r: Raid, _slot: number, off: number): number {
    return (Math.floor(off / r.stripBlocks) + 1) * r.stripBlocks;
  },
};
