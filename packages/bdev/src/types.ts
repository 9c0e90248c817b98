/** The kinds of bdev I/O (spdk_bdev_io_type). */
export const IoType = {
  READ: 1,
  WRITE: 2,
  UNMAP: 3,
  FLUSH: 4,
  RESET: 5,
  WRITE_ZEROES: 6,
  COMPARE: 7,
  COMPARE_AND_WRITE: 8,
  ABORT: 9,
  /** An NVMe admin command passed to the controller behind the bdev (spdk_bdev_nvme_admin_passthru). */
  NVME_ADMIN: 10,
  /** An NVMe I/O command passed to the bdev's namespace (spdk_bdev_nvme_io_passthru). */
  NVME_IO: 11,
} as const;
export type IoType = (typeof IoType)[keyof typeof IoType];

export const IO_TYPE_NAMES: Record<IoType, string> = {
  1: 'read',
  2: 'write',
  3: 'unmap',
  4: 'flush',
  5: 'reset',
  6: 'write_zeroes',
  7: 'compare',
  8: 'compare_and_write',
  9: 'abort',
  10: 'nvme_admin',
  11: 'nvme_io',
};

// How an I/O ended, and the completion callback's shape: the block backend contract's, so a
// target's callback goes to the bdev layer unchanged.
export { type IoCb, IoStatus } from '@storkit/block';

/** Where an NVMe passthru's completion lands (CQE dword 0 and the 15-bit status; 0 = success). */
export interface NvmeCompletion {
  cdw0: number;
  status: number;
}

/**
 * What a submit function returns when no bdev_io is free on the channel: nothing was submitted,
 * the callback will not run; call queueIoWait to be told when one is back (-ENOMEM).
 */
export const ENOMEM = -12;

/** Events a descriptor's owner is told about (spdk_bdev_event_type). */
export const BdevEvent = {
  REMOVE: 'remove',
  RESIZE: 'resize',
} as const;
export type BdevEvent = (typeof BdevEvent)[keyof typeof BdevEvent];

/** A block address or count (LBA units, never bytes). */
export type Blocks = number;

/** True for the I/O types that change the medium (and so wait for range locks). */
export function isWriteType(t: IoType): boolean {
  return (
    t === IoType.WRITE || t === IoType.WRITE_ZEROES || t === IoType.UNMAP || t === IoType.COMPARE_AND_WRITE
  );
}
