/**
 * The block backend a SCSI logical unit serves: the one contract between the SCSI layer and
 * whatever stores the blocks. Shaped after SPDK's bdev API (`spdk_bdev_readv_blocks`,
 * `spdk_bdev_unmap_blocks`, `spdk_bdev_comparev_and_writev_blocks`, ...) so a bdev can implement it
 * directly.
 *
 * Contract for every async operation (as SPDK's `spdk_bdev_read` documents):
 * - a synchronous throw means the callback never runs;
 * - otherwise the callback runs exactly once, and never inside the call that submitted the I/O;
 * - `IoStatus.NoMem` means "nothing was done, queue the I/O and retry later".
 * Offsets and lengths are in blocks, never bytes.
 */

/** A block address or count (distinct from byte offsets by name only: JS has no newtypes). */
export type Lba = number;

export const IoStatus = {
  Success: 0,
  Failed: 1,
  /** COMPARE AND WRITE / comparev found different data; `info` is the first differing byte. */
  Miscompare: 2,
  NoMem: 3,
  /** The backend is read-only (or write protected). */
  WriteProtect: 4,
} as const;
export type IoStatus = (typeof IoStatus)[keyof typeof IoStatus];

/** `info`: byte offset of the first miscompare, or the next offset for seek operations. */
export type IoCallback = (status: IoStatus, info: number) => void;

/** A scatter list: the buffers are used in order, their lengths sum to the transfer size. */
export type IoVec = readonly Uint8Array[];

export interface BlockBackendInfo {
  readonly name: string;
  /** Logical block size in bytes (512 or 4096 typically). */
  readonly blockSize: number;
  readonly numBlocks: number;
  /** RFC 4122 text form: becomes the NAA designator and the serial number. */
  readonly uuid: string;
  /** Volatile write cache present: SYNCHRONIZE CACHE and FUA must reach `flush`. */
  readonly writeCache: boolean;
  /** Thin provisioned: UNMAP / WRITE SAME with UNMAP deallocate, and read back zeroes. */
  readonly unmapSupported: boolean;
  /**
   * Physical block size in bytes (SPDK's phys_blocklen): a power-of-two multiple of `blockSize`.
   * Absent: equal to `blockSize`.
   */
  readonly physicalBlockSize?: number;
  /** Optimal I/O boundary in blocks (0 when none). */
  readonly optimalIoBoundary: number;
  /** Rejects writes (served as write protected). */
  readonly readOnly?: boolean;
  /**
   * Largest `writev` (in blocks) the backend completes atomically: no reader or writer sees part of
   * it. 0 or absent: no guarantee (WRITE ATOMIC is then not offered).
   */
  readonly atomicWriteBlocks?: number;
}

export interface BlockBackend extends BlockBackendInfo {
  readv(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void;
  writev(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void;
  unmap(offset: Lba, count: Lba, cb: IoCallback): void;
  writeZeroes(offset: Lba, count: Lba, cb: IoCallback): void;
  flush(offset: Lba, count: Lba, cb: IoCallback): void;
  /**
   * Compares `compare` with the medium and, only if equal, writes `write`: atomic with respect to
   * every other writer of the backend.
   */
  compareAndWritev(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCallback): void;
  /** Aborts outstanding I/O; callbacks of aborted I/O run with `Failed`. */
  reset(cb: IoCallback): void;
  /**
   * First allocated block at or after `offset` (SPDK's `spdk_bdev_seek_data`), `numBlocks` when none.
   * Optional: a backend without it is reported fully mapped.
   */
  seekData?(offset: Lba, cb: IoCallback): void;
  /** First deallocated block at or after `offset` (`spdk_bdev_seek_hole`), `numBlocks` when none. */
  seekHole?(offset: Lba, cb: IoCallback): void;
}
