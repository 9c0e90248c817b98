// memcpy between Uint8Arrays by offsets. Buffer.prototype.copy accepts any Uint8Array as source and
// target and copies natively; in Node 20 it still creates one short-lived view of the source when
// copying part of it (lib/buffer.js _copyActual), the only allocation left on the data path. A
// whole source goes through TypedArray#set instead, which makes no view: callers that keep a view
// of exactly the bytes to copy (a request's iov) copy without allocating.

const bufferCopy = Buffer.prototype.copy;

/** Copy `src[srcStart, srcEnd)` to `dst` at `dstStart`; returns the number of bytes copied. */
export function copyBytes(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
): number {
  if (srcStart === 0 && srcEnd === src.length && dstStart + srcEnd <= dst.length) {
    dst.set(src, dstStart);
    return srcEnd;
  }
  return bufferCopy.call(src, dst, dstStart, srcStart, srcEnd);
}
