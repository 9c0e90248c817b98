import { isErrno } from '@storkit/errors';

import { binding } from './binding.js';
import { NativeError, native } from './errors.js';
import { checkedSize, MappedRegion } from './region.js';

/** `auto`: hugepages if reserved, else locked 4 KiB pages; `require`: fail (ENOMEM) without; `never`. */
export type HugepageMode = 'auto' | 'require' | 'never';

/** What backs a DMA region. `unlocked-4k` means mlock was refused (see `note`). */
export type DmaBacking = 'hugepage-2m' | 'locked-4k' | 'unlocked-4k';

/** The address space IO addresses live in: physical (pagemap), or the VFIO container's IOVA. */
export type AddressSpace = 'physical' | 'iova';

export interface DmaRegionOptions {
  hugepages?: HugepageMode;
}

/**
 * DMA-able memory (SPDK's hugepage memory): pinned, zeroed, shared by every worker through
 * its handle, with the IO address of every byte. Create it once, post `handle` to the
 * workers that need it, and `DmaRegion.attach(handle)` there.
 */
export class DmaRegion extends MappedRegion {
  readonly backing: DmaBacking;
  readonly pageSize: number;
  /** Why the region is not on hugepages, or not locked, when it is not. */
  readonly note: string | undefined;
  /** The memfd behind the region (for sharing with other processes, e.g. vhost-user). */
  readonly fd: number;
  /** Why the region has no IO addresses (with its code), when it has none. */
  #ioError: NativeError | undefined;
  #ioTable: Float64Array | undefined;
  readonly #pageShift: number;

  private constructor(handle: number, owner: boolean) {
    super(handle, owner);
    const info = native(() => binding.memInfo(handle));
    this.backing = info.backing as DmaBacking;
    this.pageSize = info.pageSize;
    this.note = info.note ?? undefined;
    this.fd = info.fd;
    this.#ioError = ioErrorOf(info);
    this.#pageShift = 31 - Math.clz32(info.pageSize);
  }

  /** Allocate a new region of at least `size` bytes (rounded up to its page size). */
  static create(size: number, options: DmaRegionOptions = {}): DmaRegion {
    checkedSize('size', size);
    const h = native(() => binding.memCreateDma(size, options.hugepages ?? 'auto'));
    return new DmaRegion(h, true);
  }

  /** Open this worker's view of a region another worker created (it must not be released yet). */
  static attach(handle: number): DmaRegion {
    return new DmaRegion(handle, false);
  }

  /** Where IO addresses come from now, or null when they are unavailable (see `ioAddress`). */
  get addressSpace(): AddressSpace | null {
    return (native(() => binding.memInfo(this.handle)).ioSpace as AddressSpace | undefined) ?? null;
  }

  /** The DMA region `buf` lies in (see MappedRegion.of), or undefined for other memory. */
  static override of(buf: ArrayBufferView): DmaRegion | undefined {
    const r = MappedRegion.of(buf);
    return r instanceof DmaRegion ? r : undefined;
  }

  /**
   * The IO address of byte `offset`: its IOVA once the region is mapped into the process's
   * VFIO container, else its physical address. Throws NativeError `EPERM` where physical
   * addresses are not readable (not root), `EINVAL` for a bad offset. The page table is
   * fetched once per region and worker (again after `forgetIoTable`); lookups are then
   * arithmetic. Drivers take a device's view of addresses from `PciDevice.dmaMap`.
   */
  ioAddress(offset: number): number {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= this.size) {
      throw new NativeError(`offset ${offset} is outside the region (${this.size} bytes)`, 'EINVAL');
    }
    const table = this.#ioTable ?? this.#loadIoTable();
    const page = Math.floor(offset / this.pageSize);
    return table[page] + (offset - page * this.pageSize);
  }

  /** The IO address of each page, in page order. */
  ioPages(): Float64Array {
    return (this.#ioTable ?? this.#loadIoTable()).slice();
  }

  /** Drop this worker's cached IO addresses (the region was just mapped into an IOMMU). */
  forgetIoTable(): void {
    this.#ioTable = undefined;
    this.#ioError = ioErrorOf(native(() => binding.memInfo(this.handle)));
  }

  #loadIoTable(): Float64Array {
    if (this.#ioError !== undefined) throw this.#ioError;
    this.#ioTable = native(() => binding.memIoTable(this.handle));
    return this.#ioTable;
  }

  /** log2 of the page size. */
  get pageShift(): number {
    return this.#pageShift;
  }
}

/** The region's reason for having no IO addresses, as the error an IO address lookup throws. */
function ioErrorOf(info: { ioError?: string | null; ioErrorCode?: string | null }): NativeError | undefined {
  if (info.ioError == null) return undefined;
  return new NativeError(info.ioError, isErrno(info.ioErrorCode) ? info.ioErrorCode : 'EIO');
}
