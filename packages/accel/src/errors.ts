import type { Codes } from '@storkit/errors';

/** Stable error codes of the accel framework (errno names). A synchronous throw means no callback runs. */
export type AccelErrorCode = Codes<
  | 'EINVAL' // an argument is out of range
  | 'ENOENT' // no such opcode or module
  | 'ENOTSUP' // the module does not implement the opcode
  | 'EBUSY' // the framework has started (assignments are startup-only), or is in use
  | 'EEXIST' // a module of that name is registered
  | 'ENODEV' // the framework is not started, or a module found no device
  | 'ENOTHREAD' // the call needs a current reactor thread
  | 'ESHUTDOWN' // the framework is stopping
>;

export class AccelError extends Error {
  override name = 'AccelError';
  readonly code: AccelErrorCode;
  constructor(code: AccelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Completion status: 0, or a negative errno. */
export const ACCEL_OK = 0;
/** submit*: no free task on this channel now (retry after completions), as SPDK's -ENOMEM. */
export const ACCEL_ENOMEM = -12;
/** *Now: the module assigned to the operation does not run it on this CPU: submit it instead. */
export const ACCEL_EAGAIN = -11;
/** The engine failed the operation. */
export const ACCEL_EIO = -5;
/** compare: the buffers differ (SPDK's -EILSEQ). */
export const ACCEL_EMISCOMPARE = -84;
/** A sequence or batch was aborted before this operation ran. */
export const ACCEL_ECANCELED = -125;
