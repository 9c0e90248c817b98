/**
 * A thin socket host for the protocol engine: one listening socket per portal of a portal group,
 * one `Connection` per accepted socket. Sockets come from `node:net` on the calling thread, or from
 * a reactor's native socket group (`ServeOptions.sockHost`, @storkit/reactor's SockHost), polled
 * by the reactor itself; the engine is the same.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { assertAddressFree, reuseportListen } from '@storkit/native';
import type { Connection, PduSink } from './connection.js';
import { IscsiError } from './errors.js';
import type { IscsiTarget } from './target.js';

export interface ListeningPortal {
  host: string;
  port: number;
  portalGroupTag: number;
}

/** Schedules a corked socket's flush: `process.nextTick` by default, a reactor poller on reactors. */
export type FlushScheduler = (flush: () => void) => void;

const nextTick: FlushScheduler = (f) => process.nextTick(f);

class SocketSink implements PduSink {
  readonly #sock: Socket;
  readonly #schedule: FlushScheduler;
  #corked = false;
  readonly #uncork = () => {
    this.#corked = false;
    this.#sock.uncork();
  };
  constructor(sock: Socket, schedule: FlushScheduler) {
    this.#sock = sock;
    this.#schedule = schedule;
  }
  write(pdu: Uint8Array, flushed: () => void): void {
    if (this.#sock.destroyed) {
      flushed();
      return;
    }
    // PDUs produced in one tick leave in one writev.
    if (!this.#corked) {
      this.#corked = true;
      this.#sock.cork();
      this.#schedule(this.#uncork);
    }
    this.#sock.write(pdu, flushed);
  }
  close(): void {
    if (!this.#sock.destroyed) this.#sock.end();
  }
}

/** A connection of a native socket host (what @storkit/reactor's SockConn offers the server). */
export interface HostedSocket {
  /** Receive buffer: `onData(n)` means its first n bytes came in (valid only during the call). */
  readonly rx: Uint8Array;
  readonly addresses: { address: string; port: number; localAddress: string; localPort: number };
  handler: { onData(n: number): void; onClose(): void } | null;
  /** Queue bytes for the next `flush`; `release` once sent. */
  queue(bytes: Uint8Array, release: () => void): void;
  flush(): void;
  /** Close after what is queued has been sent. */
  close(): void;
}

/** A native socket host (@storkit/reactor's SockHost), polled by the reactor serving it. */
export interface SocketHost {
  listen(o: { host: string; port: number; onAccept(c: HostedSocket): void }): { fd: number; port: number };
  unlisten(fd: number): void;
  /** Give a connection up without closing it (nothing queued to send); returns its fd. */
  detach(c: HostedSocket): number;
  /** Take a connected socket another host gave up; `onAccept` sets its handler. */
  adopt(fd: number, onAccept: (c: HostedSocket) => void): HostedSocket;
}

/** A connection that can still move to another reactor: what it received so far. */
interface Movable {
  readonly c: HostedSocket;
  readonly tag: number;
  readonly bytes: Uint8Array[];
  size: number;
}

/** A login's first request is a few KiB; past this a connection stays where it is. */
const MOVABLE_BYTES = 64 * 1024;

/** A connection `IscsiServer.detach` gave up: for another reactor's `IscsiServer.adopt`. */
export interface MovedConnection {
  fd: number;
  portalGroupTag: number;
  /** What the connection had received (its first login request), to replay on the adopter. */
  bytes: Uint8Array;
}

/** PDUs written in one go leave in one sendmsg, at the scheduled flush. */
class HostedSink implements PduSink {
  readonly #c: HostedSocket;
  readonly #schedule: FlushScheduler;
  #scheduled = false;
  readonly #flush = () => {
    this.#scheduled = false;
    this.#c.flush();
  };
  constructor(c: HostedSocket, schedule: FlushScheduler) {
    this.#c = c;
    this.#schedule = schedule;
  }
  write(pdu: Uint8Array, flushed: () => void): void {
    this.#c.queue(pdu, flushed);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(this.#flush);
    }
  }
  close(): void {
    this.#c.close();
  }
}

