// memcpy between Uint8Arrays without creating subarray views: Buffer.prototype.copy accepts any
// Uint8Array as source and target, so this allocates nothing and copies natively.

const bufferCopy = Buffer.prototype.copy;

/** Copy `src[srcStart, srcEnd)` to `dst` at `dstStart`; returns the number of bytes copied. */
export function copyBytes(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
): number {
  return bufferCopy.call(src, dst, dstStart, srcStart, srcEnd);
}
