// The vhost-user part of the native core: the control socket (messages with their fds over
// SCM_RIGHTS), eventfds, and guest memory regions mapped from received fds. Errors are
// NativeErrors with the core's code (EPROTO when the frontend broke the protocol).
import type * as Binding from '@storkit/native-binding';

import { binding } from './binding.js';
import { native } from './errors.js';
import { MappedRegion } from './region.js';

export type VhostMessage = Binding.VhostMessage;
export type VhostMemRegion = Binding.VhostMemRegion;
/** A vhost-user connection; its methods throw the addon's coded errors (wrap them in `native`). */
export type VhostConnection = Binding.VhostConnection;
export type VhostListener = Binding.VhostListener;

/** Listen for vhost-user frontends on a Unix socket path. */
export function vhostListen(path: string): VhostListener {
  return native(() => new binding.VhostListener(path));
}

/** Connect to a vhost-user backend's socket (the frontend side: virtio-user). */
export function vhostConnect(path: string): VhostConnection {
  return native(() => binding.VhostConnection.connect(path));
}

export function vhostEventfd(): number {
  return native(() => binding.vhostEventfd());
}

/** Read-and-reset an eventfd (0 when not signalled). */
export function vhostEventfdRead(fd: number): number {
  return native(() => binding.vhostEventfdRead(fd));
}

/** Signal an eventfd; on the data path, so it never throws. */
export function vhostEventfdWrite(fd: number): void {
  binding.vhostEventfdWrite(fd);
}

/** Close an fd this process owns; -1 is ignored. */
export function vhostCloseFd(fd: number): void {
  if (fd >= 0) native(() => binding.vhostCloseFd(fd));
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
    const r = native(() => binding.vhostMapRegion(fd, offset, size));
    return new GuestMapping(r.handle, r.delta);
  }
}