/** How a server is hosted: on the calling thread (default), or on one reactor worker of several. */
export interface ServeOptions {
  /**
   * Listen through native SO_REUSEPORT sockets, so every reactor worker listens on the same portal
   * and the kernel spreads new connections across them.
   */
  reusePort?: boolean;
  /**
   * With reusePort: first refuse a portal another process listens on (`assertAddressFree`), since
   * it could otherwise join that process's SO_REUSEPORT group. Set on the first reactor only (the
   * others join its group).
   */
  exclusive?: boolean;
  /**
   * Runs each socket callback (accept, bytes in, close): a reactor makes its thread current around
   * `fn(arg)` so the engine submits I/O as that thread, then wakes the reactor.
   */
  run?: <A>(fn: (arg: A) => void, arg: A) => void;
  /**
   * When PDUs written in one go leave as one writev. Default: `process.nextTick`. A reactor flushes
   * from a poller that runs after its completion pollers, so responses do not wait for the end of
   * the reactor's slice.
   */
  flush?: FlushScheduler;
  /**
   * Serve portals from this native socket host instead of node:net (its listeners are SO_REUSEPORT;
   * `run` is then unused: the host calls in as its reactor thread).
   */
  sockHost?: SocketHost;
}

const direct = <A>(fn: (arg: A) => void, arg: A): void => fn(arg);

/** Serves every portal of the target's portal groups until `close`. */
export class IscsiServer {
  readonly target: IscsiTarget;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly portals: ListeningPortal[] = [];
  /** Connections accepted so far (every portal, private ones included). */
  accepted = 0;
  readonly #byTag = new Map<number, Server[]>();
  readonly #reusePort: boolean;
  readonly #exclusive: boolean;
  readonly #run: <A>(fn: (arg: A) => void, arg: A) => void;
  readonly #flush: FlushScheduler;
  readonly #host: SocketHost | null;
  /** Native listeners by portal group tag. */
  readonly #hostFds = new Map<number, number[]>();
  readonly #hosted = new Set<HostedSocket>();
  /** Hosted connections whose login has not named its target yet (they can still move). */
  readonly #movable = new Map<Connection, Movable>();
  /** Connections given up to another reactor (`detach`), and taken from one (`adopt`). */
  movedOut = 0;
  movedIn = 0;

  constructor(target: IscsiTarget, o: ServeOptions = {}) {
    this.target = target;
    this.#reusePort = o.reusePort ?? false;
    this.#exclusive = o.exclusive ?? false;
    this.#run = o.run ?? direct;
    this.#flush = o.flush ?? nextTick;
    this.#host = o.sockHost ?? null;
  }

  /** Listens on each portal of portal group `tag`; port "0" picks a free port (see `portals`). */
  async listen(tag: number): Promise<ListeningPortal[]> {
    const pg = this.target.portalGroups.get(tag);
    if (!pg) throw new IscsiError('ENOENT', `portal group ${tag} not found`);
    const out: ListeningPortal[] = [];
    for (const portal of pg.portals) {
      if (this.#exclusive && (this.#reusePort || this.#host))
        await assertAddressFree(portal.host, Number(portal.port), 'iSCSI portal');
      const port = await this.#serve(tag, portal.host, Number(portal.port), this.#reusePort);
      // Later SendTargets answers must name the port really bound.
      portal.port = String(port);
      const lp = { host: portal.host, port, portalGroupTag: tag };
      out.push(lp);
      this.portals.push(lp);
    }
    return out;
  }

  /**
   * Listens on a private port (picked by the kernel) for each portal of group `tag`, on this
   * worker only: where login redirects send the sessions this worker owns. Not advertised by
   * SendTargets. Returns the ports in portal order.
   */
  async listenPrivate(tag: number): Promise<number[]> {
    const pg = this.target.portalGroups.get(tag);
    if (!pg) throw new IscsiError('ENOENT', `portal group ${tag} not found`);
    const out: number[] = [];
    for (const portal of pg.portals) out.push(await this.#serve(tag, portal.host, 0, false));
    return out;
  }

  async #serve(tag: number, host: string, port: number, reusePort: boolean): Promise<number> {
    if (this.#host) return this.#serveHosted(this.#host, tag, host, port);
    const srv = createServer({ noDelay: true }, (sock) => this.#run(this.#acceptFn, { sock, tag }));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      if (reusePort) {
        const l = reuseportListen(host, port);
        srv.listen({ fd: l.fd }, () => resolve());
      } else srv.listen(port, host, () => resolve());
    });
    const addr = srv.address();
    this.#servers.push(srv);
    let list = this.#byTag.get(tag);
    if (!list) this.#byTag.set(tag, (list = []));
    list.push(srv);
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  #serveHosted(sh: SocketHost, tag: number, host: string, port: number): number {
    const l = sh.listen({
      host,
      port,
      onAccept: (c) => {
        this.accepted++;
        this.#acceptHosted(c, tag);
      },
    });
    let fds = this.#hostFds.get(tag);
    if (!fds) this.#hostFds.set(tag, (fds = []));
    fds.push(l.fd);
    return l.port;
  }

