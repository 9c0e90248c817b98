/**
 * A thin `node:net` host for the protocol engine: one listening socket per portal of a portal
 * group, one `Connection` per accepted socket. A reactor-polled socket layer can replace it later
 * without touching the engine.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { PduSink } from './connection.js';
import { IscsiError } from './errors.js';
import type { IscsiTarget } from './target.js';

export interface ListeningPortal {
  host: string;
  port: number;
  portalGroupTag: number;
}

class SocketSink implements PduSink {
  readonly #sock: Socket;
  #corked = false;
  readonly #uncork = () => {
    this.#corked = false;
    this.#sock.uncork();
  };
  constructor(sock: Socket) {
    this.#sock = sock;
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
      process.nextTick(this.#uncork);
    }
    this.#sock.write(pdu, flushed);
  }
  close(): void {
    if (!this.#sock.destroyed) this.#sock.end();
  }
}

/** Serves every portal of the target's portal groups until `close`. */
export class IscsiServer {
  readonly target: IscsiTarget;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly portals: ListeningPortal[] = [];

  constructor(target: IscsiTarget) {
    this.target = target;
  }

  /** Listens on each portal of portal group `tag`; port "0" picks a free port (see `portals`). */
  async listen(tag: number): Promise<ListeningPortal[]> {
    const pg = this.target.portalGroups.get(tag);
    if (!pg) throw new IscsiError('ENOENT_GROUP', `portal group ${tag} not found`);
    const out: ListeningPortal[] = [];
    for (const portal of pg.portals) {
      const srv = createServer({ noDelay: true }, (sock) => this.#accept(sock, tag));
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(Number(portal.port), portal.host, () => resolve());
      });
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : Number(portal.port);
      // Later SendTargets answers must name the port really bound.
      portal.port = String(port);
      this.#servers.push(srv);
      const lp = { host: portal.host, port, portalGroupTag: tag };
      out.push(lp);
      this.portals.push(lp);
    }
    return out;
  }

  #accept(sock: Socket, tag: number): void {
    this.#sockets.add(sock);
    const conn = this.target.accept(new SocketSink(sock), {
      portalGroupTag: tag,
      localAddress: stripV4Mapped(sock.localAddress ?? ''),
      localPort: sock.localPort ?? 0,
      remoteAddress: stripV4Mapped(sock.remoteAddress ?? ''),
      remotePort: sock.remotePort ?? 0,
    });
    sock.on('data', (b) => conn.receive(b));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.#sockets.delete(sock);
      conn.closed();
    });
  }

  async close(): Promise<void> {
    this.target.close();
    for (const s of this.#sockets) s.destroy();
    await Promise.all(this.#servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.#servers.length = 0;
  }
}

function stripV4Mapped(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
