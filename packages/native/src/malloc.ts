import { DmaRegion, type HugepageMode } from './dma.js';
import { NativeError } from './errors.js';
import { isPowerOfTwo } from './pool.js';

/**
 * A DMA buffer address: `slot * 2^32 + offset`, a plain number (exact: slots < 2^21).
 * Use `handleOf`/`offsetOf` to send it to another worker as (region handle, offset).
 */
export type DmaAddr = number & { readonly __dmaAddr: unique symbol };

const SLOT = 2 ** 32;

export interface DmaAllocatorOptions {
  /** Bytes per arena region (power of two, default 2 MiB: one hugepage). */
  regionSize?: number;
  /** Smallest block and default alignment (power of two, default 64). */
  minBlock?: number;
  hugepages?: HugepageMode;
}

/**
 * Aligned variable-size DMA buffers (SPDK's spdk_dma_malloc): a binary buddy allocator
 * per region, growing by adding regions; requests larger than a region get a dedicated
 * region, released on free. Blocks are naturally aligned to their size, so an alignment
 * up to the block size costs nothing. Alignment is of the offset in the region; regions
 * start page aligned (4 KiB or 2 MiB), so memory and IO addresses are aligned too for
 * alignments up to the page size.
 *
 * Steady state allocates nothing: free lists are intrusive, in typed arrays per arena.
 * One allocator belongs to one worker.
 */
export class DmaAllocator {
  readonly regionSize: number;
  readonly minBlock: number;
  readonly #hugepages: HugepageMode;
  readonly #minShift: number;
  readonly #levels: number;
  readonly #slots: (Arena | Dedicated | undefined)[] = [];
  readonly #freeSlots: number[] = [];
  #bytesInUse = 0;
  #closed = false;

  constructor(options: DmaAllocatorOptions = {}) {
    this.regionSize = options.regionSize ?? 2 * 1024 * 1024;
    this.minBlock = options.minBlock ?? 64;
    this.#hugepages = options.hugepages ?? 'auto';
    if (!isPowerOfTwo(this.regionSize) || !isPowerOfTwo(this.minBlock) || this.minBlock > this.regionSize) {
      throw new NativeError(
        'regionSize and minBlock must be powers of two, minBlock <= regionSize',
        'EINVAL',
      );
    }
    this.#minShift = 31 - Math.clz32(this.minBlock);
    this.#levels = 31 - Math.clz32(this.regionSize) - this.#minShift + 1;
  }

