// The host side of one NVMe/TCP queue pair. Commands are encoded straight into the send batch from
// preallocated request slots (CID = slot index); responses are parsed as they arrive and queued,
// and `processCompletions(max)` runs their callbacks, so the owner decides when completions happen
// (SPDK's polled model). Read data lands directly in the caller's buffer.
//
// Contract of the submit methods: they return false (and never call back) when every slot is in
// use (retry after processCompletions); otherwise the callback runs exactly once, from a later
// processCompletions (or with an abort status when the qpair fails).

import { lookup } from 'node:dns/promises';
import net from 'node:net';

import {
  crc32c,
  crc32cRange,
  SOCK_EAGAIN,
  SOCK_ECONNREFUSED,
  SOCK_ERR,
  SOCK_EVENT_WORDS,
  SOCK_HUP,
  SOCK_OUT,
  SockGroup,
} from '@storkit/native';

import {
  AdminOpcode,
  CH_SIZE,
  CONNECT_DATA_SIZE,
  CommandSpecificStatus,
  ConnectDataOff,
  ConnectOff,
  DataOff,
  DIGEST_SIZE,
  encodeDataHeader,
  encodeIcReq,
  encodeTermReq,
  Fes,
  Fuse,
  GenericStatus,
  HLEN,
  IcDigest,
  IcOff,
  IoOpcode,
  makeStatus,
  NvmeTcpProtocolError,
  PduFlag,
  PduType,
  PSDT_SGL,
  putHeaderDigest,
  Sct,
  SglId,
  SqeOff,
  sqeInit,
  sqeSetSgl,
  TERM_REQ_MAX_DATA,
  TermOff,
  writeCh,
  writeU64,
} from '@storkit/nvme-spec';
import { copyBytes, type PduHandler, PduReader, TxQueue } from '@storkit/nvme-spec/tcp';

/** Completion callback: status is the 15-bit CQE status field (0 = success). */
export type Completion<C> = (ctx: C, status: number, dw0: number, dw1: number) => void;

export interface HostQpairOptions {
  traddr: string;
  trsvcid: string;
  qid: number;
  /** Entries (1-based); CIDs 0..depth-1. */
  depth: number;
  hdgst?: boolean;
  ddgst?: boolean;
  /** Largest transfer a command may carry. */
  maxTransfer?: number;
  /** In-capsule data this queue may use for writes (0 = always R2T). */
  inCapsuleData?: number;
  /** Per-command timeout in ms (0 = none); the owner's onTimeout decides what to do. */
  timeoutMs?: number;
  /** Run completions as soon as they arrive (admin queue) instead of waiting for processCompletions. */
  autoPoll?: boolean;
  /** Host PDU data alignment asked of the target: C2HData data starts at a multiple of (hpda+1)*4. */
  hpda?: number;
  /**
   * 'node' (default): node:net, bytes arrive from the event loop. 'native': the qpair's own
   * `SockGroup` socket, read and written only from `processCompletions` (and while opening and
   * connecting); cannot be combined with autoPoll, since nothing would poll it.
   */
  socket?: QpairSocket;
}

/** How a qpair reaches its target: node:net, or a native polled socket (`SockGroup`). */
export type QpairSocket = 'node' | 'native';

export class HostQpairError extends Error {
  override name = 'HostQpairError';
  readonly code: 'ERR_NVME_QPAIR_CONNECT' | 'ERR_NVME_QPAIR_CLOSED' | 'ERR_NVME_QPAIR_PROTOCOL';
  constructor(code: HostQpairError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Status a command gets when its qpair goes away under it (SPDK: aborted - SQ deletion). */
export const STATUS_ABORTED_SQ_DELETION = makeStatus(Sct.Generic, GenericStatus.AbortedSqDeletion);
/** Status of a command whose data digest failed on receipt. */
export const STATUS_TRANSPORT_ERROR = makeStatus(Sct.Generic, GenericStatus.TransientTransportError);

const ST_FREE = 0;
const ST_INFLIGHT = 1;
const ST_DONE = 2;

class HostRequest {
  readonly cid: number;
  state = ST_FREE;
  cb: Completion<unknown> | null = null;
  ctx: unknown = undefined;
  buf: Uint8Array | null = null;
  len = 0;
  /** 1: host to controller, 2: controller to host. */
  dir = 0;
  c2hRecv = 0;
  status = 0;
  dw0 = 0;
  dw1 = 0;
  deadline = 0;
  opcode = 0;
  timeoutReported = false;
  digestError = false;
  constructor(cid: number) {
    this.cid = cid;
  }
}

export class HostQpair implements PduHandler {
  readonly qid: number;
  readonly depth: number;
  hdgst: boolean;
  ddgst: boolean;
  maxh2cdata = 0;
  /** Called once per timed out command (set by the controller: abort, then reset). */
  onTimeout: ((qp: HostQpair, cid: number, opcode: number) => void) | null = null;
  /** Called when the connection fails or closes unexpectedly. */
  onFailure: ((qp: HostQpair, err: Error) => void) | null = null;
  /** txBlocked: batches the kernel did not take whole at once (native socket; they waited). */
  readonly stats = { submitted: 0, completed: 0, r2ts: 0, bytesOut: 0, txBlocked: 0 };
  /** On a native socket (`socket: 'native'`). */
  readonly native: boolean;
  #opts: HostQpairOptions;
  #sock: net.Socket | null = null;
  // Native transport: the qpair's own group and its one connection (-1 when none).
  #group: SockGroup | null = null;
  #fd = -1;
  // Batches the kernel has not taken all of yet, in order: a ring that grows only when full.
  #pendBuf: (Uint8Array | null)[] = new Array(8).fill(null);
  #pendRel: ((() => void) | null)[] = new Array(8).fill(null);
  #pendHead = 0;
  #pendCount = 0;
  #pendOff = 0;
  #sendErr = 0;
  readonly #events = new Int32Array(4 * SOCK_EVENT_WORDS);
  #reader: PduReader;
  #tx: TxQueue;
  readonly #reqs: HostRequest[] = [];
  readonly #free: Int32Array;
  #nfree: number;
  readonly #done: Int32Array;
  #doneHead = 0;
  #doneTail = 0;
  #connected = false;
  #failed: Error | null = null;
  #icResolve: (() => void) | null = null;
  #icReject: ((e: Error) => void) | null = null;
  #rxReq: HostRequest | null = null;
  #rxType = 0;
  #rxFlags = 0;
  #rxBase = 0;
  #flushScheduled = false;
  readonly #flushFn = (): void => {
    this.#flushScheduled = false;
    this.#tx.flush();
  };
  #lastTimeoutScan = 0;
  #auto: boolean;
  #autoScheduled = false;
  readonly #autoFn = (): void => {
    this.#autoScheduled = false;
    this.processCompletions();
  };
  readonly #icd: number;

