// A TCP proxy that damages connections on purpose, for the fault campaign.
//
// What a userspace proxy can and cannot do, said plainly: it sees each direction as a byte stream
// in the chunks its read() returns, never as TCP segments. It can delay those chunks, cut a
// connection (FIN or RST, either side, at any byte), and re-chunk the stream into different write
// sizes. It cannot reorder or duplicate TCP segments as a network does: the kernel below it
// reassembles segments in order and drops duplicates, so that kind of reordering is invisible to
// both ends by design (and `tc netem`, which could do it under TCP, needs kernel modules this
// machine does not have). What the proxy calls "reorder" and "duplicate" damages the byte stream
// itself, as a broken middlebox or a bug would, and the receiver must fail that connection.
//
// Where it damages it matters. A host writes whole NVMe/TCP PDUs, so a read() chunk is usually
// whole PDUs: swapping or repeating whole PDUs gives a stream of valid PDUs with valid digests,
// i.e. commands replayed or reordered. Nothing can detect that (digests protect a PDU, not the
// sequence), and a replayed command's second answer completes whatever command reuses its CID
// next: a read acknowledged before any of its data came. That was the "8 corrupt reads" of the
// first runs (docs/performance.md). So both kinds cut the stream inside a PDU (the proxy follows
// the NVMe/TCP framing, common header PLEN): with header and data digests on, the target must see
// a bad digest or a malformed header and drop the connection, never acknowledge wrong data.
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
  /**
   * Split chunk `at` (or the first later one that allows it) at a byte inside a PDU and send its
   * second part before its first, host-to-target (NVMe/TCP stream corruption).
   */
  | { kind: 'reorder'; at: number }
  /**
   * Send chunk `at` (or the first later one that allows it), then its bytes again from a byte
   * inside a PDU to its end, host-to-target (NVMe/TCP stream corruption).
   */
  | { kind: 'duplicate'; at: number };

/** Where the PDUs of an NVMe/TCP byte stream start (common header: type, flags, hlen, pdo, plen). */
export class PduFramer {
  /** Stream offset of the next byte fed, and of the next PDU's first byte. */
  #pos = 0;
  #next = 0;
  readonly #hdr = Buffer.alloc(8);
  #have = 0;

  /** Feed the next chunk of the stream; the offsets in it where a PDU starts. */
  feed(b: Buffer): number[] {
    const starts: number[] = [];
    let i = 0;
    while (i < b.length) {
      if (this.#pos + i < this.#next) {
        i = Math.min(b.length, this.#next - this.#pos);
        continue;
      }
      if (this.#have === 0) starts.push(i);
      const take = Math.min(8 - this.#have, b.length - i);
      b.copy(this.#hdr, this.#have, i, i + take);
      this.#have += take;
      i += take;
      if (this.#have === 8) {
        this.#next += Math.max(8, this.#hdr.readUInt32LE(4));
        this.#have = 0;
      }
    }
    this.#pos += b.length;
    return starts;
  }
}

/** A byte of `b` (1..length-1) that is not the first byte of a PDU, near the middle; -1 if none. */
export function insidePdu(b: Buffer, starts: number[]): number {
  const mid = b.length >> 1;
  for (let d = 0; d < b.length; d++)
    for (const p of [mid + d, mid - d]) if (p >= 1 && p < b.length && !starts.includes(p)) return p;
  return -1;
}

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
  /** Connections accepted, faults that fired, bytes host-to-target. */
  readonly stats = { accepted: 0, fired: 0, bytesUp: 0 };

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
    const framer = new PduFramer();
    let corrupted = false;
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
      this.stats.bytesUp += b.length;
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
        case 'duplicate': {
          // Split inside a PDU, never between two (see the top of this file). The chunk is cut in
          // place rather than held back for the next one: that one may never come when this
          // chunk carried every outstanding command, and the fault would only be a timeout.
          const starts = framer.feed(b);
          const p = n >= f.at && !corrupted ? insidePdu(b, starts) : -1;
          if (p < 0) {
            send(server, b);
            return;
          }
          fire();
          corrupted = true;
          if (f.kind === 'reorder') {
            send(server, b.subarray(p));
            send(server, b.subarray(0, p));
          } else {
            send(server, b);
            send(server, b.subarray(p));
          }
          return;
        }
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
