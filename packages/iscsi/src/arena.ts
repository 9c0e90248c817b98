import { ViewCache } from '@storkit/native';

/**
 * Transmit memory for one connection: PDUs are encoded into slices of one ring buffer and handed
 * to the transport, which reports each write flushed (in order); the slice is then reused. Keeps
 * the Data-In path free of per-PDU allocation. When the ring is full (a slow reader), slices fall
 * back to fresh buffers rather than stalling.
 */
export class TxArena {
  readonly #buf: Uint8Array;
  #head = 0;
  // FIFO of live slices: start offset (-1 for fallback buffers) and end offset.
  #starts = new Int32Array(1024);
  #ends = new Int32Array(1024);
  #first = 0;
  #count = 0;
  fallbacks = 0;
  // Slices handed out before, by start offset (16-byte granules, 4096 of them; PDUs are at least
  // 48 bytes): the ring restarts at 0 whenever it drains, so a steady stream of same-size PDUs
  // lands on the same offsets again and reuses their views instead of making one per PDU.
  readonly #views: ViewCache;

  constructor(size = 2 * 1024 * 1024) {
    this.#buf = new Uint8Array(size);
    this.#views = new ViewCache(this.#buf, 16, size >>> 4, 4096);
  }

  /** A slice of `n` bytes, valid until the matching `release`. */
  alloc(n: number): Uint8Array {
    const at = this.#place(n);
    if (at < 0) {
      this.fallbacks++;
      this.#push(-1, -1);
      return new Uint8Array(n);
    }
    this.#head = at + n;
    this.#push(at, at + n);
    return this.#views.view(at, n);
  }

  /** The oldest outstanding slice was flushed. */
  release(): void {
    if (this.#count === 0) return;
    this.#first = (this.#first + 1) % this.#starts.length;
    this.#count--;
    if (this.#count === 0) this.#head = 0;
  }

  get outstanding(): number {
    return this.#count;
  }

  #oldestStart(): number {
    for (let i = 0; i < this.#count; i++) {
      const s = this.#starts[(this.#first + i) % this.#starts.length];
      if (s >= 0) return s;
    }
    return -1;
  }

  #place(n: number): number {
    const size = this.#buf.length;
    const oldest = this.#oldestStart();
    if (oldest < 0) {
      this.#head = 0;
      return n <= size ? 0 : -1;
    }
    if (this.#head > oldest) {
      if (size - this.#head >= n) return this.#head;
      return oldest >= n ? 0 : -1;
    }
    return oldest - this.#head >= n ? this.#head : -1;
  }

  #push(start: number, end: number): void {
    if (this.#count === this.#starts.length) this.#grow();
    const i = (this.#first + this.#count) % this.#starts.length;
    this.#starts[i] = start;
    this.#ends[i] = end;
    this.#count++;
  }

  #grow(): void {
    const n = this.#starts.length;
    const s = new Int32Array(n * 2);
    const e = new Int32Array(n * 2);
    for (let i = 0; i < this.#count; i++) {
      s[i] = this.#starts[(this.#first + i) % n];
      e[i] = this.#ends[(this.#first + i) % n];
    }
    this.#starts = s;
    this.#ends = e;
    this.#first = 0;
  }
}