  constructor(o: HostQpairOptions) {
    this.#opts = o;
    this.qid = o.qid;
    this.depth = o.depth;
    this.hdgst = o.hdgst ?? false;
    this.ddgst = o.ddgst ?? false;
    this.#icd = o.inCapsuleData ?? 0;
    this.#auto = o.autoPoll ?? false;
    this.native = o.socket === 'native';
    if (this.native && this.#auto) throw new RangeError('a native qpair is polled by its owner: no autoPoll');
    this.#free = new Int32Array(o.depth);
    this.#done = new Int32Array(o.depth + 1);
    for (let i = 0; i < o.depth; i++) {
      this.#reqs.push(new HostRequest(i));
      this.#free[i] = o.depth - 1 - i;
    }
    this.#nfree = o.depth;
    this.#reader = this.#newReader();
    this.#tx = this.#newTx();
  }

  #newReader(): PduReader {
    return new PduReader(this, Math.max(this.#opts.maxTransfer ?? 131072, 8192) + 1024);
  }

  #newTx(): TxQueue {
    const size = Math.max(256 * 1024, 8192 + this.#icd + 256);
    if (this.native)
      return new TxQueue((b, release) => {
        this.stats.bytesOut += b.length;
        this.#nativeSend(b, release);
      }, size);
    return new TxQueue((b, release) => {
      this.stats.bytesOut += b.length;
      const s = this.#sock;
      if (!s || s.destroyed) return release();
      s.write(b, release);
    }, size);
  }

  // ---- native transport ----

  // Send a batch now if nothing is queued before it; what the kernel does not take waits, with
  // write interest on, for the next poll that finds the socket writable. A send error is only
  // recorded: failing here would re-enter the TxQueue that called.
  #nativeSend(b: Uint8Array, release: () => void): void {
    const g = this.#group;
    if (g === null || this.#fd < 0 || this.#sendErr !== 0) {
      release();
      return;
    }
    let off = 0;
    if (this.#pendCount === 0) {
      const n = g.send(this.#fd, b);
      if (n === b.length || (n < 0 && n !== SOCK_EAGAIN)) {
        if (n < 0) this.#sendErr = n;
        release();
        return;
      }
      if (n > 0) off = n;
      this.stats.txBlocked++;
      g.wantWrite(this.#fd, true);
    }
    if (this.#pendCount === this.#pendBuf.length) this.#growPending();
    const i = (this.#pendHead + this.#pendCount) % this.#pendBuf.length;
    this.#pendBuf[i] = b;
    this.#pendRel[i] = release;
    if (this.#pendCount++ === 0) this.#pendOff = off;
  }

  #growPending(): void {
    const cap = this.#pendBuf.length;
    const bufs: (Uint8Array | null)[] = new Array(cap * 2).fill(null);
    const rels: ((() => void) | null)[] = new Array(cap * 2).fill(null);
    for (let k = 0; k < this.#pendCount; k++) {
      bufs[k] = this.#pendBuf[(this.#pendHead + k) % cap];
      rels[k] = this.#pendRel[(this.#pendHead + k) % cap];
    }
    this.#pendBuf = bufs;
    this.#pendRel = rels;
    this.#pendHead = 0;
  }

  // Hand queued batches to the kernel until it refuses; each is released once all of it went.
  #drainPending(): void {
    const g = this.#group!;
    const cap = this.#pendBuf.length;
    while (this.#pendCount > 0) {
      const b = this.#pendBuf[this.#pendHead]!;
      const n = g.send(this.#fd, b, this.#pendOff, b.length - this.#pendOff);
      if (n < 0) {
        if (n !== SOCK_EAGAIN) this.#sendErr = n;
        return;
      }
      this.#pendOff += n;
      if (this.#pendOff < b.length) return;
      const rel = this.#pendRel[this.#pendHead]!;
      this.#pendBuf[this.#pendHead] = null;
      this.#pendRel[this.#pendHead] = null;
      this.#pendHead = (this.#pendHead + 1) % cap;
      this.#pendCount--;
      this.#pendOff = 0;
      rel();
    }
    g.wantWrite(this.#fd, false);
  }

  #releasePending(): void {
    const cap = this.#pendBuf.length;
    while (this.#pendCount > 0) {
      const rel = this.#pendRel[this.#pendHead]!;
      this.#pendBuf[this.#pendHead] = null;
      this.#pendRel[this.#pendHead] = null;
      this.#pendHead = (this.#pendHead + 1) % cap;
      this.#pendCount--;
      rel();
    }
    this.#pendOff = 0;
  }

  // Move bytes both ways on the native socket: queued sends when the kernel has room again, then
  // every byte waiting to be read (through the PDU reader). Detects the connection's end.
  #pump(): void {
    const g = this.#group;
    if (g === null || this.#fd < 0) return;
    if (this.#pendCount > 0) {
      // Only while blocked on a full send buffer: ask epoll whether it drained.
      const n = g.poll(this.#events);
      for (let i = 0; i < n; i++)
        if (this.#events[i * SOCK_EVENT_WORDS + 1] & (SOCK_OUT | SOCK_ERR | SOCK_HUP)) this.#drainPending();
    }
    const rx = this.#rxBuf;
    // A full buffer means there may be more: read again (bounded, so one poll cannot starve others).
    for (let k = 0; k < 4 && this.#fd >= 0; k++) {
      const n = g.recv(this.#fd, rx);
      if (n > 0) {
        this.#receive(rx, n);
        if (n < rx.length) break;
      } else {
        if (n !== SOCK_EAGAIN) this.#nativeLost(n);
        break;
      }
    }
    if (this.#sendErr !== 0 && this.#fd >= 0) this.#nativeLost(this.#sendErr);
  }

  #nativeLost(n: number): void {
    const why = n === 0 ? 'connection closed' : `connection failed (errno ${-n})`;
    this.#fail(new HostQpairError('ERR_NVME_QPAIR_CLOSED', `qpair ${this.qid}: ${why}`));
  }

  // Keep the native socket moving while a promise (ICResp, Fabrics Connect) is pending: those
  // answers arrive only when someone reads the socket, and the owner polls only once connected.
  #driveUntil<T>(p: Promise<T>): Promise<T> {
    if (!this.native) return p;
    let settled = false;
    const loop = (): void => {
      if (settled) return;
      // Completions of an autoPoll phase (Connect) run from #finish's microtask.
      this.#pump();
      setImmediate(loop);
    };
    setImmediate(loop);
    return p.finally(() => {
      settled = true;
    });
  }

  async #nativeConnect(): Promise<void> {
    const port = Number(this.#opts.trsvcid);
    const where = `${this.#opts.traddr}:${this.#opts.trsvcid}`;
    const err = (msg: string, cause?: unknown): HostQpairError =>
      new HostQpairError('ERR_NVME_QPAIR_CONNECT', `cannot connect to ${where}: ${msg}`, { cause });
    let host = this.#opts.traddr;
    if (net.isIP(host) === 0) {
      try {
        host = (await lookup(host)).address;
      } catch (e) {
        throw err((e as Error).message, e);
      }
    }
    const g = new SockGroup();
    let fd: number;
    try {
      fd = g.connect(host, port);
    } catch (e) {
      g.destroy();
      throw err((e as Error).message, e);
    }
    // Wait for the connect to finish: writable (or an error) in the group's epoll set.
    const rc = await new Promise<number>((resolve) => {
      const ev = this.#events;
      const t0 = performance.now();
      const check = (): void => {
        const n = g.poll(ev);
        for (let i = 0; i < n; i++)
          if (
            ev[i * SOCK_EVENT_WORDS] === fd &&
            ev[i * SOCK_EVENT_WORDS + 1] & (SOCK_OUT | SOCK_ERR | SOCK_HUP)
          ) {
            resolve(g.connectError(fd));
            return;
          }
        // A fast (loopback) connect is caught by spinning; a slow one polls once per millisecond.
        if (performance.now() - t0 < 5) setImmediate(check);
        else setTimeout(check, 1);
      };
      check();
    });
    if (rc !== 0) {
      g.destroy();
      throw err(rc === SOCK_ECONNREFUSED ? 'ECONNREFUSED' : `errno ${-rc}`);
    }
    g.wantWrite(fd, false);
    this.#group = g;
    this.#fd = fd;
    this.#sendErr = 0;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get failed(): Error | null {
    return this.#failed;
  }

  /** Commands submitted and not yet completed (by callback). */
  get outstanding(): number {
    return this.depth - this.#nfree;
  }

  /** Open the TCP connection and exchange ICReq/ICResp. Fabrics Connect is the caller's next step. */
  async open(): Promise<void> {
    this.#failed = null;
    this.#connected = false;
    this.#reader = this.#newReader();
    this.#tx = this.#newTx();
    if (this.native) return this.#openNative();
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({
        host: this.#opts.traddr,
        port: Number(this.#opts.trsvcid),
        noDelay: true,
        // Every read lands in this qpair's one receive buffer: no Buffer per read.
        onread: { buffer: this.#rxBuf, callback: this.#onRead },
      });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (e) =>
        reject(
          new HostQpairError(
            'ERR_NVME_QPAIR_CONNECT',
            `cannot connect to ${this.#opts.traddr}:${this.#opts.trsvcid}: ${e.message}`,
            { cause: e },
          ),
        ),
      );
    });
    this.#sock = sock;
    sock.on('error', (e) => this.#fail(e));
    sock.on('close', () =>
      this.#fail(new HostQpairError('ERR_NVME_QPAIR_CLOSED', `qpair ${this.qid}: connection closed`)),
    );
    const ic = new Promise<void>((resolve, reject) => {
      this.#icResolve = resolve;
      const t = setTimeout(
        () => reject(new HostQpairError('ERR_NVME_QPAIR_CONNECT', 'no ICResp within 5 s')),
        5000,
      );
      t.unref();
      sock.once('close', () =>
        reject(this.#failed ?? new HostQpairError('ERR_NVME_QPAIR_CLOSED', 'closed during ICReq')),
      );
    });
    this.#sendIcReq();
    await ic;
    this.#connected = true;
  }

  async #openNative(): Promise<void> {
    this.#closeNative();
    await this.#nativeConnect();
    const ic = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#icReject = null;
        reject(new HostQpairError('ERR_NVME_QPAIR_CONNECT', 'no ICResp within 5 s'));
      }, 5000);
      this.#icResolve = () => {
        clearTimeout(t);
        this.#icReject = null;
        resolve();
      };
      this.#icReject = (e) => {
        clearTimeout(t);
        reject(e);
      };
    });
    this.#sendIcReq();
    try {
      await this.#driveUntil(ic);
    } catch (e) {
      this.#icResolve = null;
      this.close();
      throw e;
    }
    this.#connected = true;
  }

  /** ICReq, on either socket: the digests asked for, one R2T at a time. */
  #sendIcReq(): void {
    const o = this.#tx.reserve(HLEN.ICReq);
    encodeIcReq(this.#tx.dv, o, {
      hpda: this.#opts.hpda ?? 0,
      hdgst: this.hdgst,
      ddgst: this.ddgst,
      maxr2t: 1,
    });
    this.#tx.commit(HLEN.ICReq);
    this.#tx.flush();
  }

