// concat (SPDK's concat.c): the bases end to end, each contributing a whole number of strips. The
// bdev layer splits reads and writes at the strip, so none crosses from one base to the next.
import type { Layout, Raid } from './raid.js';

export const concatLayout: Layout = {
  slotOf(r: Raid, off: number): number {
    for (let i = 0; i < r.slots.length; i++) {
      const s = r.slots[i];
      if (off < s.start + s.blocks) return i;
    }
    return r.slots.length - 1;
  },
  baseOffset(r: Raid, slot: number, off: number): number {
    return off - r.slots[slot].start;
  },
  extentEnd(r: Raid, slot: number, _off: number): number {
    const s = r.slots[slot];
    return s.start + s.blocks;
  },
};
