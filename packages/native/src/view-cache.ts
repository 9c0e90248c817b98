/**
 * Views into a large buffer, cached direct-mapped by offset in `blockSize` granules: copying
 * between a backing region and caller buffers needs a view of the region at the I/O's offset (a
 * RAM disk's blocks), or a transport hands out windows of one send ring, and making a view each
 * time would allocate on the hot path. After warm-up, repeated (offset, length) pairs reuse views.
 */
export class ViewCache {
  readonly #bytes: Uint8Array;
  readonly #shift: number;
  readonly #mask: number;
  readonly #views: (Uint8Array | undefined)[];
  // Each slot's view offset and length, kept beside it: reading `byteOffset` of a view over an
  // external buffer is an uninlined IC call, ~7% of a target's CPU when done per I/O.
  readonly #offs: Float64Array;
  readonly #lens: Int32Array;

  constructor(bytes: Uint8Array, blockSize: number, numBlocks: number, maxEntries = 1 << 16) {
    this.#bytes = bytes;
    this.#shift = 31 - Math.clz32(blockSize);
    let n = 1;
    while (n < numBlocks && n < maxEntries) n <<= 1;
    this.#mask = n - 1;
    this.#views = new Array(n).fill(undefined);
    this.#offs = new Float64Array(n).fill(-1);
    this.#lens = new Int32Array(n);
  }

  // Slots by the I/O's own size where that is a power of two above the block size: 4 KiB I/O on
  // 512-byte blocks would otherwise use one slot in eight and evict itself (offsets 32 MiB apart
  // share a slot), and every miss makes a view.
  #slot(off: number, len: number): number {
    const shift = (len & (len - 1)) === 0 && len > 1 << this.#shift ? 31 - Math.clz32(len) : this.#shift;
    return (off >>> shift) & this.#mask;
  }

  /**
   * Load the view `view(off, len)` would return, if cached, into the CPU cache; returns its length
   * (or 0) only so the load is not dropped. A large disk's views are many and cold, and a copy
   * stalls on loading its view object: touching a batch's views first lets those misses overlap.
   */
  touch(off: number, len: number): number {
    const i = this.#slot(off, len);
    const v = this.#views[i];
    return v === undefined ? 0 : v.length;
  }

  /** A view of `len` bytes at byte `off`. */
  view(off: number, len: number): Uint8Array {
    const i = this.#slot(off, len);
    if (this.#offs[i] === off && this.#lens[i] === len) return this.#views[i] as Uint8Array;
    const nv = this.#bytes.subarray(off, off + len);
    this.#views[i] = nv;
    this.#offs[i] = off;
    this.#lens[i] = len;
    return nv;
  }
}
