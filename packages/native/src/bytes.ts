import { binding } from './binding.js';

// Raw Node-API callbacks (crates/napi/src/fast.rs): ranges of typed arrays with no view made for
// them, so a per-I/O copy or compare over part of a buffer allocates nothing.
const fast = binding.fastFunctions();
const copy = fast.copyRange;
const compare = fast.compareRange;

/**
 * Copy `len` bytes from `src[srcOff..]` to `dst[dstOff..]` (memmove: the ranges may overlap).
 * Throws a RangeError (code EINVAL) for a range outside its array.
 */
export function copyRange(
  dst: Uint8Array,
  dstOff: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
): void {
  // Within one array (accel-perf's buffers, a region's own blocks): copyWithin is memmove in a V8
  // builtin, with no Node-API crossing (whose argument reads cost as much as a 4 KiB memmove). It
  // clamps a range outside the array instead of throwing, so only checked ranges take it.
  if (
    dst === src &&
    dstOff >= 0 &&
    srcOff >= 0 &&
    len >= 0 &&
    dstOff + len <= dst.length &&
    srcOff + len <= dst.length &&
    Number.isInteger(dstOff) &&
    Number.isInteger(srcOff) &&
    Number.isInteger(len)
  ) {
    dst.copyWithin(dstOff, srcOff, srcOff + len);
    return;
  }
  copy(dst, dstOff, src, srcOff, len);
}

/** memcmp of `a[aOff..aOff+len)` and `b[bOff..bOff+len)`: -1, 0 or 1. */
export function compareRange(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): number {
  return compare(a, aOff, b, bOff, len);
}
