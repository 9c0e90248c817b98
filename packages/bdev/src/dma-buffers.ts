// Which caller buffers live in DMA regions. Modules that hand buffers to the kernel or a device
// (uring) need (region, offset) for a Uint8Array; a buffer whose ArrayBuffer is a registered
// region's view maps to it with no copy. Others are bounced through module-owned DMA memory.
import type { MappedRegion } from '@storkit/native';

const regions = new Map<ArrayBufferLike, MappedRegion>();

/** Tell the bdev layer that buffers over `region.buffer` are DMA memory (zero-copy for uring). */
export function bdevRegisterDmaRegion(region: MappedRegion): void {
  regions.set(region.buffer, region);
}

/** Forget a region (before closing it). */
export function bdevUnregisterDmaRegion(region: MappedRegion): void {
  regions.delete(region.buffer);
}

/** @internal The region a buffer lives in, if registered. */
export function dmaRegionOf(buf: Uint8Array): MappedRegion | undefined {
  return regions.get(buf.buffer);
}
