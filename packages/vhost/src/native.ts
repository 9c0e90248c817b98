// The vhost-user part of the native addon: the control socket, eventfds and guest memory
// regions mapped from received fds. Everything else in this package goes through here.
import { createRequire } from 'node:module';
import { MappedRegion } from '@storkit/native';
import type * as Binding from '@storkit/native-binding';

import { VhostError } from './errors.js';

const require = createRequire(import.meta.url);
const binding: typeof Binding = require('@storkit/native-binding');

export type VhostMessage = Binding.VhostMessage;
export type VhostMemRegion = Binding.VhostMemRegion;
export type NativeConnection = Binding.VhostConnection;
export type NativeListener = Binding.VhostListener;

const CODE = /^\[([A-Z0-9_]+)\] /;

/** Run a native call; its `[CODE] message` errors become VhostError (EPROTO for protocol errors). */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = CODE.exec(msg);
    if (!m) throw e;
    const text = msg.slice(m[0].length);
    // A socket path a live backend or another user owns keeps its own code: callers tell it
    // apart from failures.
    const code = text.includes('vhost-user protocol')
      ? 'EPROTO'
      : m[1] === 'EADDRINUSE' || m[1] === 'EPERM'
        ? m[1]
        : 'ENATIVE';
    throw new VhostError(code, `${m[1]}: ${text}`, { cause: e });
  }
}

export function listen(path: string): NativeListener {
  return call(() => new binding.VhostListener(path));
}

export function connect(path: string): NativeConnection {
  return call(() => binding.VhostConnection.connect(path));
}

export function eventfd(): number {
  return call(() => binding.vhostEventfd());
}

/** Read-and-reset an eventfd (0 when not signalled). */
export function eventfdRead(fd: number): number {
  return call(() => binding.vhostEventfdRead(fd));
}

export function eventfdWrite(fd: number): void {
  binding.vhostEventfdWrite(fd);
}

/** Close an fd this process owns; -1 is ignored. */
export function closeFd(fd: number): void {
  if (fd >= 0) call(() => binding.vhostCloseFd(fd));
}

/** A guest memory region mapped from its fd: this worker's view of it. */
export class GuestMapping extends MappedRegion {
  /** Offset of the region's first byte inside `bytes`. */
  readonly delta: number;
  private constructor(handle: number, delta: number) {
    super(handle, true);
    this.delta = delta;
  }

  /** Map `size` bytes of `fd` at `offset` (the caller still owns and closes `fd`). */
  static map(fd: number, offset: number, size: number): GuestMapping {
    const r = call(() => binding.vhostMapRegion(fd, offset, size));
    return new GuestMapping(r.handle, r.delta);
  }
}
