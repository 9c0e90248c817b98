// What a namespace is served from. Shaped like SPDK's bdev API (spdk_bdev_readv_blocks and friends)
// so the bdev layer can stand behind it unchanged: block-addressed, scatter-gather buffers, a
// completion callback with a context instead of a promise (no allocation per I/O).
//
// Contract for every I/O method:
// - It never completes inside the call: `done` runs later (next poll / next tick), exactly once,
//   unless the method throws synchronously, in which case `done` never runs.
// - `iovs` are owned by the caller until `done` runs; their total length is numBlocks * blockSize
//   (for compareAndWrite: each of `compare` and `write` is).
// - Range checking is the caller's job (the target checks LBA ranges before submitting), but a
//   backend still answers an out-of-range request with BackendStatus.Failed rather than misbehave.

/** Outcome of a backend I/O. */
export const BackendStatus = {
  Success: 0,
  /** The device failed the I/O (maps to a media / internal error). */
  Failed: 1,
  /** Compare found different data (NVMe: Compare Failure). */
  Miscompare: 2,
  /** The I/O was aborted (device removed, reset). */
  Aborted: 3,
  /** Out of resources now: retry later. */
  NoMem: 4,
} as const;
export type BackendStatus = (typeof BackendStatus)[keyof typeof BackendStatus];

export type BackendDone<C> = (ctx: C, status: BackendStatus) => void;

export interface NamespaceBackend {
  /** Name, as the bdev's name (bdev_name in nvmf_subsystem_add_ns). */
  readonly name: string;
  readonly blockSize: number;
  readonly numBlocks: number;
  /** The device's UUID (8-4-4-4-12 text), used as the namespace UUID when none is given. */
  readonly uuid?: string;
  /** Whether there is a volatile write cache that `flush` empties. */
  readonly writeCache?: boolean;
  read<C>(
    iovs: readonly Uint8Array[],
    offsetBlocks: number,
    numBlocks: number,
    done: BackendDone<C>,
    ctx: C,
  ): void;
  write<C>(
    iovs: readonly Uint8Array[],
    offsetBlocks: number,
    numBlocks: number,
    done: BackendDone<C>,
    ctx: C,
  ): void;
  flush<C>(offsetBlocks: number, numBlocks: number, done: BackendDone<C>, ctx: C): void;
  writeZeroes<C>(offsetBlocks: number, numBlocks: number, done: BackendDone<C>, ctx: C): void;
  unmap<C>(offsetBlocks: number, numBlocks: number, done: BackendDone<C>, ctx: C): void;
  /** Miscompare if the blocks differ from `iovs`. */
  compare<C>(
    iovs: readonly Uint8Array[],
    offsetBlocks: number,
    numBlocks: number,
    done: BackendDone<C>,
    ctx: C,
  ): void;
  /**
   * Compare, and only if equal write, with no other write to these blocks in between (NVMe fused
   * Compare and Write; SPDK's spdk_bdev_comparev_and_writev_blocks).
   */
  compareAndWrite<C>(
    compare: readonly Uint8Array[],
    write: readonly Uint8Array[],
    offsetBlocks: number,
    numBlocks: number,
    done: BackendDone<C>,
    ctx: C,
  ): void;
}
