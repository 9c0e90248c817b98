// An NVMe/TCP host qpair: the protocol engine (engine.ts) on a connection. Two kinds of
// connection, one engine: node:net (bytes from the event loop; the admin queue, and plain use),
// or a member of a native socket group (`SockHost` of @storkit/reactor, SPDK's sock group): a
// reactor's, whose poller reads every member and sends what engines queued in one sendmsg each,
// or one its owner polls from `processCompletions` (a tool's spin loop). The qpair object outlives
// its connections: a controller reset reconnects it in place.

import { lookup } from 'node:dns/promises';
import net from 'node:net';

import { socketSetPriority } from '@storkit/native';
import { AdminOpcode, CONNECT_DATA_SIZE, ConnectDataOff, ConnectOff, FabricsType } from '@storkit/nvme-spec';
import { type SockConn, SockHost } from '@storkit/reactor';

import {
  type CommandSpec,
  type Completion,
  type HostQpair,
  HostQpairError,
  STATUS_ABORTED_SQ_DELETION,
} from '../host/qpair.js';
import type { IoQpairGrant } from '../host/transport.js';
import { ConnectError } from './connect-error.js';
import { type TcpEngineOptions, type TcpEngineStats, TcpHostEngine } from './engine.js';

export interface TcpQpairOptions extends TcpEngineOptions {
  traddr: string;
  trsvcid: string;
  /**
   * 'node' (default): node:net, bytes arrive from the event loop. 'native': a member of a native
   * socket group (`sockHost`, or one of the qpair's own that `processCompletions` polls).
   */
  socket?: 'node' | 'native';
  /** 'native': the socket group to join; a reactor's serves the connection from its poller. */
  sockHost?: SockHost;
  /** The connection's source: SPDK's hostaddr/hostsvcid (bound before connecting). */
  localAddress?: string;
  localPort?: number;
  /** SO_PRIORITY of the connection (SPDK's transport ID priority). */
  priority?: number;
}

/** Bytes one read may deliver into a node:net qpair's fixed receive buffer. */
const RX_BUFFER = 256 * 1024;
/** Fabrics Connect parameters, kept for reconnecting in place. */
interface ConnectParams {
  subnqn: string;
  hostnqn: string;
  hostid: Uint8Array;
  cntlid: number;
  kato: number;
}

export class TcpHostQpair implements HostQpair {
  readonly qid: number;
  readonly depth: number;
  /** On a native socket group rather than node:net. */
  readonly native: boolean;
  onTimeout: ((qp: HostQpair, cid: number, opcode: number) => void) | null = null;
  onFailure: ((qp: HostQpair, err: Error) => void) | null = null;
  #opts: TcpQpairOptions;
  readonly #engine: TcpHostEngine;
  #sock: net.Socket | null = null;
  #conn: SockConn | null = null;
  /** The socket group the connection joins (`sockHost`, else one of this qpair's own). */
  #host: SockHost | null;
  #ownHost = false;
  readonly #rxBuf: Uint8Array;
  #connectParams: ConnectParams | null = null;

  constructor(o: TcpQpairOptions) {
    this.#opts = o;
    this.qid = o.qid;
    this.depth = o.depth;
    this.native = o.socket === 'native';
    this.#host = o.sockHost ?? null;
    if (this.native && o.autoPoll && (this.#host === null || this.#host.polledByOwner))
      throw new RangeError('a qpair on an owner-polled socket group is polled by its owner: no autoPoll');
    this.#rxBuf = this.native ? new Uint8Array(0) : new Uint8Array(RX_BUFFER);
    this.#engine = new TcpHostEngine(o, {
      fatal: (e) => this.#fail(e),
      timedOut: (cid, opcode) => this.onTimeout?.(this, cid, opcode),
    });
  }

  get hdgst(): boolean {
    return this.#engine.hdgst;
  }

  get ddgst(): boolean {
    return this.#engine.ddgst;
  }

  get maxh2cdata(): number {
    return this.#engine.maxh2cdata;
  }

  get stats(): TcpEngineStats {
    return this.#engine.stats;
  }

  get connected(): boolean {
    return this.#engine.connected;
  }

  get failed(): Error | null {
    return this.#engine.failed;
  }

  get outstanding(): number {
    return this.#engine.outstanding;
  }

  get needsEventLoop(): boolean {
    return !this.native;
  }

