/** An error from the native core, with a stable errno-style code (`EINVAL`, `EPERM`, `ENOMEM`, ...). */
export class NativeError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeError';
    this.code = code;
  }
}

const CODE = /^\[([A-Z0-9_]+)\] /;

/** Run a native call and turn its `[CODE] message` errors into NativeError. */
export function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toNativeError(e);
  }
}

/** The NativeError for a `[CODE] message` error from the addon; anything else unchanged. */
export function toNativeError(e: unknown): unknown {
  const msg = e instanceof Error ? e.message : String(e);
  const m = CODE.exec(msg);
  return m ? new NativeError(msg.slice(m[0].length), m[1], { cause: e }) : e;
}
