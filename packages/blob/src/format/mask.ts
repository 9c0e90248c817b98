// Mask regions (spdk_bs_md_mask): a type byte, a length in bits, the bits.
import { Bitmap } from '../bitmap.js';
import { BlobError } from '../errors.js';
import { MASK, type MaskType, PAGE_SIZE } from './layout.js';

const NAMES = ['used page', 'used cluster', 'used blob id'];

/** Encode `bits` as a mask region of `pages` pages. */
export function encodeMask(type: MaskType, bits: Bitmap, pages: number): Uint8Array {
  const out = new Uint8Array(pages * PAGE_SIZE);
  const need = MASK.BITS + Math.ceil(bits.length / 8);
  if (need > out.length)
    throw new BlobError('ENOSPC', `${NAMES[type]} mask of ${bits.length} bits needs ${need} bytes`);
  out[MASK.TYPE] = type;
  new DataView(out.buffer).setUint32(MASK.LENGTH, bits.length, true);
  out.set(bits.toBytes(), MASK.BITS);
  return out;
}

/**
 * Decode a mask region read from disk: its type must be `type` and its length between `min` and
 * `max` bits (and fit the region); returns the first `keep` bits (default: all).
 */
export function decodeMask(
  region: Uint8Array,
  type: MaskType,
  min: number,
  max: number,
  keep?: number,
): Bitmap {
  const name = NAMES[type];
  if (region.length < MASK.BITS)
    throw new BlobError('EILSEQ', `${name} mask: region of ${region.length} bytes`);
  if (region[MASK.TYPE] !== type)
    throw new BlobError('EILSEQ', `${name} mask: type byte is ${region[MASK.TYPE]}, expected ${type}`);
  const len = new DataView(region.buffer, region.byteOffset).getUint32(MASK.LENGTH, true);
  if (len < min || len > max)
    throw new BlobError(
      'EILSEQ',
      `${name} mask: ${len} bits, expected ${min === max ? min : `${min} to ${max}`}`,
    );
  if (MASK.BITS + Math.ceil(len / 8) > region.length)
    throw new BlobError('EILSEQ', `${name} mask: ${len} bits do not fit its ${region.length}-byte region`);
  return Bitmap.fromBytes(region.subarray(MASK.BITS), keep ?? len);
}
