/**
 * The block backend: the one contract between a target (an NVMe-oF namespace, a SCSI logical
 * unit, a virtio-blk device) and whatever stores the blocks. It is SPDK's bdev consumer API
 * (`spdk_bdev_readv_blocks` and friends) as one interface: a bdev stands behind it through
 * `BdevBlockBackend` (@storkit/bdev), tests through `RamBackend` (@storkit/block/testing).
 *
 * Contract for every I/O method:
 * - A synchronous throw is a bug of the caller (the backend could not even take the I/O); the
 *   callback then never runs. Backends never throw for a bad range or a failing medium: they
 *   complete with FAILED.
 * - Otherwise `cb(status, ctx)` runs exactly once, on the submitting thread, never inside the call
 *   that submitted the I/O.
 * - Buffers belong to the backend until then; their lengths sum to `count * blockSize`.
 * - `cb` is meant to be a module-level function and `ctx` the caller's per-command object: the
 *   steady-state I/O path then allocates nothing.
 * - A backend that can run out of resources waits for them itself, in order: NOMEM is never
 *   reported to a target (a bdev module may complete with it: the bdev layer retries those).
 * Offsets and lengths are in blocks, never bytes.
 */

/** A block address or count (distinct from byte offsets by name only: JS has no newtypes). */
export type Lba = number;

/** How an I/O ended: SPDK's spdk_bdev_io_status, same names and numbers. */
export const IoStatus = {
  SUCCESS: 1,
  PENDING: 0,
  FAILED: -1,
  /** Out of resources now (a bdev module's answer; the bdev layer retries it). */
  NOMEM: -4,
  /** A compare found different data. */
  MISCOMPARE: -5,
  /** Aborted (reset, removal, abort request). */
  ABORTED: -7,
} as const;
export type IoStatus = (typeof IoStatus)[keyof typeof IoStatus];

/** An I/O completion: (status, the context given at submit). Module-level functions, not closures. */
export type IoCb<C = unknown> = (status: IoStatus, ctx: C) => void;

/** A seek completion (SPDK's spdk_bdev_seek_data / seek_hole): the block found, `numBlocks` if none. */
export type SeekCb<C = unknown> = (status: IoStatus, ctx: C, offset: Lba) => void;

/** A scatter list: the buffers are used in order, their lengths sum to the transfer size. */
export type IoVec = readonly Uint8Array[];

export interface BlockBackendInfo {
  /** The bdev's name (bdev_name in nvmf_subsystem_add_ns, iscsi luns, vhost dev_name). */
  readonly name: string;
  /** Logical block size in bytes (512 or 4096 typically). */
  readonly blockSize: number;
  readonly numBlocks: number;
  /** RFC 4122 text form: the NVMe namespace UUID, the SCSI NAA designator and serial number. */
  readonly uuid: string;
  /** Volatile write cache present: flushes and FUA must reach `flush`. */
  readonly writeCache: boolean;
  /** Thin provisioned: `unmap` deallocates, and deallocated blocks read back as zeroes. */
  readonly unmapSupported: boolean;
  /** Physical block size in bytes, a power-of-two multiple of `blockSize`; absent: `blockSize`. */
  readonly physicalBlockSize?: number;
  /** Optimal I/O boundary in blocks (0 when none). */
  readonly optimalIoBoundary: number;
  /** Rejects writes: targets report it (write protected) and send it none. */
  readonly readOnly?: boolean;
  /**
   * Largest `writev` (in blocks) the backend completes atomically: no reader or writer sees part of
   * it. 0 or absent: no guarantee (SCSI WRITE ATOMIC is then not offered).
   */
  readonly atomicWriteBlocks?: number;
}

export interface BlockBackend extends BlockBackendInfo {
  readv<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  writev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  /** MISCOMPARE when the medium differs from `iov`. */
  comparev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  /**
   * Compares `compare` with the medium and, only if equal, writes `write`: atomic with respect to
   * every other writer of the backend (NVMe fused Compare and Write, SCSI COMPARE AND WRITE).
   * MISCOMPARE: nothing was written.
   */
  compareAndWritev<C>(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  unmap<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  writeZeroes<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  /** Makes written blocks durable; SUCCESS at once (still later) when there is no write cache. */
  flush<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void;
  /** Aborts outstanding I/O (their callbacks run with ABORTED or FAILED), then completes. */
  reset<C>(cb: IoCb<C>, ctx: C): void;
  /** First allocated block at or after `offset`. Optional: without it, every block is mapped. */
  seekData?<C>(offset: Lba, cb: SeekCb<C>, ctx: C): void;
  /** First deallocated block at or after `offset`. */
  seekHole?<C>(offset: Lba, cb: SeekCb<C>, ctx: C): void;
}
