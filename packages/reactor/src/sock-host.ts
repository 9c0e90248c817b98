// Native sockets served by a reactor poller (SPDK's sock group in the poll group poller): the
// poller polls a native SockGroup, reads each connection into its fixed receive buffer and hands
// the bytes to the connection's handler, and sends what handlers write, holding a buffer until the
// kernel took all of it. Lives in @storkit/reactor so every target (nvmf, iscsi) and the NVMe/TCP
// host can put their protocol engines on it; it knows nothing about any protocol. Connections
// come from listeners (accepted) or from `connect` (outbound, for hosts). Outside a reactor thread
// a host is polled by its owner (`SockHost.ownerPolled`), e.g. a tool's own spin loop.

import {
  closeFd,
  SOCK_ACCEPT,
  SOCK_EAGAIN,
  SOCK_ERR,
  SOCK_EVENT_WORDS,
  SOCK_HUP,
  SOCK_IN,
  SOCK_OUT,
  type SockAddresses,
  SockGroup,
} from '@storkit/native';

import { getThread } from './current.js';
import { ReactorError } from './errors.js';
import { POLLER_BUSY, POLLER_IDLE, type Poller } from './poller.js';
import type { SleepHook } from './reactor.js';
import type { Thread } from './thread.js';

/** What a connection's owner (a protocol engine adapter) is told. */
export interface SockConnHandler {
  /** `conn.rx[0, n)` came from the peer (valid only during the call). */
  onData(n: number): void;
  /**
   * The connection is gone: the peer closed or reset it, or `close()` was called (then this comes
   * from the next poll, not from inside close). Called once; not after a failed outbound connect
   * (onConnect reports that instead).
   */
  onClose(): void;
  /**
   * An outbound connect (`SockHost.connect`) finished: `rc` is 0 when connected, else a negative
   * errno (-111 ECONNREFUSED, ...) and the connection is already gone (no onClose follows).
   */
  onConnect?(rc: number): void;
}

export interface SockListenOptions {
  host: string;
  port: number;
  backlog?: number;
  /** A new connection: set `conn.handler` before returning (or close it). */
  onAccept(conn: SockConn): void;
}

/** Buffers one sendmsg takes at most (Linux UIO_MAXIOV is 1024; a flush rarely has more). */
const IOV_MAX = 64;
const EMPTY = new Uint8Array(0);
const noop = (): void => {};

/** One accepted connection of a SockHost. */
export class SockConn {
  readonly fd: number;
  readonly rx: Uint8Array;
  handler: SockConnHandler | null = null;
  readonly #host: SockHost;
  readonly #group: SockGroup;
  // Bytes the kernel has not taken yet, oldest first, each with its release.
  // A queue over arrays that only grow: entries [#txHead, #txTail) are live. Resetting the
  // counters (never the arrays' length, which drops V8's backing store and reallocates it on the
  // next push) keeps a flush free of allocation.
  readonly #txBufs: Uint8Array[] = [];
  readonly #txRelease: (() => void)[] = [];
  #txHead = 0;
  #txTail = 0;
  /** Bytes of #txBufs[#txHead] already sent. */
  #txOff = 0;
  /** Write interest is on: the kernel's send buffer was full. */
  #wantOut = false;
  /** sendv argument arrays by length (the binding takes the whole array): made once each. */
  readonly #iovs: Uint8Array[][] = [];
  #closing = false;
  #gone = false;
  /** An outbound connect has not finished yet. */
  #connecting = false;
  #addresses: SockAddresses | null = null;
  bytesIn = 0;
  bytesOut = 0;

  /** @internal */
  constructor(host: SockHost, group: SockGroup, fd: number, rx: Uint8Array) {
    this.#host = host;
    this.#group = group;
    this.fd = fd;
    this.rx = rx;
  }

  get addresses(): SockAddresses {
    if (this.#addresses === null) {
      try {
        this.#addresses = this.#group.addresses(this.fd);
      } catch {
        // A reset connection has no peer any more; it is about to be reported gone.
        this.#addresses = { address: '', port: 0, localAddress: '', localPort: 0 };
      }
    }
    return this.#addresses;
  }

