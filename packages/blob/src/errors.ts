import { type Codes, ERRNO as ERRNO_OF } from '@storkit/errors';

/** Stable error codes of the blobstore (errno names, as SPDK's blobstore returns them). */
export type BlobErrorCode = Codes<
  | 'EILSEQ'
  | 'EINVAL'
  | 'ENOENT'
  | 'ENOSPC'
  | 'EBUSY'
  | 'EPERM'
  | 'EEXIST'
  | 'EIO'
  | 'ENXIO'
  | 'ENOTSUP'
  | 'ENOMEM'
  | 'ENODEV'
  | 'ENOTHREAD'
>;

/**
 * Every error the blobstore reports. EILSEQ means the on-disk format is not what SPDK writes (a bad
 * signature, CRC, descriptor, or chain); the message names the page and what is wrong with it.
 */
export class BlobError extends Error {
  override name = 'BlobError';
  /** What to match on: the message is text for people and may change. */
  readonly code: BlobErrorCode;
  constructor(code: BlobErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The errno number SPDK uses for a code (callbacks that mirror SPDK's bserrno get these, negated). */
export const ERRNO: Readonly<Record<BlobErrorCode, number>> = ERRNO_OF;
