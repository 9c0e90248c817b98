import { type Errno, isErrno } from '@storkit/errors';

/**
 * An error from the native core. Its `code` is the addon's own (an errno-style name of
 * @storkit/errors: `EINVAL`, `EPERM`, `ENOMEM`, `EPROTO`, ...): the core throws with it set, so
 * nothing is parsed out of the message.
 */
export class NativeError extends Error {
  readonly code: Errno;
  constructor(message: string, code: Errno, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeError';
    this.code = code;
  }
}

/** Run a native call and turn its coded errors into NativeError. */
export function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toNativeError(e);
  }
}

/** The NativeError for an error the addon threw (it carries `code`); anything else unchanged. */
export function toNativeError(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && isErrno(code) ? new NativeError(e.message, code, { cause: e }) : e;
}
