import { binding } from './binding.js';
import { native, toNativeError } from './errors.js';
import type { MappedRegion } from './region.js';

/** Descriptor layout shared with crates/core/src/uring.rs: 8 f64 words per descriptor. */
const DESC_WORDS = 8;
const OP_NOP = 0;
const OP_READ = 1;
const OP_WRITE = 2;
const OP_FSYNC = 3;

/** Called once per completion: the user data given at prep time and the result (bytes, or -errno). */
export type UringCompletion = (userData: number, result: number) => void;

/**
 * An io_uring owned by one worker (a reactor), doing I/O into DMA regions.
 *
 * Prepare I/Os (`read`/`write`/`fsync`/`nop`: plain typed-array stores, no napi call),
 * `submit()` the batch (one napi call, one io_uring_enter), and `reap()` completions from
 * a poller (one napi call, no syscall). Buffers are (region slot, offset): add a region
 * once with `addRegion`; the ring keeps it mapped until removed or closed.
 *
 * Contract: `submit()` returns how many prepared I/Os the kernel accepted; the rest stay
 * prepared for the next `submit()` (the ring or its in-flight cap was full: reap first).
 * A bad descriptor throws EINVAL and submits nothing of the batch. Every accepted I/O
 * completes exactly once through `reap`; errors of the I/O itself are negative results.
 */
export class Uring {
  readonly #ring: ReturnType<typeof binding.uringCreate>;
  readonly #descs: Float64Array;
  readonly #cq: Float64Array;
  #prepared = 0;
  #closed = false;
  // Completions copied out of the kernel but not yet delivered (a callback threw).
  #cqNext = 0;
  #cqEnd = 0;
  /** Most I/Os one batch can hold (the submission queue size). */
  readonly batchSize: number;

  constructor(entries = 128) {
    try {
      this.#ring = binding.uringCreate(entries);
    } catch (e) {
      throw toNativeError(e);
    }
    this.batchSize = binding.uringSqEntries(this.#ring);
    // Descriptors and completions live in the ring's own exchange buffer, so submit and
    // reap pass no arrays across napi.
    const exchange = binding.uringExchange(this.#ring);
    const descWords = this.batchSize * DESC_WORDS;
    this.#descs = new Float64Array(exchange, 0, descWords);
    this.#cq = new Float64Array(exchange, descWords * 8);
  }

  /** Let the ring do I/O into `region`; returns the slot to name it by. */
  addRegion(region: MappedRegion): number {
    return native(() => binding.uringAddRegion(this.#ring, region.handle));
  }

  /** Forget a region slot. Throws EBUSY while I/O is in flight. */
  removeRegion(slot: number): void {
    native(() => binding.uringRemoveRegion(this.#ring, slot));
  }

  /** Prepare a read of `len` bytes at `fileOffset` into (slot, offset). False if the batch is full. */
  read(fd: number, slot: number, offset: number, len: number, fileOffset: number, userData: number): boolean {
    return this.#prep(OP_READ, fd, slot, offset, len, fileOffset, userData);
  }

  /** Prepare a write of `len` bytes from (slot, offset) at `fileOffset`. False if the batch is full. */
  write(
    fd: number,
    slot: number,
    offset: number,
    len: number,
    fileOffset: number,
    userData: number,
  ): boolean {
    return this.#prep(OP_WRITE, fd, slot, offset, len, fileOffset, userData);
  }

  fsync(fd: number, userData: number): boolean {
    return this.#prep(OP_FSYNC, fd, 0, 0, 0, 0, userData);
  }

  nop(userData: number): boolean {
    return this.#prep(OP_NOP, 0, 0, 0, 0, 0, userData);
  }

  #prep(
    op: number,
    fd: number,
    slot: number,
    offset: number,
    len: number,
    fileOffset: number,
    ud: number,
  ): boolean {
    if (this.#prepared === this.batchSize) return false;
    const d = this.#descs;
    const i = this.#prepared++ * DESC_WORDS;
    d[i] = op;
    d[i + 1] = fd;
    d[i + 2] = slot;
    d[i + 3] = offset;
    d[i + 4] = len;
    d[i + 5] = fileOffset;
    d[i + 6] = ud;
    return true;
  }

  /** I/Os prepared and not yet accepted by `submit()`. A batch that throws EINVAL is discarded. */
  get prepared(): number {
    return this.#prepared;
  }

  /** Submit prepared I/Os; returns how many were accepted (the rest stay prepared). */
  submit(): number {
    const n = this.#prepared;
    if (n === 0) return 0;
    let accepted: number;
    try {
      accepted = binding.uringSubmit(this.#ring, n);
    } catch (e) {
      this.#prepared = 0;
      throw toNativeError(e);
    }
    if (accepted < n) this.#descs.copyWithin(0, accepted * DESC_WORDS, n * DESC_WORDS);
    this.#prepared = n - accepted;
    return accepted;
  }

  /**
   * Deliver ready completions to `onComplete`; returns how many. No syscall. If a callback
   * throws, the exception propagates and the completions after it are delivered by the
   * next `reap`, none lost or repeated.
   */
  reap(onComplete: UringCompletion): number {
    const cq = this.#cq;
    let total = 0;
    for (;;) {
      while (this.#cqNext < this.#cqEnd) {
        const i = 2 * this.#cqNext++;
        total++;
        onComplete(cq[i], cq[i + 1]);
      }
      const n = binding.uringReap(this.#ring);
      this.#cqNext = 0;
      this.#cqEnd = n;
      if (n === 0) return total;
    }
  }

  /** Block the thread until `min` completions are ready (tests and shutdown, not pollers). */
  wait(min = 1): void {
    native(() => binding.uringWait(this.#ring, min));
  }

  /** Submitted I/Os not yet reaped. */
  get inflight(): number {
    return binding.uringInflight(this.#ring);
  }

  /** Wait for in-flight I/O to finish, then release the ring and its regions. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    binding.uringClose(this.#ring);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
