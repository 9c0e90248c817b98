import type { Codes } from '@storkit/errors';

/** Stable error codes of the I/OAT driver (errno names). A synchronous throw means no callback runs. */
export type IoatErrorCode = Codes<
  | 'EINVAL' // a length, offset or pattern is out of range, or two ranges of a copy overlap
  | 'EFAULT' // a buffer is not in DMA memory the device can reach
  | 'ENODEV' // no such device, or it does not answer (reads all-ones)
  | 'ENOTSUP' // the engine lacks the operation (fill without DMACAP.BFILL), or an unsupported version
  | 'EBUSY' // the channel is claimed by another thread, or still has operations outstanding
  | 'EWRONGTHREAD' // the channel belongs to another thread
  | 'ETIMEDOUT' // the engine did not finish a reset or start in time
  | 'EIO' // the engine halted (CHANERR) on an operation
  | 'ESHUTDOWN' // the channel was detached
>;

export class IoatError extends Error {
  override name = 'IoatError';
  readonly code: IoatErrorCode;
  constructor(code: IoatErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Completion status handed to callbacks: 0, or a negative errno. */
export const IOAT_OK = 0;
/** The engine halted on this operation (see IoatChannel.lastError for CHANERR). */
export const IOAT_EIO = -5;
/** The channel was detached before the operation ran. */
export const IOAT_ECANCELED = -125;
