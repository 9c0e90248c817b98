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
  copy(dst, dstOff, src, srcOff, len);
}

/** memcmp of `a[aOff..aOff+len)` and `b[bOff..bOff+len)`: -1, 0 or 1. */
export function compareRange(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): number {
  return compare(a, aOff, b, bOff, len);
}
