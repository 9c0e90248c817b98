// Outgoing byte batches. PDUs are encoded straight into a pooled send buffer; `flush()` hands the
// filled part to the sink in one write and moves on to the next buffer. The sink gives a buffer
// back when the transport no longer references it (node:net's write callback), so steady state
// reuses the same few buffers and a PDU never needs its own allocation.

/** Where batches go: a socket adapter, or a test's collector. `release` must be called once the
 * bytes are no longer referenced (after they were written or copied). */
export type TxSink = (bytes: Uint8Array, release: () => void) => void;

class TxBuf {
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  readonly release: () => void;
  constructor(size: number, pool: TxBuf[]) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
    this.release = () => {
      pool.push(this);
    };
  }
}

export class TxQueue {
  readonly #sink: TxSink;
  readonly #kick: (() => void) | null;
  readonly #size: number;
  readonly #pool: TxBuf[] = [];
  #cur: TxBuf;
  #used = 0;
  #closed = false;
  /** Bytes handed to the sink so far. */
  bytesOut = 0;

  /**
   * `size` must hold the largest PDU ever reserved at once. With `kick`, the sink only queues (in
   * order, each buffer released once the transport took it) and `kick` sends what it queued: the
   * queue can then also carry caller-owned buffers (`append`) between its own, in one send.
   */
  constructor(sink: TxSink, size: number, kick: (() => void) | null = null) {
    this.#sink = sink;
    this.#kick = kick;
    this.#size = size;
    this.#cur = new TxBuf(size, this.#pool);
  }

  /** Make room for `n` bytes and return their offset in `bytes`/`dv`; call `commit(n)` after writing. */
  reserve(n: number): number {
    if (n > this.#size) throw new RangeError(`PDU of ${n} bytes exceeds the ${this.#size}-byte send buffer`);
    if (this.#used + n > this.#size) this.flush();
    return this.#used;
  }

  get bytes(): Uint8Array {
    return this.#cur.bytes;
  }

  get dv(): DataView {
    return this.#cur.dv;
  }

  commit(n: number): void {
    this.#used += n;
  }

  get pending(): number {
    return this.#used;
  }

  /** Caller-owned buffers may go out by `append` (the sink queues for a `kick`). */
  get gathers(): boolean {
    return this.#kick !== null;
  }

  /**
   * After what is reserved so far, send `bytes` as they are (only when `gathers`); `release` runs
   * once the transport no longer references them, which may be before this returns.
   */
  append(bytes: Uint8Array, release: () => void): void {
    if (this.#closed) {
      release();
      return;
    }
    this.#handOff();
    this.bytesOut += bytes.length;
    this.#sink(bytes, release);
  }

  flush(): void {
    if (this.#closed) return;
    this.#handOff();
    if (this.#kick !== null) this.#kick();
  }

  #handOff(): void {
    if (this.#used === 0) return;
    const b = this.#cur;
    const n = this.#used;
    this.#cur = this.#pool.pop() ?? new TxBuf(this.#size, this.#pool);
    this.#used = 0;
    this.bytesOut += n;
    this.#sink(b.bytes.subarray(0, n), b.release);
  }

  /** Drop anything unsent and refuse further flushes (the connection is going away). */
  close(): void {
    this.#closed = true;
    this.#used = 0;
  }
}