  /** Open the TCP connection and exchange ICReq/ICResp. Fabrics Connect is the caller's next step. */
  async open(): Promise<void> {
    if (this.native) return this.#openNative();
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({
        host: this.#opts.traddr,
        port: Number(this.#opts.trsvcid),
        ...(this.#opts.localAddress === undefined ? {} : { localAddress: this.#opts.localAddress }),
        ...(this.#opts.localPort === undefined ? {} : { localPort: this.#opts.localPort }),
        noDelay: true,
        // Every read lands in this qpair's one receive buffer: no Buffer per read.
        onread: { buffer: this.#rxBuf, callback: this.#onRead },
      });
      s.once('connect', () => {
        s.off('error', reject);
        if (this.#opts.priority !== undefined) {
          // node:net has no SO_PRIORITY: set on its fd (a TCP handle's, on Linux), once connected
          // (the native path sets it before the connect).
          const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
          try {
            if (typeof fd !== 'number' || fd < 0) throw new Error('node:net socket without an fd');
            socketSetPriority(fd, this.#opts.priority);
          } catch (e) {
            s.destroy();
            reject(this.#connectError(`SO_PRIORITY ${this.#opts.priority}: ${(e as Error).message}`, e));
            return;
          }
        }
        resolve(s);
      });
      s.once('error', (e) => reject(this.#connectError(e.message, e)));
    });
    this.#sock = sock;
    sock.on('error', (e) => this.#fail(e));
    sock.on('close', () => {
      if (this.#sock === sock)
        this.#fail(new HostQpairError('ENOTCONN', `qpair ${this.qid}: connection closed`));
    });
    await this.#engine.begin((b, release) => {
      if (sock.destroyed) return release();
      sock.write(b, release);
    }, null);
  }

  readonly #onRead = (n: number, buf: Uint8Array): boolean => {
    this.#engine.receive(buf, n);
    return true;
  };

  #connectError(msg: string, cause?: unknown): HostQpairError {
    const where = `${this.#opts.traddr}:${this.#opts.trsvcid}`;
    return new HostQpairError('ECONNREFUSED', `cannot connect to ${where}: ${msg}`, { cause });
  }

  async #openNative(): Promise<void> {
    let ip = this.#opts.traddr;
    if (net.isIP(ip) === 0) {
      try {
        ip = (await lookup(ip)).address;
      } catch (e) {
        throw this.#connectError((e as Error).message, e);
      }
    }
    if (this.#host === null) {
      this.#host = SockHost.ownerPolled({ name: `nvme_qpair_${this.qid}` });
      this.#ownHost = true;
    }
    const host = this.#host;
    let conn: SockConn | null = null;
    const done = new Promise<number>((resolve, reject) => {
      try {
        conn = host.connect({
          host: ip,
          port: Number(this.#opts.trsvcid),
          localAddress: this.#opts.localAddress,
          localPort: this.#opts.localPort,
          priority: this.#opts.priority,
          handler: {
            onConnect: resolve,
            onData: (n) => this.#engine.receive(conn!.rx, n),
            onClose: () => this.#connectionLost(conn!),
          },
        });
      } catch (e) {
        reject(this.#connectError((e as Error).message, e));
      }
    });
    const rc = await this.#driveUntil(done);
    if (rc !== 0) throw this.#connectError(rc === -111 ? 'ECONNREFUSED' : `errno ${-rc}`);
    const c = conn!;
    this.#conn = c;
    const ic = this.#engine.begin(
      (b, release) => c.queue(b, release),
      () => {
        c.flush();
        if (c.txPending > 0) this.#engine.stats.txBlocked++;
      },
    );
    try {
      await this.#driveUntil(ic);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  #connectionLost(c: SockConn): void {
    if (this.#conn !== c) return;
    this.#fail(new HostQpairError('ENOTCONN', `qpair ${this.qid}: connection closed`));
  }

  // Keep an owner-polled socket group moving while a promise (connect, ICResp, Fabrics Connect) is
  // pending: those answers arrive only when someone polls, and the owner polls only once connected.
  #driveUntil<T>(p: Promise<T>): Promise<T> {
    const host = this.#host;
    if (host === null || !host.polledByOwner) return p;
    let settled = false;
    const loop = (): void => {
      if (settled) return;
      // Completions of an autoPoll phase (Connect) run from the engine's microtask.
      host.poll();
      setImmediate(loop);
    };
    setImmediate(loop);
    return p.finally(() => {
      settled = true;
    });
  }

  /** Fabrics Connect; resolves to the controller ID. */
  async connect(
    subnqn: string,
    hostnqn: string,
    hostid: Uint8Array,
    cntlid: number,
    kato: number,
  ): Promise<number> {
    this.#connectParams = { subnqn, hostnqn, hostid, cntlid, kato };
    const data = new Uint8Array(CONNECT_DATA_SIZE);
    data.set(hostid.subarray(0, 16), ConnectDataOff.hostid);
    new DataView(data.buffer).setUint16(ConnectDataOff.cntlid, cntlid, true);
    for (let i = 0; i < subnqn.length && i < 255; i++) data[ConnectDataOff.subnqn + i] = subnqn.charCodeAt(i);
    for (let i = 0; i < hostnqn.length && i < 255; i++)
      data[ConnectDataOff.hostnqn + i] = hostnqn.charCodeAt(i);
    this.#engine.autoPoll = true;
    const p = new Promise<number>((resolve, reject) => {
      const ok = this.#engine.submit(
        {
          opcode: AdminOpcode.Fabrics,
          fctype: FabricsType.Connect,
          buf: data,
          dir: 1,
          beforeConnect: true,
          inCapsuleLimit: this.qid === 0 ? 8192 : (this.#opts.inCapsuleData ?? 0),
          fill: (dv, s) => {
            dv.setUint16(s + ConnectOff.recfmt, 0, true);
            dv.setUint16(s + ConnectOff.qid, this.qid, true);
            dv.setUint16(s + ConnectOff.sqsize, this.depth - 1, true);
            dv.setUint32(s + ConnectOff.kato, kato, true);
          },
        },
        (_c, status, dw0) => {
          if (status === STATUS_ABORTED_SQ_DELETION && this.failed) reject(this.failed);
          else if (status !== 0) reject(new ConnectError(status, dw0));
          else resolve(dw0 & 0xffff);
        },
        undefined,
      );
      if (!ok) reject(new HostQpairError('ENOTCONN', 'qpair not open'));
    });
    try {
      return await this.#driveUntil(p);
    } finally {
      this.#engine.autoPoll = false;
    }
  }

  async reconnect(grant: IoQpairGrant): Promise<void> {
    const g = grant as TcpQpairGrant;
    const cp = this.#connectParams;
    if (this.qid === 0 || cp === null) throw new HostQpairError('ENOTCONN', 'not an I/O qpair');
    if (g.qid !== this.qid || g.depth !== this.depth)
      throw new RangeError(`grant for qpair ${g.qid} (depth ${g.depth}) does not fit qpair ${this.qid}`);
    this.close();
    await this.open();
    await this.connect(cp.subnqn, cp.hostnqn, cp.hostid, g.cntlid, cp.kato);
  }

  async disconnect(): Promise<void> {
    let done = false;
    if (
      this.connected &&
      this.submit(
        { opcode: AdminOpcode.Fabrics, fctype: FabricsType.Disconnect },
        () => (done = true),
        undefined,
      )
    ) {
      const until = Date.now() + 1000;
      while (!done && this.connected && Date.now() < until) {
        await new Promise((r) => setImmediate(r));
        this.processCompletions();
      }
    }
    this.close();
  }

  /** Close the connection; outstanding commands complete with ABORTED_SQ_DELETION. */
  close(): void {
    this.#fail(new HostQpairError('ENOTCONN', `qpair ${this.qid} closed`), false);
    if (this.#ownHost) {
      this.#host?.close();
      this.#host = null;
      this.#ownHost = false;
    }
  }

  #fail(e: Error, report = true): void {
    const wasOpen = this.#sock !== null || this.#conn !== null;
    // Last words (an H2CTermReq) go out if the transport takes them now; the rest is dropped.
    this.#engine.fail(e, wasOpen);
    if (this.#conn !== null) {
      const c = this.#conn;
      this.#conn = null;
      c.close();
    }
    if (this.#sock !== null) {
      const s = this.#sock;
      this.#sock = null;
      s.end();
      s.destroySoon();
    }
    if (report && wasOpen) this.onFailure?.(this, e);
  }

  // ---- I/O: the engine's ----

  read<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.read(nsid, lba, nlb, buf, cb, ctx);
  }

  write<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.write(nsid, lba, nlb, buf, cb, ctx);
  }

  compare<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.compare(nsid, lba, nlb, buf, cb, ctx);
  }

  writeZeroes<C>(nsid: number, lba: number, nlb: number, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.writeZeroes(nsid, lba, nlb, cb, ctx);
  }

  flush<C>(nsid: number, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.flushNs(nsid, cb, ctx);
  }

  deallocate<C>(
    nsid: number,
    ranges: readonly (readonly [number, number])[],
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    return this.#engine.deallocate(nsid, ranges, cb, ctx);
  }

  compareAndWrite<C>(
    nsid: number,
    lba: number,
    nlb: number,
    expect: Uint8Array,
    data: Uint8Array,
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    return this.#engine.compareAndWrite(nsid, lba, nlb, expect, data, cb, ctx);
  }

  submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean {
    return this.#engine.submit(c, cb, ctx);
  }

  cidOf(ctx: unknown): number {
    return this.#engine.cidOf(ctx);
  }

  /** Run up to `max` completion callbacks (0 = all queued); on an owner-polled group, read it first. */
  processCompletions(max = 0): number {
    if (this.#conn !== null && this.#host?.polledByOwner) this.#host.poll();
    return this.#engine.processCompletions(max);
  }
}

/** A TCP I/O qpair's grant: where to connect and what to say in Fabrics Connect. */
export interface TcpQpairGrant extends IoQpairGrant {
  trtype: 'TCP';
  traddr: string;
  trsvcid: string;
  /** The controller's source address/port and SO_PRIORITY, for every I/O connection too. */
  localAddress?: string;
  localPort?: number;
  priority?: number;
  subnqn: string;
  hostnqn: string;
  /** 16 bytes as hex. */
  hostid: string;
  cntlid: number;
  hdgst: boolean;
  ddgst: boolean;
  inCapsuleData: number;
}
