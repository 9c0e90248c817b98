import { crc32cRange } from '@storkit/native';
import { PAGE_SIZE } from './layout.js';

/** The CRC a page (super block or metadata page) stores in its last 4 bytes: CRC32C of the rest. */
export function pageCrc(page: Uint8Array): number {
  return crc32cRange(page, 0, PAGE_SIZE - 4) >>> 0;
}
