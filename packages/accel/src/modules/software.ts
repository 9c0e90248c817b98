// The software module: the CPU does the work, on the submitting reactor (SPDK's accel_sw.c). It
// takes every opcode. The work is done in submit; the callback still comes from the channel's
// poller, never from inside submit.
import { compareRange, copyRange, crc32cRange } from '@storkit/native';

import { ACCEL_EMISCOMPARE } from '../errors.js';
import type { AccelModule } from '../module.js';
import { ACCEL_OPC, ACCEL_OPC_COUNT } from '../opcodes.js';
import type { AccelTask } from '../task.js';

/** Do `t` on this CPU and complete it: what the software module does, and others fall back to. */
export function runOnCpu(t: AccelTask): void {
  switch (t.op) {
    case ACCEL_OPC.COPY:
      copy(t.dst, t.dstOff, t.src, t.srcOff, t.len);
      t.complete(0);
      return;
    case ACCEL_OPC.FILL:
      t.dst.fill(t.fill, t.dstOff, t.dstOff + t.len);
      t.complete(0);
      return;
    case ACCEL_OPC.DUALCAST:
      copy(t.dst, t.dstOff, t.src, t.srcOff, t.len);
      copy(t.dst2, t.dst2Off, t.src, t.srcOff, t.len);
      t.complete(0);
      return;
    case ACCEL_OPC.COMPARE:
      t.complete(compareRange(t.src, t.srcOff, t.dst, t.dstOff, t.len) === 0 ? 0 : ACCEL_EMISCOMPARE);
      return;
    case ACCEL_OPC.CRC32C:
      t.complete(0, crcOf(t));
      return;
    case ACCEL_OPC.COPY_CRC32C:
      copy(t.dst, t.dstOff, t.src, t.srcOff, t.len);
      t.complete(0, crc32cRange(t.src, t.srcOff, t.srcOff + t.len, t.seed));
      return;
  }
}

/**
 * A copy. Whole arrays on both sides (a caller's views) take TypedArray set(), a builtin with no
 * napi call; ranges within arrays take copyRange, which makes no view (~90 ns more for 4 KiB).
 */
function copy(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (dstOff === 0 && srcOff === 0 && len === src.length && len === dst.length) dst.set(src);
  else copyRange(dst, dstOff, src, srcOff, len);
}

function crcOf(t: AccelTask): number {
  const v = t.iovs;
  if (v === null) return crc32cRange(t.src, t.srcOff, t.srcOff + t.len, t.seed);
  let crc = t.seed;
  for (let i = 0; i < v.count; i++) crc = crc32cRange(v.bufs[i], v.offs[i], v.offs[i] + v.lens[i], crc);
  return crc;
}

export const softwareModule: AccelModule<null> = {
  name: 'software',
  priority: 1,
  supportsOpcode: (op) => op >= 0 && op < ACCEL_OPC_COUNT,
  enabled: () => true,
  createChannel: () => null,
  submit(_mc, t) {
    runOnCpu(t);
    return 0;
  },
  inline(_mc, t) {
    runOnCpu(t);
    return true;
  },
};
