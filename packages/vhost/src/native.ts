// What this package uses of the native core's vhost-user layer (@storkit/native), with its errors
// as VhostErrors: the core's code says what happened (EPROTO: the frontend broke the protocol;
// EADDRINUSE: a live backend owns the path; EPERM: another user's socket file), nothing is read
// out of a message.
import {
  GuestMapping,
  NativeError,
  native,
  type VhostConnection,
  type VhostListener,
  type VhostMemRegion,
  type VhostMessage,
  vhostCloseFd,
  vhostConnect,
  vhostEventfd,
  vhostEventfdRead,
  vhostEventfdWrite,
  vhostListen,
} from '@storkit/native';

import { VhostError } from './errors.js';

export type { VhostMemRegion, VhostMessage };
export { GuestMapping };
export type NativeConnection = VhostConnection;
export type NativeListener = VhostListener;

/** Run a native call; its errors become VhostErrors with the core's code (the NativeError is the cause). */
export function call<T>(fn: () => T): T {
  try {
    return native(fn);
  } catch (e) {
    if (!(e instanceof NativeError)) throw e;
    throw new VhostError(e.code, `${e.code}: ${e.message}`, { cause: e });
  }
}

export const listen = (path: string): NativeListener => call(() => vhostListen(path));
export const connect = (path: string): NativeConnection => call(() => vhostConnect(path));
export const eventfd = (): number => call(() => vhostEventfd());
/** Read-and-reset an eventfd (0 when not signalled). */
export const eventfdRead = (fd: number): number => call(() => vhostEventfdRead(fd));
export const eventfdWrite = vhostEventfdWrite;
/** Map `size` bytes of a guest memory fd at `offset` (the caller still owns and closes `fd`). */
export const mapGuestRegion = (fd: number, offset: number, size: number): GuestMapping =>
  call(() => GuestMapping.map(fd, offset, size));
/** Close an fd this process owns; -1 is ignored. */
export const closeFd = (fd: number): void => call(() => vhostCloseFd(fd));
