import { binding } from './binding.js';

// Both single-buffer forms go through the raw Node-API callback (crates/napi/src/fast.rs): a
// digest per PDU is too small to pay napi-rs's per-call borrow scope (~85 ns).
const crcRange = binding.fastFunctions().crc32cRange;

/** CRC32C (Castagnoli) of `data`, continuing from `seed` (0 to start): hardware CRC32 instruction. */
export function crc32c(data: Uint8Array, seed = 0): number {
  return crcRange(data, 0, data.length, seed);
}

/**
 * CRC32C of `buf[start, end)` continuing from `seed`, with no view made for the range (digests
 * over part of a receive or send buffer, per PDU). Throws a RangeError (code EINVAL) for a range
 * outside `buf`.
 */
export function crc32cRange(buf: Uint8Array, start: number, end: number, seed = 0): number {
  return crcRange(buf, start, end, seed);
}

/** CRC32C over several buffers as if they were one. */
export function crc32cList(bufs: Uint8Array[], seed = 0): number {
  return binding.crc32cList(bufs, seed);
}

/** Whether the CPU's CRC32 instruction is used. */
export const crc32cHardware: boolean = binding.crc32cHardware();
