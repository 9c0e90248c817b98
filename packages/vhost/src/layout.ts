import type { Chain } from './virtqueue.js';

/**
 * Carving a descriptor chain into a request's parts whatever its shape (VIRTIO_F_ANY_LAYOUT):
 * the driver-readable bytes are header + data-out, the device-writable bytes are data-in +
 * trailer (virtio-blk's status) or response + data-in (virtio-scsi). Headers are small and copied;
 * data segments are views straight into guest memory.
 */

/** Copy the first `dst.length` bytes of the segments in direction `writable` into `dst`; false if too short. */
export function gather(chain: Chain, writable: number, dst: Uint8Array): boolean {
  let got = 0;
  for (let i = 0; i < chain.count && got < dst.length; i++) {
    if (chain.writable[i] !== writable) continue;
    const s = chain.iov[i];
    const n = Math.min(s.length, dst.length - got);
    dst.set(n === s.length ? s : s.subarray(0, n), got);
    got += n;
  }
  return got === dst.length;
}

/** Write `src` over the segments in direction `writable`, starting `at` bytes in (scatter). */
export function scatter(chain: Chain, writable: number, at: number, src: Uint8Array): number {
  let skip = at;
  let put = 0;
  for (let i = 0; i < chain.count && put < src.length; i++) {
    if (chain.writable[i] !== writable) continue;
    const s = chain.iov[i];
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, src.length - put);
    s.set(src.subarray(put, put + n), skip);
    put += n;
    skip = 0;
  }
  return put;
}

/**
 * The views of the segments in direction `writable`, minus `skip` bytes at the front and `drop`
 * bytes at the back, into `out` (which ends up holding exactly those). Returns the byte count.
 */
export function dataViews(
  chain: Chain,
  writable: number,
  skip: number,
  drop: number,
  out: Uint8Array[],
): number {
  let k = 0;
  let total = 0;
  for (let i = 0; i < chain.count; i++) if (chain.writable[i] === writable) total += chain.iov[i].length;
  const end = total - drop;
  let pos = 0;
  let bytes = 0;
  for (let i = 0; i < chain.count && pos < end; i++) {
    if (chain.writable[i] !== writable) continue;
    const s = chain.iov[i];
    const a = Math.max(skip, pos);
    const b = Math.min(end, pos + s.length);
    if (b > a) {
      out[k++] = a === pos && b === pos + s.length ? s : s.subarray(a - pos, b - pos);
      bytes += b - a;
    }
    pos += s.length;
  }
  // Resizing an array is not free; requests of one shape keep their length.
  if (out.length !== k) out.length = k;
  return bytes;
}

/** Index of the last non-empty writable segment (its last byte is virtio-blk's status), or -1. */
export function lastWritable(chain: Chain): number {
  for (let i = chain.count - 1; i >= 0; i--) {
    if (chain.writable[i] === 1 && chain.iov[i].length > 0) return i;
  }
  return -1;
}
