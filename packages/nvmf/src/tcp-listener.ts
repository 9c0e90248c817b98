// node:net host for TcpQpair engines: accepts connections on one address and feeds each socket's
// bytes to its own qpair. Runs on the calling thread (the main thread until the reactor's native
// socket layer takes over; the engine does not change when it does).

import net from 'node:net';

import { NvmfError } from './errors.js';
import { type QpairOwner, TcpQpair } from './tcp-qpair.js';

export interface ListenerOwner extends QpairOwner {
  qpairOpened(qp: TcpQpair): void;
}

export class TcpListener {
  readonly #owner: ListenerOwner;
  readonly #traddr: string;
  readonly #trsvcid: number;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  /** Subsystems using this address. */
  refs = 0;
  port = 0;

  constructor(owner: ListenerOwner, traddr: string, trsvcid: number) {
    this.#owner = owner;
    this.#traddr = traddr;
    this.#trsvcid = trsvcid;
    this.#server = net.createServer({ noDelay: true }, (s) => this.#accept(s));
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) =>
        reject(
          new NvmfError(
            'ERR_NVMF_LISTEN',
            `cannot listen on ${this.#traddr}:${this.#trsvcid}: ${e.message}`,
            { cause: e },
          ),
        );
      this.#server.once('error', onError);
      this.#server.listen({ host: this.#traddr, port: this.#trsvcid }, () => {
        this.#server.off('error', onError);
        this.port = (this.#server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accept(sock: net.Socket): void {
    this.#sockets.add(sock);
    const local = { traddr: this.#traddr, trsvcid: String(this.#trsvcid) };
    const qp = new TcpQpair(
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
    sock.on('data', (b: Buffer) => qp.receive(b));
    sock.on('close', () => {
      this.#sockets.delete(sock);
      qp.peerClosed();
    });
    // A reset or a vanished host shows up as an error followed by close; close does the cleanup.
    sock.on('error', () => {});
  }
}