  #acceptHosted(c: HostedSocket, tag: number): Connection {
    this.#hosted.add(c);
    const a = c.addresses;
    const conn = this.target.accept(new HostedSink(c, this.#flush), {
      portalGroupTag: tag,
      localAddress: stripV4Mapped(a.localAddress),
      localPort: a.localPort,
      remoteAddress: stripV4Mapped(a.address),
      remotePort: a.port,
    });
    const rx = c.rx;
    // Until the login names its target, what arrives is kept: the connection may move to the
    // reactor serving that target, which replays it (`detach`, `adopt`).
    let mv: Movable | null = { c, tag, bytes: [], size: 0 };
    this.#movable.set(conn, mv);
    const stopMoving = () => {
      this.#movable.delete(conn);
      mv = null;
    };
    c.handler = {
      onData: (n) => {
        if (mv === null) {
          conn.receive(rx.subarray(0, n));
          return;
        }
        mv.bytes.push(rx.slice(0, n));
        mv.size += n;
        if (mv.size > MOVABLE_BYTES) stopMoving();
        conn.receive(rx.subarray(0, n));
        if (conn.identified) stopMoving();
      },
      onClose: () => {
        this.#hosted.delete(c);
        stopMoving();
        conn.closed();
      },
    };
    return conn;
  }

  /**
   * Gives up `conn`'s socket without closing it, for another reactor to `adopt`: allowed while its
   * first login request is being handled (nothing answered yet) on a native socket host. Null when
   * it cannot move (node:net sockets, or it got further): then it stays here.
   */
  detach(conn: Connection): MovedConnection | null {
    const mv = this.#movable.get(conn);
    if (mv === undefined || this.#host === null) return null;
    let fd: number;
    try {
      fd = this.#host.detach(mv.c);
    } catch {
      return null; // something is queued to send: it stays
    }
    this.#movable.delete(conn);
    this.#hosted.delete(mv.c);
    this.movedOut++;
    return { fd, portalGroupTag: mv.tag, bytes: Buffer.concat(mv.bytes) };
  }

  /** Serves a connection another reactor's server gave up (`detach`): replays what it had received. */
  adopt(m: MovedConnection): void {
    if (this.#host === null)
      throw new IscsiError('EINVAL', 'adopting a connection needs a native socket host');
    let conn: Connection | null = null;
    this.#host.adopt(m.fd, (c) => {
      conn = this.#acceptHosted(c, m.portalGroupTag);
    });
    this.movedIn++;
    (conn as Connection | null)?.receive(m.bytes);
  }

  /** Stops listening on portal group `tag` (connections already made stay). */
  async unlisten(tag: number): Promise<void> {
    for (const fd of this.#hostFds.get(tag) ?? []) this.#host?.unlisten(fd);
    this.#hostFds.delete(tag);
    const list = this.#byTag.get(tag) ?? [];
    this.#byTag.delete(tag);
    for (let i = this.portals.length - 1; i >= 0; i--)
      if (this.portals[i].portalGroupTag === tag) this.portals.splice(i, 1);
    await Promise.all(
      list.map((s) => {
        this.#servers.splice(this.#servers.indexOf(s), 1);
        return new Promise<void>((r) => s.close(() => r()));
      }),
    );
  }

  readonly #acceptFn = (a: { sock: Socket; tag: number }): void => this.#accept(a.sock, a.tag);

  #accept(sock: Socket, tag: number): void {
    this.accepted++;
    this.#sockets.add(sock);
    const conn = this.target.accept(new SocketSink(sock, this.#flush), {
      portalGroupTag: tag,
      localAddress: stripV4Mapped(sock.localAddress ?? ''),
      localPort: sock.localPort ?? 0,
      remoteAddress: stripV4Mapped(sock.remoteAddress ?? ''),
      remotePort: sock.remotePort ?? 0,
    });
    const run = this.#run;
    const receive = (b: Buffer) => conn.receive(b);
    const closed = () => conn.closed();
    sock.on('data', (b) => run(receive, b));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.#sockets.delete(sock);
      run(closed, undefined);
    });
  }

  async close(): Promise<void> {
    this.target.close();
    for (const s of this.#sockets) s.destroy();
    for (const c of this.#hosted) c.close();
    for (const tag of [...this.#hostFds.keys()]) await this.unlisten(tag);
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.#servers.length = 0;
  }
}

function stripV4Mapped(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