  /**
   * `size` bytes aligned to `align` (power of two, default `minBlock`). Throws EINVAL for
   * a bad size or alignment, NativeError ENOMEM when no region can be added.
   */
  malloc(size: number, align = this.minBlock): DmaAddr {
    if (this.#closed) throw new NativeError('allocator is closed', 'EINVAL');
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new NativeError(`size ${size} is not positive`, 'EINVAL');
    if (!isPowerOfTwo(align) || align > this.regionSize) {
      throw new NativeError(`align ${align} must be a power of two <= ${this.regionSize}`, 'EINVAL');
    }
    const need = Math.max(size, align, this.minBlock);
    if (need > this.regionSize) return this.#dedicated(size);
    const level = 32 - Math.clz32(need - 1) - this.#minShift;
    const slots = this.#slots;
    for (let s = 0; s < slots.length; s++) {
      const a = slots[s];
      if (a instanceof Arena) {
        const unit = a.alloc(level);
        if (unit >= 0) return this.#taken(s, unit << this.#minShift, a.blockSize(unit, this.#minShift));
      }
    }
    const s = this.#addSlot(
      new Arena(DmaRegion.create(this.regionSize, { hugepages: this.#hugepages }), this.#levels),
    );
    const a = slots[s] as Arena;
    const unit = a.alloc(level);
    return this.#taken(s, unit << this.#minShift, a.blockSize(unit, this.#minShift));
  }

  #taken(slot: number, offset: number, bytes: number): DmaAddr {
    this.#bytesInUse += bytes;
    return (slot * SLOT + offset) as DmaAddr;
  }

  #dedicated(size: number): DmaAddr {
    const region = DmaRegion.create(size, { hugepages: this.#hugepages });
    const s = this.#addSlot(new Dedicated(region));
    return this.#taken(s, 0, region.size);
  }

  #addSlot(x: Arena | Dedicated): number {
    const s = this.#freeSlots.pop() ?? this.#slots.length;
    this.#slots[s] = x;
    return s;
  }

  /** Free a buffer. Throws EINVAL for an address that is not a live buffer of this allocator. */
  free(addr: DmaAddr): void {
    const slot = Math.floor(addr / SLOT);
    const offset = addr - slot * SLOT;
    const x = this.#slots[slot];
    if (x instanceof Arena && (offset & (this.minBlock - 1)) === 0) {
      const unit = offset >>> this.#minShift;
      const bytes = x.free(unit, this.#minShift);
      if (bytes > 0) {
        this.#bytesInUse -= bytes;
        return;
      }
    } else if (x instanceof Dedicated && offset === 0) {
      this.#bytesInUse -= x.region.size;
      x.region.close();
      this.#slots[slot] = undefined;
      this.#freeSlots.push(slot);
      return;
    }
    throw new NativeError(`address ${addr} is not a live buffer of this allocator`, 'EINVAL');
  }

  /** The region holding a buffer. */
  region(addr: DmaAddr): DmaRegion {
    const x = this.#slots[Math.floor(addr / SLOT)];
    if (x === undefined) throw new NativeError(`address ${addr} has no region`, 'EINVAL');
    return x.region;
  }

  /** The process-wide handle of the region holding a buffer. */
  handleOf(addr: DmaAddr): number {
    return this.region(addr).handle;
  }

  /** The buffer's offset in its region. */
  offsetOf(addr: DmaAddr): number {
    return addr % SLOT;
  }

  /** A Uint8Array over `len` bytes of the buffer (allocates the view object). */
  bytes(addr: DmaAddr, len: number): Uint8Array {
    return new Uint8Array(this.region(addr).buffer, this.offsetOf(addr), len);
  }

  /** The buffer's IO address (see DmaRegion.ioAddress). */
  ioAddress(addr: DmaAddr): number {
    return this.region(addr).ioAddress(this.offsetOf(addr));
  }

  /** Bytes handed out (block sizes, so including rounding). */
  get bytesInUse(): number {
    return this.#bytesInUse;
  }

  /** Regions currently held (arenas and dedicated). */
  get regions(): number {
    return this.#slots.length - this.#freeSlots.length;
  }

  /** Whether every arena is one whole free block again (no leaks, fully coalesced). */
  isIdle(): boolean {
    return (
      this.#bytesInUse === 0 &&
      this.#slots.every((x) => x === undefined || (x instanceof Arena && x.isWhole()))
    );
  }

  /** Close every region (outstanding buffers become invalid). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const x of this.#slots) x?.region.close();
    this.#slots.length = 0;
    this.#freeSlots.length = 0;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

class Dedicated {
  constructor(readonly region: DmaRegion) {}
}

/**
 * A buddy allocator over one region in units of minBlock. `state[u]` for the unit at the
 * head of a block: level+1 if the block is free, -(level+1) if allocated, 0 otherwise.
 * Free blocks of each level form a doubly linked list through `next`/`prev`.
 */
class Arena {
  readonly region: DmaRegion;
  readonly #levels: number;
  readonly #state: Int8Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #head: Int32Array;

  constructor(region: DmaRegion, levels: number) {
    this.region = region;
    this.#levels = levels;
    const units = 1 << (levels - 1);
    this.#state = new Int8Array(units);
    this.#next = new Int32Array(units);
    this.#prev = new Int32Array(units);
    this.#head = new Int32Array(levels).fill(-1);
    this.#push(0, levels - 1);
  }

  #push(u: number, level: number): void {
    const h = this.#head[level];
    this.#next[u] = h;
    this.#prev[u] = -1;
    if (h >= 0) this.#prev[h] = u;
    this.#head[level] = u;
    this.#state[u] = level + 1;
  }

  #unlink(u: number, level: number): void {
    const n = this.#next[u];
    const p = this.#prev[u];
    if (p >= 0) this.#next[p] = n;
    else this.#head[level] = n;
    if (n >= 0) this.#prev[n] = p;
    this.#state[u] = 0;
  }

  /** The head unit of a free block of `level`, now allocated; -1 if none fits. */
  alloc(level: number): number {
    let l = level;
    while (l < this.#levels && this.#head[l] < 0) l++;
    if (l === this.#levels) return -1;
    const u = this.#head[l];
    this.#unlink(u, l);
    while (l > level) {
      l--;
      this.#push(u + (1 << l), l);
    }
    this.#state[u] = -(level + 1);
    return u;
  }

  blockSize(u: number, minShift: number): number {
    return 1 << (-this.#state[u] - 1 + minShift);
  }

  /** Free the block at `u`, merging with free buddies; its size in bytes, or 0 if not allocated. */
  free(u: number, minShift: number): number {
    if (u >= this.#state.length || this.#state[u] >= 0) return 0;
    let level = -this.#state[u] - 1;
    const bytes = 1 << (level + minShift);
    this.#state[u] = 0;
    while (level < this.#levels - 1) {
      const buddy = u ^ (1 << level);
      if (this.#state[buddy] !== level + 1) break;
      this.#unlink(buddy, level);
      u = Math.min(u, buddy);
      level++;
    }
    this.#push(u, level);
    return bytes;
  }

  isWhole(): boolean {
    return this.#state[0] === this.#levels;
  }
}
