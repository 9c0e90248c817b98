import type { Codes } from '@storkit/errors';

/** Stable error codes of the bdev layer (errno names, as SPDK returns them). */
export type BdevErrorCode = Codes<
  'EINVAL' | 'ENODEV' | 'EEXIST' | 'EBUSY' | 'EPERM' | 'ENOENT' | 'ENOTSUP' | 'ENOMEM' | 'ENOTHREAD' | 'EIO'
>;

/** Every error the bdev layer throws. A synchronous throw means the callback never runs. */
export class BdevError extends Error {
  override name = 'BdevError';
  /** What to match on: the message is text for people and may change. */
  readonly code: BdevErrorCode;
  constructor(code: BdevErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