  /** SO_PRIORITY of the connection (the queueing class of what it sends; 0-6 unprivileged). */
  get priority(): number {
    return this.#group.priority(this.fd);
  }
  set priority(p: number) {
    this.#group.setPriority(this.fd, p);
  }

  get closed(): boolean {
    return this.#closing || this.#gone;
  }

  /** An outbound connect is still in progress (writes queue until it finishes). */
  get connecting(): boolean {
    return this.#connecting;
  }

  /** Buffers queued (behind a partial send, or by `queue` until `flush`). */
  get txPending(): number {
    return this.#txTail - this.#txHead;
  }

  /**
   * Send `bytes` now, or as soon as the kernel has room; `release` runs once the kernel took all
   * of them (or the connection went away), so the caller can reuse the buffer.
   */
  write(bytes: Uint8Array, release: () => void): void {
    if (this.#gone || this.#closing) {
      release();
      return;
    }
    if (this.#txHead === this.#txTail && !this.#connecting) {
      const r = this.#group.send(this.fd, bytes, 0, bytes.length);
      if (r === bytes.length) {
        this.bytesOut += r;
        release();
        return;
      }
      if (r < 0 && r !== SOCK_EAGAIN) {
        // The peer is gone; epoll reports it (HUP/ERR) and the next poll ends the connection.
        release();
        return;
      }
      const sent = Math.max(r, 0);
      this.bytesOut += sent;
      this.#txOff = sent;
      this.#enqueue(bytes, release);
      this.#waitWritable();
      return;
    }
    this.#enqueue(bytes, release);
  }

