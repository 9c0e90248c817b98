import type { Codes } from '@storkit/errors';

/**
 * Stable error codes of the reactor framework. A synchronous throw from an API means its
 * callback will never run.
 */
export type ReactorErrorCode = Codes<
  | 'EINVAL' // an argument is out of range or of the wrong shape
  | 'ENOTHREAD' // the call needs a current thread (call it from a poller, a message or harness.setThread)
  | 'EWRONGTHREAD' // the object belongs to another thread
  | 'ESHUTDOWN' // the thread or reactor has exited or is exiting
  | 'ENODEV' // no io_device registered under that key or name
  | 'EEXIST' // a device, handler or iterator with that name already exists
  | 'ENOENT' // no handler, iterator or reactor by that name or index
  | 'EBUSY' // the object is in a state that does not allow the call (a socket with sends queued)
  | 'EMSGSIZE' // an encoded payload does not fit a ring record
  | 'EBUSYLOOP' // the test harness polled past its limit: something stays busy, or an awaited answer never came
  | 'ELEAK' // threads could not exit because pollers or channels are still held
  | 'EWORKER' // a reactor worker failed or did not stop in time
>;

export class ReactorError extends Error {
  readonly code: ReactorErrorCode;
  constructor(code: ReactorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReactorError';
    this.code = code;
  }
}
