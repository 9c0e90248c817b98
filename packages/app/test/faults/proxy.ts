// A TCP proxy that damages connections on purpose, for the fault campaign.
//
// What a userspace proxy can and cannot do, said plainly: it sees each direction as a byte stream
// in the chunks its read() returns, never as TCP segments. It can delay those chunks, cut a
// connection (FIN or RST, either side, at any byte), and re-chunk the stream into different write
// sizes. It cannot reorder or duplicate TCP segments as a network does: the kernel below it
// reassembles segments in order and drops duplicates, so that kind of reordering is invisible to
// both ends by design (and `tc netem`, which could do it under TCP, needs kernel modules this
// machine does not have). What the proxy calls "reorder" and "duplicate" swaps or repeats whole
// chunks of the byte stream at its read boundaries: the receiver sees a corrupted stream, as it
// would from a broken middlebox or a bug, and must fail that connection cleanly.
import net from 'node:net';

export type Fault =
  /** Forward unchanged. */
  | { kind: 'pass' }
  /** Hold every chunk `ms` before forwarding it (a slow or congested path). */
  | { kind: 'delay'; ms: number }
  /** Close both sides after `afterBytes` bytes went host-to-target (FIN, or RST when `reset`). */
  | { kind: 'cut'; afterBytes: number; reset?: boolean }
  /** Stop forwarding anything after `afterBytes` (a host that vanished: no FIN, no RST). */
  | { kind: 'blackhole'; afterBytes: number }
  /** Forward in pieces of at most `max` bytes (re-segmentation; the stream stays intact). */
  | { kind: 'rechunk'; max: number }
  /** Send chunk `at`'s second half before its first, host-to-target (stream corruption). */
  | { kind: 'reorder'; at: number }
  /** Send chunk `at` twice, host-to-target (stream corruption). */
  | { kind: 'duplicate'; at: number };

interface Pair {
  client: net.Socket;
  server: net.Socket;
  fault: Fault;
}

export class FaultProxy {
  readonly #server: net.Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<Pair>();
  /** The fault the next accepted connection gets. */
  next: Fault = { kind: 'pass' };
  /** Only the next connection gets `next`; later ones pass (a client that reconnects gets through). */
  once = false;
  /** Connections accepted, and faults that fired. */
  readonly stats = { accepted: 0, fired: 0 };

  private constructor(server: net.Server, target: { host: string; port: number }) {
    this.#server = server;
    this.#target = target;
  }

  /** Listen on an ephemeral loopback port, forwarding to `target`. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const server = net.createServer();
    const p = new FaultProxy(server, target);
    server.on('connection', (c) => p.#accept(c));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return p;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Open proxied connections (both sides still up). */
  get open(): number {
    return this.#pairs.size;
  }

  #accept(client: net.Socket): void {
    this.stats.accepted++;
    const server = net.connect(this.#target.port, this.#target.host);
    client.setNoDelay(true);
    server.setNoDelay(true);
    const pair: Pair = { client, server, fault: this.next };
    if (this.once) this.next = { kind: 'pass' };
    this.#pairs.add(pair);
    const end = () => {
      if (!this.#pairs.delete(pair)) return;
      client.destroy();
      server.destroy();
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    let up = 0;
    let chunkNo = 0;
    let dead = false;
    const fire = () => {
      this.stats.fired++;
    };
    const send = (to: net.Socket, b: Buffer, ms = 0) => {
      if (ms > 0) setTimeout(() => to.destroyed || to.write(b), ms);
      else if (!to.destroyed) to.write(b);
    };
    const f = pair.fault;
    client.on('data', (b: Buffer) => {
      if (dead) return;
      up += b.length;
      const n = chunkNo++;
      switch (f.kind) {
        case 'pass':
          send(server, b);
          return;
        case 'delay':
          send(server, b, f.ms);
          return;
        case 'rechunk':
          for (let o = 0; o < b.length; o += f.max) send(server, b.subarray(o, o + f.max));
          return;
        case 'cut':
          if (up < f.afterBytes) {
            send(server, b);
            return;
          }
          send(server, b.subarray(0, b.length - (up - f.afterBytes)));
          fire();
          dead = true;
          if (f.reset) {
            client.resetAndDestroy();
            server.resetAndDestroy();
          } else {
            client.end();
            server.end();
          }
          return;
        case 'blackhole':
          if (up <= f.afterBytes) send(server, b);
          else if (!dead) {
            fire();
            dead = true;
          }
          return;
        case 'reorder':
          // Split chunk `at` in two and send its second half first. (Holding it back for the next
          // chunk instead would stall whenever that chunk carried every outstanding command: the
          // host then has nothing more to send, and the "reorder" is only a timeout.)
          if (n === f.at && b.length >= 2) {
            fire();
            const h = b.length >> 1;
            send(server, b.subarray(h));
            send(server, b.subarray(0, h));
            return;
          }
          send(server, b);
          return;
        case 'duplicate':
          send(server, b);
          if (n === f.at) {
            fire();
            send(server, b);
          }
          return;
      }
    });
    server.on('data', (b: Buffer) => {
      if (dead) return;
      if (f.kind === 'delay') send(client, b, f.ms);
      else send(client, b);
    });
  }

  /** Cut every open connection at once (RST): hosts that all vanish together. */
  resetAll(): void {
    for (const p of this.#pairs) {
      p.client.resetAndDestroy();
      p.server.resetAndDestroy();
    }
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
