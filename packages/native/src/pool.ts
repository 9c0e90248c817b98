import { DmaRegion, type HugepageMode } from './dma.js';
import { NativeError } from './errors.js';

export interface DmaPoolOptions {
  /** Alignment of each element (power of two, default 64: a cache line). */
  align?: number;
  hugepages?: HugepageMode;
}

/**
 * A fixed-size element pool in one DMA region (SPDK's spdk_mempool): `count` elements of
 * `elementSize` bytes, each identified by its offset in the region, so (region handle,
 * offset) crosses workers as two integers. get/put are a stack push/pop on an Int32Array:
 * no allocation, O(1). A pool belongs to one worker (like SPDK's per-thread caches);
 * other workers reach the elements through `DmaRegion.attach(pool.region.handle)`.
 */
export class DmaPool {
  readonly region: DmaRegion;
  /** Bytes between consecutive elements (elementSize rounded up to the alignment). */
  readonly stride: number;
  readonly count: number;
  readonly #free: Int32Array;
  readonly #inUse: Uint8Array;
  #top: number;

  private constructor(region: DmaRegion, stride: number, count: number) {
    this.region = region;
    this.stride = stride;
    this.count = count;
    this.#free = new Int32Array(count);
    this.#inUse = new Uint8Array(count);
    // Hand out low offsets first: the stack pops from the end.
    for (let i = 0; i < count; i++) this.#free[i] = count - 1 - i;
    this.#top = count;
  }

  /** A pool of `count` elements of `elementSize` bytes in a new region it owns. */
  static create(count: number, elementSize: number, options: DmaPoolOptions = {}): DmaPool {
    const align = options.align ?? 64;
    if (!Number.isSafeInteger(count) || count <= 0 || count > 0x7fffffff) {
      throw new NativeError(`count must be a positive integer, got ${count}`, 'EINVAL');
    }
    if (!Number.isSafeInteger(elementSize) || elementSize <= 0) {
      throw new NativeError(`elementSize must be a positive integer, got ${elementSize}`, 'EINVAL');
    }
    if (!isPowerOfTwo(align)) throw new NativeError(`align must be a power of two, got ${align}`, 'EINVAL');
    const stride = Math.ceil(elementSize / align) * align;
    const region = DmaRegion.create(stride * count, { hugepages: options.hugepages ?? 'auto' });
    return new DmaPool(region, stride, count);
  }

  /** An element's offset in `region`, or -1 when the pool is empty. */
  get(): number {
    if (this.#top === 0) return -1;
    const i = this.#free[--this.#top];
    this.#inUse[i] = 1;
    return i * this.stride;
  }

  /** Return an element. Throws EINVAL for an offset that is not a taken element (double put). */
  put(offset: number): void {
    const i = offset / this.stride;
    if (i >>> 0 !== i || i >= this.count || this.#inUse[i] === 0) {
      throw new NativeError(`offset ${offset} is not an element taken from this pool`, 'EINVAL');
    }
    this.#inUse[i] = 0;
    this.#free[this.#top++] = i;
  }

  /** Elements available to `get()`. */
  get available(): number {
    return this.#top;
  }

  /** Close the pool's region (views elsewhere keep the memory until they close). */
  close(): void {
    this.region.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && n <= 2 ** 30 && (n & (n - 1)) === 0;
}
