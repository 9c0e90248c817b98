// Socket host for TcpQpair engines: accepts connections on one address and feeds each socket's
// bytes to its own qpair. Two hosts, one engine: node:net on the calling thread (plain in-process
// use, and the fallback), or a reactor's native socket group (`sockHost`), polled by the reactor
// itself with no libuv round trip per read or write.

import net from 'node:net';

import { assertAddressFree, reuseportListen } from '@storkit/native';
import type { SockConn, SockHost } from '@storkit/reactor';

import { NvmfError } from './errors.js';
import { type QpairOwner, TcpQpair } from './tcp-qpair.js';

/** Bytes one socket read may deliver (the per-connection receive buffer). */
const RX_BUFFER = 256 * 1024;

/**
 * Give an accepted connection a socket that reads into `rx` (net's `onread`): no Buffer per read.
 * Node offers `onread` only when constructing a socket, and the server constructs accepted ones, so
 * the (still paused) handle moves to a new socket that has it. Falls back to the accepted socket
 * (and 'data' events) if the handle is not where this Node version keeps it.
 */
function adopt(accepted: net.Socket, rx: Uint8Array, onRead: (n: number) => boolean): net.Socket {
  const a = accepted as unknown as { _handle?: object | null };
  const handle = a._handle;
  if (!handle) return accepted;
  a._handle = null;
  accepted.destroy();
  const s = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: { buffer: rx, callback: onRead },
  } as net.SocketConstructorOpts);
  s.setNoDelay(true);
  return s;
}

export interface ListenerOwner extends QpairOwner {
  qpairOpened(qp: TcpQpair): void;
}

/** How a listener is hosted: on the calling thread (default), or on a reactor worker. */
export interface ListenOptions {
  /**
   * Listen through a native SO_REUSEPORT socket, so the same address can be listened on by every
   * reactor worker and the kernel spreads connections across them.
   */
  reusePort?: boolean;
  /**
   * With reusePort: first check with an ordinary bind that nobody else holds the address, since
   * any process of the same user could otherwise join the SO_REUSEPORT group and take a share of
   * the connections. Set on the first reactor only (the others join its group).
   */
  exclusive?: boolean;
  /**
   * Runs each socket callback (accept, bytes in, close): a reactor makes its thread current
   * around `fn(arg)` so the engine submits I/O as that thread, then wakes the reactor.
   */
  run?: <A>(fn: (arg: A) => void, arg: A) => void;
  /**
   * Serve connections from this reactor's native socket group instead of node:net (SO_REUSEPORT
   * listen, reads and writes from its poller; `run` is then unused: handlers run as its thread).
   */
  sockHost?: SockHost;
}

const direct = <A>(fn: (arg: A) => void, arg: A): void => fn(arg);

export class TcpListener {
  readonly #owner: ListenerOwner;
  readonly #traddr: string;
  readonly #trsvcid: number;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #reusePort: boolean;
  readonly #exclusive: boolean;
  readonly #run: <A>(fn: (arg: A) => void, arg: A) => void;
  readonly #host: SockHost | null;
  #hostFd = -1;
  readonly #conns = new Set<SockConn>();
  /** Subsystems using this address. */
  refs = 0;
  port = 0;

