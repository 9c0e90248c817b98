import { binding } from './binding.js';

/** CRC32C (Castagnoli) of `data`, continuing from `seed` (0 to start): hardware CRC32 instruction. */
export function crc32c(data: Uint8Array, seed = 0): number {
  return binding.crc32c(data, seed);
}

/** CRC32C over several buffers as if they were one. */
export function crc32cList(bufs: Uint8Array[], seed = 0): number {
  return binding.crc32cList(bufs, seed);
}

/** Whether the CPU's CRC32 instruction is used. */
export const crc32cHardware: boolean = binding.crc32cHardware();