  #closeNative(): void {
    this.#releasePending();
    if (this.#group !== null) this.#group.destroy();
    this.#group = null;
    this.#fd = -1;
  }

  /** Close the connection; outstanding commands complete with ABORTED_SQ_DELETION. */
  close(): void {
    this.#fail(new HostQpairError('ERR_NVME_QPAIR_CLOSED', `qpair ${this.qid} closed`), false);
  }

  #fail(e: Error, report = true): void {
    const wasOpen = this.#sock !== null || this.#fd >= 0;
    if (this.#fd >= 0) {
      // Last words (an H2CTermReq) go out if the kernel takes them now; the rest is dropped.
      this.#tx.flush();
      if (this.#pendCount > 0 && this.#sendErr === 0) this.#drainPending();
      this.#closeNative();
      const rej = this.#icReject;
      this.#icReject = null;
      rej?.(this.#failed ?? e);
    }
    if (this.#sock) {
      const s = this.#sock;
      this.#sock = null;
      this.#tx.flush();
      s.end();
      s.destroySoon();
    }
    this.#connected = false;
    this.#reader.stopped = true;
    this.#tx.close();
    if (!this.#failed) this.#failed = e;
    for (const r of this.#reqs)
      if (r.state === ST_INFLIGHT) this.#finish(r, STATUS_ABORTED_SQ_DELETION, 0, 0);
    if (report && wasOpen) this.onFailure?.(this, e);
  }

  // ---- submission ----

  /** Read `nlb` blocks at `lba` of `nsid` into `buf` (exactly nlb * block size bytes). */
  read<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Read, nsid, lba, nlb, buf, 2, Fuse.None, cb, ctx);
  }

  write<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Write, nsid, lba, nlb, buf, 1, Fuse.None, cb, ctx);
  }

  compare<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Compare, nsid, lba, nlb, buf, 1, Fuse.None, cb, ctx);
  }

  writeZeroes<C>(nsid: number, lba: number, nlb: number, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.WriteZeroes, nsid, lba, nlb, null, 0, Fuse.None, cb, ctx);
  }

  flush<C>(nsid: number, cb: Completion<C>, ctx: C): boolean {
    return this.submit({ opcode: IoOpcode.Flush, nsid }, cb, ctx);
  }

  /** Dataset Management with Deallocate over `ranges` of [lba, blocks]. */
  deallocate<C>(
    nsid: number,
    ranges: readonly (readonly [number, number])[],
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    if (ranges.length < 1 || ranges.length > 256) throw new RangeError('1-256 ranges');
    const data = new Uint8Array(16 * ranges.length);
    const dv = new DataView(data.buffer);
    ranges.forEach(([lba, n], i) => {
      dv.setUint32(16 * i + 4, n, true);
      writeU64(dv, 16 * i + 8, lba);
    });
    return this.submit(
      { opcode: IoOpcode.DatasetManagement, nsid, cdw10: ranges.length - 1, cdw11: 4, buf: data, dir: 1 },
      cb,
      ctx,
    );
  }

  /**
   * Fused Compare and Write: writes `data` only if the blocks equal `expect`. One callback, with the
   * compare's status when it failed (Media/CompareFailure) and the write's otherwise.
   */
  compareAndWrite<C>(
    nsid: number,
    lba: number,
    nlb: number,
    expect: Uint8Array,
    data: Uint8Array,
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    if (this.#nfree < 2 || !this.#connected) return false;
    const state = { status: -1, n: 0 };
    const both: Completion<undefined> = (_c, status, dw0, dw1) => {
      if (state.n++ === 0) state.status = status;
      else if (state.status === 0 || status !== 0) {
        // First non-zero wins, the compare (completes first) in particular.
        if (state.status === 0) state.status = status;
      }
      if (state.n === 2) cb(ctx, state.status, dw0, dw1);
    };
    this.#rw(IoOpcode.Compare, nsid, lba, nlb, expect, 1, Fuse.First, both, undefined);
    this.#rw(IoOpcode.Write, nsid, lba, nlb, data, 1, Fuse.Second, both, undefined);
    return true;
  }

  #rw<C>(
    opcode: number,
    nsid: number,
    lba: number,
    nlb: number,
    buf: Uint8Array | null,
    dir: number,
    fuse: number,
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    if (this.#nfree === 0 || !this.#connected) return false;
    if (nlb < 1 || nlb > 65536) throw new RangeError(`nlb ${nlb} outside 1..65536`);
    const r = this.#reqs[this.#free[--this.#nfree]];
    const len = buf ? buf.length : 0;
    const icd = dir === 1 && len <= this.#icd && len > 0 ? len : 0;
    const o = this.#beginCapsule(icd);
    const dv = this.#tx.dv;
    const s = o + CH_SIZE;
    sqeInit(dv, s, opcode, PSDT_SGL | fuse, r.cid, nsid);
    writeU64(dv, s + SqeOff.cdw10, lba);
    dv.setUint32(s + SqeOff.cdw12, (nlb - 1) & 0xffff, true);
    this.#finishCapsule(r, o, buf, len, dir, icd, opcode, cb as Completion<unknown>, ctx);
    return true;
  }

  /** A command described by fields (admin commands, fabrics, rare I/O). */
  submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean {
    if (this.#nfree === 0 || (!this.#connected && !c.beforeConnect)) return false;
    const r = this.#reqs[this.#free[--this.#nfree]];
    const buf = c.buf ?? null;
    const len = buf ? buf.length : 0;
    const dir = buf ? (c.dir ?? 2) : 0;
    const icd = dir === 1 && len > 0 && len <= (c.inCapsuleLimit ?? this.#icd) ? len : 0;
    const o = this.#beginCapsule(icd);
    const dv = this.#tx.dv;
    const s = o + CH_SIZE;
    sqeInit(dv, s, c.opcode, PSDT_SGL | (c.fuse ?? 0), r.cid, c.nsid ?? 0);
    if (c.fctype !== undefined) dv.setUint8(s + SqeOff.fctype, c.fctype);
    const cdws = [c.cdw10, c.cdw11, c.cdw12, c.cdw13, c.cdw14, c.cdw15];
    for (let i = 0; i < 6; i++) if (cdws[i] !== undefined) dv.setUint32(s + 40 + 4 * i, cdws[i]! >>> 0, true);
    c.fill?.(dv, s);
    this.#finishCapsule(r, o, buf, len, dir, icd, c.opcode, cb as Completion<unknown>, ctx);
    return true;
  }

  #capsuleLen(icd: number): number {
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    return HLEN.CapsuleCmd + hd + icd + (icd > 0 && this.ddgst ? DIGEST_SIZE : 0);
  }

  // Reserve room for a capsule; the SQE is then written through this.#tx.dv at the returned offset.
  #beginCapsule(icd: number): number {
    return this.#tx.reserve(this.#capsuleLen(icd));
  }

  #finishCapsule(
    r: HostRequest,
    o: number,
    buf: Uint8Array | null,
    len: number,
    dir: number,
    icd: number,
    opcode: number,
    cb: Completion<unknown>,
    ctx: unknown,
  ): void {
    const tx = this.#tx;
    const dv = tx.dv;
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const plen = this.#capsuleLen(icd);
    const pdo = icd > 0 ? HLEN.CapsuleCmd + hd : 0;
    const flags = (hd ? PduFlag.HDGSTF : 0) | (icd > 0 && this.ddgst ? PduFlag.DDGSTF : 0);
    writeCh(dv, o, PduType.CapsuleCmd, flags, HLEN.CapsuleCmd, pdo, plen);
    sqeSetSgl(dv, o + CH_SIZE, 0, len, icd > 0 ? SglId.InCapsuleData : SglId.TransportDataBlock);
    if (hd) putHeaderDigest(tx.bytes, dv, o, HLEN.CapsuleCmd);
    if (icd > 0) {
      copyBytes(buf!, 0, icd, tx.bytes, o + pdo);
      if (this.ddgst) dv.setUint32(o + pdo + icd, crc32c(buf!), true);
    }
    tx.commit(plen);
    r.state = ST_INFLIGHT;
    r.cb = cb;
    r.ctx = ctx;
    r.buf = buf;
    r.len = len;
    r.dir = dir;
    r.c2hRecv = 0;
    r.opcode = opcode;
    r.timeoutReported = false;
    r.digestError = false;
    r.deadline = this.#opts.timeoutMs ? performance.now() + this.#opts.timeoutMs : 0;
    this.stats.submitted++;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushFn);
    }
  }

  // ---- completion ----

  /** Run up to `max` completion callbacks (0 = all queued). Returns how many ran. */
  processCompletions(max = 0): number {
    if (this.#fd >= 0) this.#pump();
    let n = 0;
    const cap = this.#done.length;
    while (this.#doneHead !== this.#doneTail && (max === 0 || n < max)) {
      const r = this.#reqs[this.#done[this.#doneHead]];
      this.#doneHead = (this.#doneHead + 1) % cap;
      const cb = r.cb!;
      const ctx = r.ctx;
      r.cb = null;
      r.ctx = undefined;
      r.buf = null;
      r.state = ST_FREE;
      this.#free[this.#nfree++] = r.cid;
      this.stats.completed++;
      n++;
      cb(ctx, r.status, r.dw0, r.dw1);
    }
    // A native owner may poll again without yielding (nvme-perf spins): the microtask that would
    // flush what the callbacks submitted must not be what sends it.
    if (this.#fd >= 0 && this.#flushScheduled) this.#flushFn();
    if (this.#opts.timeoutMs) this.#scanTimeouts();
    return n;
  }

  #scanTimeouts(): void {
    const now = performance.now();
    if (now - this.#lastTimeoutScan < 10) return;
    this.#lastTimeoutScan = now;
    for (const r of this.#reqs) {
      if (r.state === ST_INFLIGHT && !r.timeoutReported && r.deadline !== 0 && now > r.deadline) {
        r.timeoutReported = true;
        this.onTimeout?.(this, r.cid, r.opcode);
      }
    }
  }

  #finish(r: HostRequest, status: number, dw0: number, dw1: number): void {
    if (r.state !== ST_INFLIGHT) return;
    r.state = ST_DONE;
    r.status = status;
    r.dw0 = dw0;
    r.dw1 = dw1;
    this.#done[this.#doneTail] = r.cid;
    this.#doneTail = (this.#doneTail + 1) % this.#done.length;
    if (this.#auto && !this.#autoScheduled) {
      this.#autoScheduled = true;
      queueMicrotask(this.#autoFn);
    }
  }

  // ---- receive (PduHandler) ----

  readonly #rxBuf = new Uint8Array(256 * 1024);
  readonly #onRead = (n: number, buf: Uint8Array): boolean => {
    this.#receive(buf, n);
    return true;
  };

  #receive(b: Uint8Array, n: number): void {
    try {
      this.#reader.push(b, n);
    } catch (e) {
      // A protocol error ends the connection with an H2CTermReq; anything else (a bug) is also
      // contained to this qpair rather than thrown out of the socket's data handler.
      const p = e instanceof NvmeTcpProtocolError ? e : null;
      this.#sendTermReq(p ? p.fes : Fes.InvalidHeaderField, p ? p.fei : 0, this.#reader.errorHeader);
      const msg = e instanceof Error ? e.message : String(e);
      this.#fail(new HostQpairError('ERR_NVME_QPAIR_PROTOCOL', `qpair ${this.qid}: ${msg}`, { cause: e }));
    }
    this.#scheduleFlush();
  }

  #sendTermReq(fes: number, fei: number, header: Uint8Array | null): void {
    const data = header ? Math.min(header.length, TERM_REQ_MAX_DATA) : 0;
    const o = this.#tx.reserve(HLEN.TermReq + data);
    encodeTermReq(this.#tx.dv, o, PduType.H2CTermReq, fes, fei, data);
    if (header) copyBytes(header, 0, data, this.#tx.bytes, o + HLEN.TermReq);
    this.#tx.commit(HLEN.TermReq + data);
    this.#tx.flush();
  }

  #proto(fes: number, fei: number, msg: string): never {
    throw new NvmeTcpProtocolError('ERR_NVME_TCP_PDU_HEADER', fes, fei, msg);
  }

  #reqFor(cid: number, fei: number): HostRequest {
    const r = cid < this.depth ? this.#reqs[cid] : undefined;
    if (!r || r.state !== ST_INFLIGHT) this.#proto(Fes.InvalidHeaderField, fei, `PDU for unknown CID ${cid}`);
    return r;
  }

  onPduHeader(type: number, flags: number, dv: DataView, off: number, dataLen: number): void {
    this.#rxType = type;
    this.#rxFlags = flags;
    this.#rxReq = null;
    if (!this.#icResolve && !this.#connected && type !== PduType.C2HTermReq)
      this.#proto(Fes.PduSequenceError, 0, 'PDU before ICResp');
    switch (type) {
      case PduType.ICResp: {
        if (!this.#icResolve) this.#proto(Fes.PduSequenceError, 0, 'unexpected ICResp');
        if (dv.getUint16(off + IcOff.pfv, true) !== 0)
          this.#proto(Fes.InvalidHeaderField, IcOff.pfv, 'bad PFV');
        const dgst = dv.getUint8(off + IcOff.dgst);
        this.hdgst = this.hdgst && (dgst & IcDigest.Header) !== 0;
        this.ddgst = this.ddgst && (dgst & IcDigest.Data) !== 0;
        this.maxh2cdata = dv.getUint32(off + IcOff.maxh2cdata, true);
        if (this.maxh2cdata < 4096 || this.maxh2cdata % 4)
          this.#proto(Fes.InvalidHeaderField, IcOff.maxh2cdata, 'bad MAXH2CDATA');
        this.#reader.hdgst = this.hdgst;
        this.#reader.ddgst = this.ddgst;
        return;
      }
      case PduType.CapsuleResp: {
        const s = off + CH_SIZE;
        const r = this.#reqFor(dv.getUint16(s + 12, true), CH_SIZE + 12);
        const status = r.digestError ? STATUS_TRANSPORT_ERROR : dv.getUint16(s + 14, true) >>> 1;
        this.#finish(r, status, dv.getUint32(s, true), dv.getUint32(s + 4, true));
        return;
      }
      case PduType.C2HData: {
        const r = this.#reqFor(dv.getUint16(off + DataOff.cccid, true), DataOff.cccid);
        const datao = dv.getUint32(off + DataOff.datao, true);
        const datal = dv.getUint32(off + DataOff.datal, true);
        if (r.dir !== 2)
          this.#proto(Fes.InvalidHeaderField, DataOff.cccid, 'C2HData for a command without read data');
        if (datal !== dataLen)
          this.#proto(Fes.InvalidHeaderField, DataOff.datal, 'DATAL does not match PLEN');
        if (datao !== r.c2hRecv || datao + datal > r.len)
          throw new NvmeTcpProtocolError(
            'ERR_NVME_TCP_DATA_RANGE',
            Fes.DataTransferOutOfRange,
            DataOff.datao,
            'C2HData out of range',
          );
        if (flags & PduFlag.SUCCESS && !(flags & PduFlag.LAST_PDU))
          this.#proto(Fes.InvalidHeaderField, 1, 'SUCCESS without LAST_PDU');
        r.c2hRecv += datal;
        this.#rxReq = r;
        this.#rxBase = datao;
        return;
      }
      case PduType.R2T: {
        const r = this.#reqFor(dv.getUint16(off + DataOff.cccid, true), DataOff.cccid);
        const r2to = dv.getUint32(off + DataOff.r2to, true);
        const r2tl = dv.getUint32(off + DataOff.r2tl, true);
        if (r.dir !== 1 || r2tl === 0 || r2to + r2tl > r.len)
          throw new NvmeTcpProtocolError(
            'ERR_NVME_TCP_DATA_RANGE',
            Fes.DataTransferOutOfRange,
            DataOff.r2to,
            'R2T out of range',
          );
        this.stats.r2ts++;
        this.#sendH2C(r, dv.getUint16(off + DataOff.ttag, true), r2to, r2tl);
        return;
      }
      case PduType.C2HTermReq: {
        const fes = dv.getUint16(off + TermOff.fes, true);
        this.#reader.stopped = true;
        queueMicrotask(() =>
          this.#fail(new HostQpairError('ERR_NVME_QPAIR_PROTOCOL', `target sent C2HTermReq (FES ${fes})`)),
        );
        return;
      }
      default:
        this.#proto(Fes.InvalidHeaderField, 0, `PDU type ${type} is not controller-to-host`);
    }
  }

  onPduData(buf: Uint8Array, start: number, end: number, dataOffset: number): void {
    const r = this.#rxReq;
    if (r) copyBytes(buf, start, end, r.buf!, this.#rxBase + dataOffset);
  }

  onPduEnd(digestOk: boolean): void {
    if (this.#rxType === PduType.ICResp) {
      const res = this.#icResolve;
      this.#icResolve = null;
      res?.();
      return;
    }
    const r = this.#rxReq;
    this.#rxReq = null;
    if (!r || this.#rxType !== PduType.C2HData) return;
    // A bad data digest is remembered: the CapsuleResp that follows would report success.
    if (!digestOk) r.digestError = true;
    if (this.#rxFlags & PduFlag.SUCCESS) this.#finish(r, r.digestError ? STATUS_TRANSPORT_ERROR : 0, 0, 0);
  }

  // Answer an R2T with H2CData PDUs of at most MAXH2CDATA (and what one send buffer holds).
  #sendH2C(r: HostRequest, ttag: number, off: number, len: number): void {
    const tx = this.#tx;
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const dd = this.ddgst ? DIGEST_SIZE : 0;
    const chunk = Math.min(this.maxh2cdata, 65536 - 256);
    const end = off + len;
    const buf = r.buf!;
    for (let p = off; p < end; p += chunk) {
      const n = Math.min(chunk, end - p);
      const pdo = HLEN.H2CData + hd;
      const plen = pdo + n + dd;
      const o = tx.reserve(plen);
      const last = p + n === end;
      writeCh(
        tx.dv,
        o,
        PduType.H2CData,
        (hd ? PduFlag.HDGSTF : 0) | (dd ? PduFlag.DDGSTF : 0) | (last ? PduFlag.LAST_PDU : 0),
        HLEN.H2CData,
        pdo,
        plen,
      );
      encodeDataHeader(tx.dv, o, r.cid, ttag, p, n);
      if (hd) putHeaderDigest(tx.bytes, tx.dv, o, HLEN.H2CData);
      copyBytes(buf, p, p + n, tx.bytes, o + pdo);
      if (dd) tx.dv.setUint32(o + pdo + n, crc32cRange(buf, p, p + n), true);
      tx.commit(plen);
    }
    this.#scheduleFlush();
  }

  // ---- fabrics Connect for this queue ----

  /** Fabrics Connect; resolves to the controller ID. */
  connect(
    subnqn: string,
    hostnqn: string,
    hostid: Uint8Array,
    cntlid: number,
    kato: number,
  ): Promise<number> {
    const data = new Uint8Array(CONNECT_DATA_SIZE);
    data.set(hostid.subarray(0, 16), ConnectDataOff.hostid);
    new DataView(data.buffer).setUint16(ConnectDataOff.cntlid, cntlid, true);
    for (let i = 0; i < subnqn.length && i < 255; i++) data[ConnectDataOff.subnqn + i] = subnqn.charCodeAt(i);
    for (let i = 0; i < hostnqn.length && i < 255; i++)
      data[ConnectDataOff.hostnqn + i] = hostnqn.charCodeAt(i);
    this.#auto = true;
    const p = new Promise<number>((resolve, reject) => {
      const ok = this.submit(
        {
          opcode: AdminOpcode.Fabrics,
          fctype: 0x01,
          buf: data,
          dir: 1,
          beforeConnect: true,
          inCapsuleLimit: this.qid === 0 ? 8192 : this.#icd,
          fill: (dv, s) => {
            dv.setUint16(s + ConnectOff.recfmt, 0, true);
            dv.setUint16(s + ConnectOff.qid, this.qid, true);
            dv.setUint16(s + ConnectOff.sqsize, this.depth - 1, true);
            dv.setUint32(s + ConnectOff.kato, kato, true);
          },
        },
        (_c, status, dw0) => {
          if (status === STATUS_ABORTED_SQ_DELETION && this.#failed) reject(this.#failed);
          else if (status !== 0) reject(new ConnectError(status, dw0));
          else resolve(dw0 & 0xffff);
        },
        undefined,
      );
      if (!ok) reject(new HostQpairError('ERR_NVME_QPAIR_CLOSED', 'qpair not open'));
    });
    return this.#driveUntil(p).finally(() => {
      this.#auto = this.#opts.autoPoll ?? false;
    });
  }
}

/** Fields of a command for `HostQpair.submit`. */
export interface CommandSpec {
  opcode: number;
  nsid?: number;
  fctype?: number;
  fuse?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
  buf?: Uint8Array;
  /** 1: host to controller (write), 2: controller to host (read, the default with a buffer). */
  dir?: 1 | 2;
  /** Write further SQE fields (offset `s` is the SQE start). */
  fill?: (dv: DataView, s: number) => void;
  /** Allowed before Fabrics Connect completed (Connect itself). */
  beforeConnect?: boolean;
  inCapsuleLimit?: number;
}

export class ConnectError extends Error {
  override name = 'ConnectError';
  readonly code = 'ERR_NVME_CONNECT';
  readonly status: number;
  /** For Connect Invalid Parameters: IATTR (bit 0) and IPO (bits 31:16). */
  readonly dw0: number;
  constructor(status: number, dw0: number) {
    super(
      `Fabrics Connect failed: ${connectStatusText(status, dw0)} (status 0x${status.toString(16)}, sct ${(status >> 8) & 7}, sc 0x${(status & 0xff).toString(16)})`,
    );
    this.status = status;
    this.dw0 = dw0;
  }
}

// What a Connect's command-specific status means (NVMe over Fabrics 1.1, Figure 21), naming the
// field for Connect Invalid Parameters from IATTR/IPO: an unknown subsystem is the usual cause.
function connectStatusText(status: number, dw0: number): string {
  if (((status >> 8) & 7) !== Sct.CommandSpecific) return 'generic error';
  switch (status & 0xff) {
    case CommandSpecificStatus.ConnectIncompatibleFormat:
      return 'incompatible record format';
    case CommandSpecificStatus.ConnectControllerBusy:
      return 'controller busy';
    case CommandSpecificStatus.ConnectInvalidParameters: {
      const inData = (dw0 & 1) === 1;
      const ipo = dw0 >>> 16;
      if (inData && ipo === ConnectDataOff.subnqn) return 'no such subsystem (SUBNQN)';
      if (inData && ipo === ConnectDataOff.hostnqn) return 'invalid host NQN';
      if (inData && ipo === ConnectDataOff.cntlid) return 'invalid controller ID';
      return `invalid parameter at ${inData ? 'data' : 'SQE'} offset ${ipo}`;
    }
    case CommandSpecificStatus.ConnectRestartDiscovery:
      return 'restart discovery';
    case CommandSpecificStatus.ConnectInvalidHost:
      return 'host not allowed by the subsystem';
    default:
      return 'command-specific error';
  }
}
