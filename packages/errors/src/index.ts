// @storkit/errors: the one code set storkit's errors carry, errno names as Linux spells them, with
// the numbers SPDK-style RPC errors report (-errno). Every package's error codes are names from
// here (a package names the ones it throws with Codes<...>); the native core throws with the same
// names in `code`, so an error crosses napi, workers and RPC without being renamed or parsed.

/**
 * Errno names and their Linux x86-64 numbers. The storkit-specific names (no POSIX errno) carry
 * the number of the POSIX error an RPC caller should see.
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EPIPE: 32,
  ENOSYS: 38,
  EPROTO: 71,
  EILSEQ: 84,
  EMSGSIZE: 90,
  ENOTSUP: 95,
  EADDRINUSE: 98,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ESHUTDOWN: 108,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EALREADY: 114,
  ECANCELED: 125,
  // storkit's own: a call made outside a thread, or on another thread's object (EINVAL); a worker
  // or a test harness that failed (EIO); resources still held at exit (EBUSY); a guest that broke
  // a ring (EIO).
  ENOTHREAD: 22,
  EWRONGTHREAD: 22,
  EBUSYLOOP: 5,
  ELEAK: 16,
  EWORKER: 5,
  EBROKEN: 5,
} as const;

/** A code of the set. */
export type Errno = keyof typeof ERRNO;

/** A package's codes: names of the set (a name outside it does not compile). */
export type Codes<T extends Errno> = T;

/** Whether `code` is a name of the set. */
export function isErrno(code: unknown): code is Errno {
  return typeof code === 'string' && Object.hasOwn(ERRNO, code);
}

/** The errno number to report for `code` (SPDK's RPC errors are -errno); EIO's for a foreign code. */
export function errnoOf(code: string): number {
  return isErrno(code) ? ERRNO[code] : ERRNO.EIO;
}

/** The code of anything thrown: its `code` if it is one of the set, else undefined. */
export function codeOf(e: unknown): Errno | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return isErrno(c) ? c : undefined;
}