  constructor(owner: ListenerOwner, traddr: string, trsvcid: number, o: ListenOptions = {}) {
    this.#owner = owner;
    this.#traddr = traddr;
    this.#trsvcid = trsvcid;
    this.#reusePort = o.reusePort ?? false;
    this.#exclusive = o.exclusive ?? false;
    this.#run = o.run ?? direct;
    this.#host = o.sockHost ?? null;
    this.#server = net.createServer({ noDelay: true, pauseOnConnect: true }, (s) =>
      this.#run(this.#acceptFn, s),
    );
  }

  readonly #acceptFn = (s: net.Socket): void => this.#accept(s);

  async start(): Promise<void> {
    if (!this.#host && this.#owner.options.sock_priority > 0)
      throw new NvmfError(
        'EINVAL',
        `sock_priority ${this.#owner.options.sock_priority} needs native sockets (node:net cannot set SO_PRIORITY)`,
      );
    if ((this.#reusePort || this.#host) && this.#exclusive) await this.#probe();
    if (this.#host) return this.#listenNative(this.#host);
    return this.#listen();
  }

  #listenNative(host: SockHost): void {
    try {
      const l = host.listen({
        host: this.#traddr,
        port: this.#trsvcid,
        onAccept: (c) => this.#acceptNative(c),
      });
      this.#hostFd = l.fd;
      this.port = l.port;
    } catch (e) {
      throw new NvmfError(
        'EBUSY',
        `cannot listen on ${this.#traddr}:${this.#trsvcid}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  #acceptNative(c: SockConn): void {
    const prio = this.#owner.options.sock_priority;
    if (prio > 0) c.priority = prio;
    const a = c.addresses;
    const qp = new TcpQpair(
      this.#owner,
      // Queued buffers leave in one sendmsg per flush and each is held until the kernel took it,
      // so READ data can go out from the request's own buffer.
      (bytes, release) => c.queue(bytes, release),
      () => c.close(),
      `${a.address}:${a.port}`,
      { traddr: this.#traddr, trsvcid: String(this.#trsvcid) },
      () => c.flush(),
    );
    const rx = c.rx;
    this.#conns.add(c);
    c.handler = {
      onData: (n) => qp.receive(rx, n),
      onClose: () => {
        this.#conns.delete(c);
        qp.peerClosed();
      },
    };
    this.#owner.qpairOpened(qp);
  }

  /** Fails (NativeError EADDRINUSE) while anyone else listens on the address. */
  #probe(): Promise<void> {
    return assertAddressFree(this.#traddr, this.#trsvcid, 'nvmf listener');
  }

  #listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) =>
        reject(
          new NvmfError('EBUSY', `cannot listen on ${this.#traddr}:${this.#trsvcid}: ${e.message}`, {
            cause: e,
          }),
        );
      this.#server.once('error', onError);
      let where: net.ListenOptions & { fd?: number } = { host: this.#traddr, port: this.#trsvcid };
      if (this.#reusePort) {
        try {
          where = { fd: reuseportListen(this.#traddr, this.#trsvcid).fd };
        } catch (e) {
          onError(e as Error);
          return;
        }
      }
      this.#server.listen(where, () => {
        this.#server.off('error', onError);
        this.port = (this.#server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    if (this.#host) {
      this.#host.unlisten(this.#hostFd);
      for (const c of this.#conns) c.close();
      return Promise.resolve();
    }
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(accepted: net.Socket): void {
    const local = { traddr: this.#traddr, trsvcid: String(this.#trsvcid) };
    let qp: TcpQpair | undefined;
    const rx = new Uint8Array(RX_BUFFER);
    const rxFn = (n: number): void => qp!.receive(rx, n);
    const sock = adopt(accepted, rx, (n) => {
      this.#run(rxFn, n);
      return true;
    });
    this.#sockets.add(sock);
    qp = new TcpQpair(
      this.#owner,
      (bytes, release) => {
        if (sock.destroyed) return release();
        sock.write(bytes, release);
      },
      () => sock.destroy(),
      `${sock.remoteAddress}:${sock.remotePort}`,
      local,
    );
    this.#owner.qpairOpened(qp);
    if (sock === accepted) {
      const dataFn = (b: Buffer): void => qp!.receive(b);
      sock.on('data', (b: Buffer) => this.#run(dataFn, b));
      sock.resume();
    }
    sock.on('close', () => {
      this.#sockets.delete(sock);
      this.#run(() => qp!.peerClosed(), undefined);
    });
    // A reset or a vanished host shows up as an error followed by close; close does the cleanup.
    sock.on('error', () => {});
  }
}
