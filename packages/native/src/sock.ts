import { binding } from './binding.js';
import { native, toNativeError } from './errors.js';
import type { ReuseportListener } from './net.js';

/** Where a connection comes from and how it is queued, set on the socket before it connects. */
export interface ConnectFrom {
  /** Bind this local address first (an IPv4 or IPv6 literal). */
  localAddress?: string;
  /** Bind this local port first (with the any-address when no localAddress). */
  localPort?: number;
  /** SO_PRIORITY (0-6 unprivileged). */
  priority?: number;
}

/** Set SO_PRIORITY of a socket that is not a group's (a node:net socket's fd). */
export function socketSetPriority(fd: number, prio: number): void {
  native(() => binding.socketSetPriority(fd, prio));
}

/** SO_PRIORITY of a socket that is not a group's. */
export function socketPriority(fd: number): number {
  return native(() => binding.socketPriority(fd));
}

/** Event flags in `SockGroup.poll`'s array (crates/core/src/sock.rs). */
export const SOCK_IN = 1;
/** The connection takes bytes again (reported only while `wantWrite(fd, true)`). */
export const SOCK_OUT = 2;
/** The peer hung up. */
export const SOCK_HUP = 4;
/** The socket has a pending error (`recv` returns it). */
export const SOCK_ERR = 8;
/** A connection just accepted; the third word is the listener's fd. */
export const SOCK_ACCEPT = 16;
/** i32 words per event: fd, flags, listener fd (SOCK_ACCEPT) or 0. */
export const SOCK_EVENT_WORDS = 3;
/** What `recv`/`send` return when the socket has no bytes (or no room) now. */
export const SOCK_EAGAIN = -11;
/** `connectError`'s answer when nothing listens on the port. */
export const SOCK_ECONNREFUSED = -111;

/** Both ends of a connection. */
export interface SockAddresses {
  readonly address: string;
  readonly port: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/**
 * A polled socket group (SPDK's sock group, posix flavour): one level-triggered epoll set of
 * listeners and connections, owned by one reactor and polled from its poller.
 *
 * `poll(events)` accepts pending connections natively (non-blocking, TCP_NODELAY) and fills
 * `events` with `SOCK_EVENT_WORDS` words per event; `recv` and `send` move bytes between the
 * kernel and caller buffers, returning counts or negative errnos (`SOCK_EAGAIN` when nothing can
 * move now). None of these allocates a JS object. After a partial send, `wantWrite(fd, true)`
 * makes `poll` report SOCK_OUT until it is turned off.
 *
 * A reactor that sleeps arms the group (`arm()`) just before: the waiter thread started by
 * `startWaiter(wake)` then calls `wake` on this JS thread at the group's next event (or at once if
 * one is pending), once per arm; `disarm()` when awake again.
 */
export class SockGroup {
  readonly #g: ReturnType<typeof binding.sockGroupCreate>;
  #closed = false;

  constructor() {
    this.#g = native(() => binding.sockGroupCreate());
  }

  /** Listen on `host:port` (an IP literal; 0 picks a port) through an SO_REUSEPORT socket. */
  listen(host: string, port: number, backlog = 511): ReuseportListener {
    return native(() => binding.sockGroupListen(this.#g, host, port, backlog));
  }

  /**
   * Start a non-blocking connect (TCP_NODELAY) to `host:port`, an IPv4 or IPv6 literal: the new
   * connection's fd, with write interest on. `poll` reports SOCK_OUT (or SOCK_ERR) when the
   * connect finished; `connectError(fd)` then says whether it worked, and `wantWrite(fd, false)`
   * stops the writability reports.
   */
  connect(host: string, port: number, from: ConnectFrom = {}): number {
    return native(() =>
      binding.sockGroupConnect(this.#g, host, port, from.localAddress, from.localPort, from.priority),
    );
  }

  /** A connect's outcome (SO_ERROR): 0, or a negative errno (-111 ECONNREFUSED, ...). */
  connectError(fd: number): number {
    return native(() => binding.sockConnectError(this.#g, fd));
  }

  /** Events since the last poll into `events`; returns how many (never waits). */
  poll(events: Int32Array): number {
    try {
      return binding.sockGroupPoll(this.#g, events);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  /** Read into `buf`: bytes read, 0 at end of stream, or a negative errno. */
  recv(fd: number, buf: Uint8Array): number {
    try {
      return binding.sockRecv(this.#g, fd, buf);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  /** Send `buf[off, off + len)`: bytes the kernel took, or a negative errno. */
  send(fd: number, buf: Uint8Array, off = 0, len = buf.length - off): number {
    try {
      return binding.sockSend(this.#g, fd, buf, off, len);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  /**
   * Send `bufs[0]` from `off`, then the rest of `bufs`, in one sendmsg (at most 1024 buffers):
   * bytes the kernel took, or a negative errno.
   */
  sendv(fd: number, bufs: readonly Uint8Array[], off = 0): number {
    try {
      return binding.sockSendv(this.#g, fd, bufs as Uint8Array[], off);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  /** Report SOCK_OUT for `fd` while `on`. */
  wantWrite(fd: number, on: boolean): void {
    native(() => binding.sockWantWrite(this.#g, fd, on));
  }

  /** Set a connection's SO_PRIORITY (0-6 unprivileged): the queueing class of what it sends. */
  setPriority(fd: number, prio: number): void {
    native(() => binding.sockSetPriority(this.#g, fd, prio));
  }

  /** A connection's SO_PRIORITY. */
  priority(fd: number): number {
    return native(() => binding.sockPriority(this.#g, fd));
  }

  /** Close a connection or listener of the group. */
  close(fd: number): void {
    native(() => binding.sockClose(this.#g, fd));
  }

  /**
   * Give connection `fd` up without closing it: the group stops watching it and the fd is the
   * caller's, to hand to another group (another reactor) with `adopt`.
   */
  release(fd: number): void {
    native(() => binding.sockRelease(this.#g, fd));
  }

  /** Take a connected non-blocking socket (one another group released) into this group. */
  adopt(fd: number): void {
    native(() => binding.sockAdopt(this.#g, fd));
  }

  /** Peer and local address of a connection. */
  addresses(fd: number): SockAddresses {
    const [address, port, localAddress, localPort] = native(() => binding.sockAddresses(this.#g, fd));
    return { address, port, localAddress, localPort };
  }

  /** Start the wake-up thread; `wake` runs on this JS thread (it does not keep the loop alive). */
  startWaiter(wake: () => void): void {
    native(() => binding.sockGroupStartWaiter(this.#g, wake));
  }

  /** One wake-up at the group's next event (or now, if one is pending). */
  arm(): void {
    native(() => binding.sockGroupArm(this.#g));
  }

  /** No wake-up (the reactor polls for itself). */
  disarm(): void {
    native(() => binding.sockGroupDisarm(this.#g));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Close every socket and stop the waiter. Idempotent. */
  destroy(): void {
    this.#closed = true;
    binding.sockGroupClose(this.#g);
  }
}