  #enqueue(bytes: Uint8Array, release: () => void): void {
    const t = this.#txTail++;
    if (t === this.#txBufs.length) {
      this.#txBufs.push(bytes);
      this.#txRelease.push(release);
    } else {
      this.#txBufs[t] = bytes;
      this.#txRelease[t] = release;
    }
  }

  /** Queue `bytes` without sending: `flush()` sends everything queued in one sendmsg. */
  queue(bytes: Uint8Array, release: () => void): void {
    if (this.#gone || this.#closing) {
      release();
      return;
    }
    this.#enqueue(bytes, release);
  }

  /** Send what is queued (unless the kernel has no room, or the connect is pending: then EPOLLOUT continues it). */
  flush(): void {
    if (!this.#wantOut && !this.#gone && !this.#connecting) this.#send();
  }

  /** Close once queued bytes are sent; the handler's onClose follows from the poller. */
  close(): void {
    if (this.#closing || this.#gone) return;
    this.#closing = true;
    this.flush();
    if (this.txPending === 0) this.#host._retire(this);
  }

  #waitWritable(): void {
    if (this.#wantOut) return;
    this.#wantOut = true;
    this.#group.wantWrite(this.fd, true);
  }

  /** Send queued buffers until done or the kernel is full; false when the send failed. */
  #send(): boolean {
    const g = this.#group;
    while (this.#txHead < this.#txTail) {
      const n = Math.min(this.#txTail - this.#txHead, IOV_MAX);
      let r: number;
      let want: number;
      if (n === 1) {
        const b = this.#txBufs[this.#txHead];
        want = b.length - this.#txOff;
        r = g.send(this.fd, b, this.#txOff, want);
      } else {
        const iov = (this.#iovs[n] ??= new Array<Uint8Array>(n).fill(EMPTY));
        want = -this.#txOff;
        for (let i = 0; i < n; i++) {
          const b = this.#txBufs[this.#txHead + i];
          iov[i] = b;
          want += b.length;
        }
        r = g.sendv(this.fd, iov, this.#txOff);
        iov.fill(EMPTY);
      }
      if (r < 0) {
        if (r === SOCK_EAGAIN) {
          this.#waitWritable();
          return true;
        }
        this.#host._retire(this); // the send failed: the connection is dead
        return false;
      }
      this.bytesOut += r;
      this.#consume(r);
      if (r < want) {
        this.#waitWritable();
        return true;
      }
    }
    this.#txHead = 0;
    this.#txTail = 0;
    this.#txOff = 0;
    return true;
  }

  /** The kernel took `r` more bytes: release the buffers it finished. */
  #consume(r: number): void {
    let left = r + this.#txOff;
    while (this.#txHead < this.#txTail) {
      const len = this.#txBufs[this.#txHead].length;
      if (left < len) break;
      left -= len;
      this.#txBufs[this.#txHead] = EMPTY;
      const rel = this.#txRelease[this.#txHead];
      this.#txRelease[this.#txHead] = noop;
      this.#txHead++;
      rel();
    }
    this.#txOff = left;
  }

  /** @internal an outbound connect: write interest is on until it finishes */
  _startConnect(): void {
    this.#connecting = true;
    this.#wantOut = true;
  }

  /** @internal the connect finished (rc 0) or failed; returns rc */
  _finishConnect(): number {
    const rc = this.#group.connectError(this.fd);
    this.#connecting = false;
    return rc;
  }

  /** @internal the kernel has room again */
  _drain(): void {
    if (this.#gone) return;
    this.#wantOut = false;
    if (!this.#send()) return;
    if (this.txPending > 0) return; // still waiting: #send turned interest back on
    this.#group.wantWrite(this.fd, false);
    if (this.#closing) this.#host._retire(this);
  }

  /** @internal read until the kernel has no more; false when the connection ended */
  _read(): boolean {
    const g = this.#group;
    const rx = this.rx;
    for (;;) {
      const r = g.recv(this.fd, rx);
      if (r > 0) {
        this.bytesIn += r;
        // A connection closing after its last send discards what still arrives.
        if (!this.#closing && this.handler !== null) this.handler.onData(r);
        if (this.#gone) return false;
        if (r < rx.length) return true;
        continue;
      }
      if (r === SOCK_EAGAIN) return true;
      return false; // 0: end of stream; other negatives: reset and the like
    }
  }

  /** @internal release what was never sent and mark the connection gone */
  _gone(): void {
    this.#gone = true;
    for (let i = this.#txHead; i < this.#txTail; i++) {
      const rel = this.#txRelease[i];
      this.#txBufs[i] = EMPTY;
      this.#txRelease[i] = noop;
      rel();
    }
    this.#txOff = 0;
    this.#txHead = 0;
    this.#txTail = 0;
  }
}

const RX_DEFAULT = 256 * 1024;
/** Set only while `SockHost.ownerPolled` constructs one. */
let ownerPolled = false;
const EVENTS = 256;

export interface SockHostOptions {
  /** Receive buffer per connection (bytes one recv may deliver). Default 256 KiB. */
  rxBuffer?: number;
  /** Poller name (introspection). */
  name?: string;
}

export interface SockConnectOptions {
  /** An IPv4 or IPv6 literal (resolve names first). */
  host: string;
  port: number;
  /** Told when the connect finished (`onConnect`), then of bytes and the end as for accepted ones. */
  handler: SockConnHandler;
  /** Bind this local address (IP literal) before connecting. */
  localAddress?: string;
  /** Bind this local port before connecting. */
  localPort?: number;
  /** SO_PRIORITY, set before connecting. */
  priority?: number;
}

/**
 * A native socket group served by a poller on the calling reactor thread. Handlers run as that
 * thread, from the poller. A sleeping reactor is woken by the group's waiter thread (armed through
 * the reactor's sleep hook), so a connection's first bytes after a quiet spell are served within
 * a wake-up, not a maxSleepUs timeout.
 */
export class SockHost {
  /** The reactor thread whose poller serves this host; null when its owner polls it. */
  readonly thread: Thread | null;
  readonly #group = new SockGroup();
  readonly #events = new Int32Array(EVENTS * SOCK_EVENT_WORDS);
  readonly #rxBytes: number;
  readonly #conns = new Map<number, SockConn>();
  readonly #listeners = new Map<number, SockListenOptions>();
  /** Connections to close (and report gone) at the next poll. */
  #retired: SockConn[] = [];
  readonly #poller: Poller | null = null;
  readonly #hook: SleepHook | null = null;
  #closed = false;
  accepted = 0;

  /** A host served by a poller of the calling reactor thread (ENOTHREAD elsewhere). */
  constructor(o: SockHostOptions = {}) {
    this.#rxBytes = o.rxBuffer ?? RX_DEFAULT;
    if (ownerPolled) {
      this.thread = null;
      return;
    }
    const t = getThread();
    if (t === null) throw new ReactorError('ENOTHREAD', 'SockHost outside a reactor thread');
    this.thread = t;
    const host = t.host;
    this.#group.startWaiter(() => host.kick());
    const g = this.#group;
    // Armed only with members: an empty group has nothing to wake for, and then neither sleeping
    // nor waking costs a syscall.
    let armed = false;
    this.#hook = {
      arm: () => {
        if (this.#conns.size === 0 && this.#listeners.size === 0) return;
        g.arm();
        armed = true;
      },
      disarm: () => {
        if (!armed) return;
        armed = false;
        g.disarm();
      },
    };
    host.addSleepHook(this.#hook);
    this.#poller = t.registerPoller(this.#poll, 0, o.name ?? 'sock_group');
  }

  /**
   * A host no poller serves: its owner calls `poll()` (a tool's spin loop, a thread-less test).
   * Handlers then run from inside `poll`, on the owner's stack.
   */
  static ownerPolled(o: SockHostOptions = {}): SockHost {
    ownerPolled = true;
    try {
      return new SockHost(o);
    } finally {
      ownerPolled = false;
    }
  }

  /** Polled by its owner (`ownerPolled`) rather than by a reactor poller. */
  get polledByOwner(): boolean {
    return this.thread === null;
  }

  /**
   * Start a non-blocking outbound connect (TCP_NODELAY). The connection is a member at once: bytes
   * written before the connect finishes are queued and sent after it; `handler.onConnect` tells the
   * outcome from a later poll. Throws NativeError for an address that is not an IP literal.
   */
  connect(o: SockConnectOptions): SockConn {
    if (this.#closed) throw new ReactorError('ESHUTDOWN', 'socket host is closed');
    const fd = this.#group.connect(o.host, o.port, {
      localAddress: o.localAddress,
      localPort: o.localPort,
      priority: o.priority,
    });
    const c = new SockConn(this, this.#group, fd, new Uint8Array(this.#rxBytes));
    c.handler = o.handler;
    c._startConnect();
    this.#conns.set(fd, c);
    return c;
  }

  /** Listen on an address (SO_REUSEPORT: every reactor may listen on the same one). */
  listen(o: SockListenOptions): { fd: number; port: number } {
    const l = this.#group.listen(o.host, o.port, o.backlog);
    this.#listeners.set(l.fd, o);
    return { fd: l.fd, port: l.port };
  }

  /** Stop listening on a listener made by `listen`. Connections it accepted stay. */
  unlisten(fd: number): void {
    if (!this.#listeners.delete(fd)) return;
    this.#group.close(fd);
  }

  /**
   * Give connection `c` up without closing it, for another reactor's host to `adopt` (a login
   * moving to the reactor that serves its target, as SPDK moves a connection to its target's poll
   * group). Allowed only while nothing is queued to send; safe from inside `c`'s own `onData`
   * (the read stops there). The handler is not told (no onClose): the caller hands the fd on.
   * Returns the fd.
   */
  detach(c: SockConn): number {
    if (this.#conns.get(c.fd) !== c || c.closed)
      throw new ReactorError('ENOENT', `connection ${c.fd} is not open on this host`);
    if (c.txPending > 0 || c.connecting)
      throw new ReactorError('EBUSY', `connection ${c.fd} has sends queued or in progress`);
    this.#group.release(c.fd);
    this.#conns.delete(c.fd);
    c.handler = null;
    c._gone();
    return c.fd;
  }

  /**
   * Take a connected socket another host gave up (`detach`) as one of this host's connections:
   * `onAccept` sets its handler as for an accepted one. On failure the fd is closed.
   */
  adopt(fd: number, onAccept: (conn: SockConn) => void): SockConn {
    if (this.#closed) {
      closeFd(fd);
      throw new ReactorError('ESHUTDOWN', 'socket host is closed');
    }
    try {
      this.#group.adopt(fd);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    const c = new SockConn(this, this.#group, fd, new Uint8Array(this.#rxBytes));
    this.#conns.set(fd, c);
    onAccept(c);
    if (c.handler === null && !c.closed) c.close();
    return c;
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** Poll now (tests and the harness; the poller does this every iteration). */
  poll(): number {
    return this.#poll();
  }

  readonly #poll = (): number => {
    let busy = 0;
    if (this.#retired.length > 0) {
      busy++;
      const r = this.#retired;
      this.#retired = [];
      for (const c of r) this.#end(c);
    }
    // An empty group costs no syscall: a subsystem that made its host but serves no portal yet
    // must not tax every iteration of a reactor busy with other work.
    if (this.#conns.size === 0 && this.#listeners.size === 0) return busy > 0 ? POLLER_BUSY : POLLER_IDLE;
    const ev = this.#events;
    const n = this.#group.poll(ev);
    if (n === 0) return busy > 0 ? POLLER_BUSY : POLLER_IDLE;
    for (let i = 0; i < n; i++) {
      const o = i * SOCK_EVENT_WORDS;
      const fd = ev[o];
      const f = ev[o + 1];
      if (f === SOCK_ACCEPT) {
        this.#accept(fd, ev[o + 2]);
        continue;
      }
      const c = this.#conns.get(fd);
      if (c === undefined) continue;
      if (c.connecting) {
        if (!this.#connected(c)) continue;
      } else if (f & SOCK_OUT) c._drain();
      if (f & (SOCK_IN | SOCK_HUP | SOCK_ERR) && !c._read()) this.#end(c);
    }
    return POLLER_BUSY;
  };

  // An outbound connect reported writable (or an error): tell the handler how it went; on
  // success, send what was written meanwhile (the drain also turns write interest off).
  #connected(c: SockConn): boolean {
    const rc = c._finishConnect();
    if (rc !== 0) {
      this.#conns.delete(c.fd);
      c._gone();
      this.#group.close(c.fd);
      c.handler?.onConnect?.(rc);
      return false;
    }
    c.handler?.onConnect?.(0);
    c._drain();
    return this.#conns.get(c.fd) === c;
  }

  #accept(fd: number, lfd: number): void {
    const l = this.#listeners.get(lfd);
    if (l === undefined) {
      this.#group.close(fd);
      return;
    }
    this.accepted++;
    const c = new SockConn(this, this.#group, fd, new Uint8Array(this.#rxBytes));
    this.#conns.set(fd, c);
    l.onAccept(c);
    if (c.handler === null && !c.closed) c.close();
  }

  /** @internal close `c` at the next poll (never from inside a handler's own call) */
  _retire(c: SockConn): void {
    if (this.#conns.get(c.fd) === c && !this.#retired.includes(c)) this.#retired.push(c);
  }

  /** Close the fd and tell the handler, once. */
  #end(c: SockConn): void {
    if (this.#conns.get(c.fd) !== c) return;
    this.#conns.delete(c.fd);
    c._gone();
    this.#group.close(c.fd);
    c.handler?.onClose();
  }

  /** Close every connection (handlers are told) and listener, and stop polling. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [...this.#conns.values()]) this.#end(c);
    this.#retired = [];
    this.#listeners.clear();
    if (this.thread !== null && this.#hook !== null) this.thread.host.removeSleepHook(this.#hook);
    this.#poller?.unregister();
    this.#group.destroy();
  }
}
