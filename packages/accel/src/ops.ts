// The argument checks and task setup of each operation, shared by single submits, sequences and
// batches. A check throws AccelError EINVAL before any task is taken.
import { AccelError } from './errors.js';
import type { AccelIovecs } from './iovecs.js';
import type { AccelTask } from './task.js';

function inRange(buf: Uint8Array, off: number, len: number): boolean {
  return len > 0 && off >= 0 && off + len <= buf.length && Number.isInteger(off) && Number.isInteger(len);
}

function bad(why: string): never {
  throw new AccelError('EINVAL', why);
}

/**
 * Copies may overlap: the result is memmove's (the software module's set() and copyRange are;
 * a module whose engine is not runs such a copy on the CPU). Not checked here: telling whether two
 * views share memory reads their buffers, ~65 ns per copy on the CPU path.
 */
export function checkCopy(
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  if (!inRange(dst, dstOff, len) || !inRange(src, srcOff, len)) bad('copy range outside its buffer');
}

export function setCopy(
  t: AccelTask,
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  t.dst = dst;
  t.dstOff = dstOff;
  t.src = src;
  t.srcOff = srcOff;
  t.len = len;
}

export function checkFill(dst: Uint8Array, dstOff: number, len: number, byte: number): void {
  if (!inRange(dst, dstOff, len)) bad('fill range outside its buffer');
  if (!(byte >= 0 && byte <= 255 && Number.isInteger(byte))) bad('fill byte must be 0..255');
}

export function setFill(t: AccelTask, dst: Uint8Array, dstOff: number, len: number, byte: number): void {
  t.dst = dst;
  t.dstOff = dstOff;
  t.len = len;
  t.fill = byte;
}

export function checkDualcast(
  d1: Uint8Array,
  d1Off: number,
  d2: Uint8Array,
  d2Off: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  checkCopy(d1, d1Off, src, srcOff, len);
  checkCopy(d2, d2Off, src, srcOff, len);
}

export function setDualcast(
  t: AccelTask,
  d1: Uint8Array,
  d1Off: number,
  d2: Uint8Array,
  d2Off: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  setCopy(t, d1, d1Off, src, srcOff, len);
  t.dst2 = d2;
  t.dst2Off = d2Off;
}

export function checkCompare(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): void {
  if (!inRange(a, aOff, len) || !inRange(b, bOff, len)) bad('compare range outside its buffer');
}

/** compare keeps its first buffer in src and its second in dst. */
export function setCompare(
  t: AccelTask,
  a: Uint8Array,
  aOff: number,
  b: Uint8Array,
  bOff: number,
  len: number,
): void {
  setCopy(t, b, bOff, a, aOff, len);
}

export function checkSeed(seed: number): void {
  if (seed >>> 0 !== seed) bad(`crc32c seed ${seed} is not a 32-bit unsigned integer`);
}

export function checkCrc(src: Uint8Array, srcOff: number, len: number, seed: number): void {
  if (!inRange(src, srcOff, len)) bad('crc32c range outside its buffer');
  checkSeed(seed);
}

export function setCrc(t: AccelTask, src: Uint8Array, srcOff: number, len: number, seed: number): void {
  t.src = src;
  t.srcOff = srcOff;
  t.len = len;
  t.seed = seed;
  t.iovs = null;
}

export function checkCrcv(iovs: AccelIovecs, seed: number): void {
  if (iovs.count === 0 || iovs.length === 0) bad('crc32c over an empty scatter list');
  checkSeed(seed);
}

export function setCrcv(t: AccelTask, iovs: AccelIovecs, seed: number): void {
  t.iovs = iovs;
  t.len = iovs.length;
  t.seed = seed;
}
