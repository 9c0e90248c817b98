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
  // The kernel's completion queue, mapped read-only (a write would fault): u32 and i32
  // views, the word index of the tail, the mask, and the word index of CQE 0.
  readonly #cqU32: Uint32Array;
  readonly #cqI32: Int32Array;
  readonly #tailWord: number;
  readonly #mask: number;
  readonly #cqeWord: number;
  // CQ index of the next completion to deliver (wrapping u32, like the kernel's).
  #head: number;
  #prepared = 0;
  #closed = false;
  /** Most I/Os one batch can hold (the submission queue size). */
  readonly batchSize: number;

  constructor(entries = 128) {
    try {
      this.#ring = binding.uringCreate(entries);
    } catch (e) {
      throw toNativeError(e);
    }
    this.batchSize = binding.uringSqEntries(this.#ring);
    // Descriptors live in the ring's own exchange buffer, so submit passes no array.
    this.#descs = new Float64Array(binding.uringExchange(this.#ring));
    const cq = binding.uringCompletions(this.#ring);
    this.#cqU32 = new Uint32Array(cq.buffer);
    this.#cqI32 = new Int32Array(cq.buffer);
    this.#tailWord = cq.tail >>> 2;
    this.#mask = this.#cqU32[cq.mask >>> 2];
    this.#cqeWord = cq.cqes >>> 2;
    this.#head = Atomics.load(this.#cqU32, cq.head >>> 2);
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
   * Deliver ready completions to `onComplete`; returns how many. Reads the kernel's
   * completion queue directly: an idle poll is one Atomics.load, no napi call; a
   * non-empty one makes one napi call to hand the consumed slots back. If a callback
   * throws, the exception propagates and later completions come with the next `reap`,
   * none lost or repeated.
   */
  reap(onComplete: UringCompletion): number {
    const tail = Atomics.load(this.#cqU32, this.#tailWord);
    let head = this.#head;
    if (head === tail) return 0;
    const u32 = this.#cqU32;
    const i32 = this.#cqI32;
    let n = 0;
    try {
      while (head !== tail) {
        const w = this.#cqeWord + (head & this.#mask) * 4; // 16-byte CQE: u64 user data, i32 res
        const ud = u32[w] + u32[w + 1] * 4294967296;
        const res = i32[w + 2];
        head = (head + 1) >>> 0;
        this.#head = head;
        n++;
        onComplete(ud, res);
      }
    } finally {
      binding.uringConsumed(this.#ring, this.#head);
    }
    return n;
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
