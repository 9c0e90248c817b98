// IO addresses of a DMA region per way of reaching a device: the VFIO container's IOVA, a
// physical address for uio, a model's own IO space. One function per kind, used by the
// device that opened the function and by every worker that attached it.
import { binding } from '../binding.js';
import type { DmaRegion } from '../dma.js';
import { NativeError, native } from '../errors.js';
import type { IoMap } from './device.js';

function contiguous(space: 'iova', base: number, region: DmaRegion): IoMap {
  const n = Math.ceil(region.size / region.pageSize);
  const pages = new Float64Array(n);
  for (let i = 0; i < n; i++) pages[i] = base + i * region.pageSize;
  return { space, pageSize: region.pageSize, pages, contiguous: true };
}

/** Map `region` into the process's VFIO container (one IOVA range, idempotent). */
export function vfioIoMap(region: DmaRegion): IoMap {
  const base = native(() => binding.memMapIommu(region.handle));
  region.forgetIoTable();
  return contiguous('iova', base, region);
}

export function vfioIoUnmap(region: DmaRegion): void {
  native(() => binding.memUnmapIommu(region.handle));
  region.forgetIoTable();
}

/**
 * Physical addresses, for uio (no IOMMU): only hugepages are safe to give a device, since
 * nothing else stops the kernel from moving 4 KiB pages under it.
 */
export function physicalIoMap(region: DmaRegion): IoMap {
  if (region.backing !== 'hugepage-2m') {
    throw new NativeError(
      `uio needs hugepage-backed DMA memory, this region is ${region.backing}${region.note ? ` (${region.note})` : ''}: reserve hugepages (storkit setup)`,
      'EINVAL',
    );
  }
  const pages = region.ioPages();
  return { space: 'physical', pageSize: region.pageSize, pages, contiguous: false };
}

/** A model's IO space: region handle × 2^32 + offset, so the model finds the region again. */
export const MODEL_IO_SHIFT = 2 ** 32;

export function modelIoMap(region: DmaRegion): IoMap {
  return contiguous('iova', region.handle * MODEL_IO_SHIFT, region);
}
