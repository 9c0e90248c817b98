// The host side of one NVMe/TCP queue pair as a protocol engine: bytes in (`receive`), PDUs out
// through a TxSink, and nothing about sockets (the target's tcp-qpair.ts is its mirror image).
// Commands are encoded straight into the send batch from preallocated request slots (CID = slot
// index); responses are parsed as they arrive and queued, and `processCompletions(max)` runs their
// callbacks, so the owner decides when completions happen (SPDK's polled model). Read data lands
// directly in the caller's buffer. The engine outlives connections: `begin` starts one (ICReq),
// `fail` ends it and completes whatever was outstanding with ABORTED - SQ DELETION.

import { crc32cRange } from '@storkit/native';
import {
  AdminOpcode,
  CH_SIZE,
  DataOff,
  DIGEST_SIZE,
  encodeDataHeader,
  encodeIcReq,
  encodeTermReq,
  Fes,
  Fuse,
  HLEN,
  IcDigest,
  IcOff,
  IoOpcode,
  NvmeTcpProtocolError,
  PduFlag,
  PduType,
  PSDT_SGL,
  putHeaderDigest,
  SglId,
  SqeOff,
  sqeInit,
  sqeSetSgl,
  TERM_REQ_MAX_DATA,
  TermOff,
  writeCh,
  writeU64,
} from '@storkit/nvme-spec';
import { copyBytes, type PduHandler, PduReader, TxQueue, type TxSink } from '@storkit/nvme-spec/tcp';

import {
  type CommandSpec,
  type Completion,
  HostQpairError,
  STATUS_ABORTED_SQ_DELETION,
  STATUS_TRANSPORT_ERROR,
} from '../host/qpair.js';

export interface TcpEngineOptions {
  qid: number;
  /** Entries (1-based); CIDs 0..depth-1. */
  depth: number;
  hdgst?: boolean;
  ddgst?: boolean;
  /** Largest transfer a command may carry. */
  maxTransfer?: number;
  /** In-capsule data this queue may use for writes (0 = always R2T). */
  inCapsuleData?: number;
  /** Per-command timeout in ms (0 = none); `onTimeout` decides what to do. */
  timeoutMs?: number;
  /** Run completions as soon as they arrive (admin queue) instead of waiting for processCompletions. */
  autoPoll?: boolean;
  /** Host PDU data alignment asked of the target: C2HData data starts at a multiple of (hpda+1)*4. */
  hpda?: number;
  /**
   * The data digests' CRC32C (sent and received), as native crc32cRange: an accel channel's
   * (`AccelChannel.crc32cRange`) puts them under the framework's assignment. Default: the CPU's.
   */
  crc32c?: typeof crc32cRange;
}

/** What the engine reports to the qpair that hosts it. */
export interface TcpEngineEvents {
  /** The engine found the connection unusable (a protocol error, a C2HTermReq): end it. */
  fatal(err: Error): void;
  /** A command outlived timeoutMs (reported once per command). */
  timedOut(cid: number, opcode: number): void;
}

export interface TcpEngineStats {
  submitted: number;
  completed: number;
  r2ts: number;
  bytesOut: number;
  /** Batches the kernel did not take whole at once (native sockets; they waited). */
  txBlocked: number;
}

const ST_FREE = 0;
const ST_INFLIGHT = 1;
const ST_DONE = 2;

/** Bytes of one send buffer: the largest PDU (an H2CData of MAXH2CDATA, or a capsule) must fit. */
const TX_BUFFER = 256 * 1024;
/** Headers, digests and padding around a PDU's data. */
const PDU_OVERHEAD = 256;

/** ICResp must arrive within this many ms of ICReq. */
const IC_TIMEOUT_MS = 5000;

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

// Both halves of a fused Compare and Write report to one of these (pooled); the caller's callback
// runs once, after both.
class FusedPair {
  status = 0;
  n = 0;
  cb: Completion<unknown> | null = null;
  ctx: unknown = undefined;
}

export class TcpHostEngine implements PduHandler {
  readonly qid: number;
  readonly depth: number;
  hdgst: boolean;
  ddgst: boolean;
  maxh2cdata = 0;
  readonly stats: TcpEngineStats = { submitted: 0, completed: 0, r2ts: 0, bytesOut: 0, txBlocked: 0 };
  readonly #o: TcpEngineOptions;
  readonly #events: TcpEngineEvents;
  readonly #wantHdgst: boolean;
  readonly #wantDdgst: boolean;
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
  readonly #crc32c: typeof crc32cRange;
  readonly #fused: FusedPair[] = [];

  constructor(o: TcpEngineOptions, events: TcpEngineEvents) {
    this.#o = o;
    this.#events = events;
    this.qid = o.qid;
    this.depth = o.depth;
    this.#wantHdgst = o.hdgst ?? false;
    this.#wantDdgst = o.ddgst ?? false;
    this.hdgst = this.#wantHdgst;
    this.ddgst = this.#wantDdgst;
    this.#icd = Math.min(o.inCapsuleData ?? 0, TX_BUFFER - PDU_OVERHEAD - HLEN.CapsuleCmd);
    this.#auto = o.autoPoll ?? false;
    this.#crc32c = o.crc32c ?? crc32cRange;
    this.#free = new Int32Array(o.depth);
    this.#done = new Int32Array(o.depth + 1);
    for (let i = 0; i < o.depth; i++) {
      this.#reqs.push(new HostRequest(i));
      this.#free[i] = o.depth - 1 - i;
    }
    this.#nfree = o.depth;
    this.#reader = this.#newReader();
    this.#tx = new TxQueue(() => {}, 1);
    this.#tx.close();
  }

  #newReader(): PduReader {
    const r = new PduReader(this, Math.max(this.#o.maxTransfer ?? 131072, 8192) + 1024);
    r.crc32c = this.#crc32c;
    return r;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get failed(): Error | null {
    return this.#failed;
  }

  get outstanding(): number {
    return this.depth - this.#nfree;
  }

  /** Run completions as they arrive (while a Fabrics Connect is pending, or for an admin queue). */
  set autoPoll(on: boolean) {
    this.#auto = on || (this.#o.autoPoll ?? false);
  }

  /**
   * A new connection: PDUs go to `sink` (and `kick` sends what the sink queued, for sinks that
   * only queue). Sends ICReq; resolves at ICResp, rejects if the connection fails first or no
   * ICResp comes within 5 s. Fabrics Connect is the caller's next step.
   */
  begin(sink: TxSink, kick: (() => void) | null): Promise<void> {
    this.#failed = null;
    this.#connected = false;
    this.hdgst = this.#wantHdgst;
    this.ddgst = this.#wantDdgst;
    this.#reader = this.#newReader();
    this.#tx = new TxQueue(
      (b, release) => {
        this.stats.bytesOut += b.length;
        sink(b, release);
      },
      TX_BUFFER,
      kick,
    );
    const ic = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.#icResolve = null;
        this.#icReject = null;
        reject(new HostQpairError('ETIMEDOUT', `no ICResp within ${IC_TIMEOUT_MS / 1000} s`));
      }, IC_TIMEOUT_MS);
      t.unref();
      this.#icResolve = () => {
        clearTimeout(t);
        this.#icReject = null;
        this.#connected = true;
        resolve();
      };
      this.#icReject = (e) => {
        clearTimeout(t);
        this.#icResolve = null;
        reject(e);
      };
    });
    const o = this.#tx.reserve(HLEN.ICReq);
    encodeIcReq(this.#tx.dv, o, { hpda: this.#o.hpda ?? 0, hdgst: this.hdgst, ddgst: this.ddgst, maxr2t: 1 });
    this.#tx.commit(HLEN.ICReq);
    this.#tx.flush();
    return ic;
  }

  /** Send what is batched now. */
  flush(): void {
    this.#tx.flush();
  }

  /**
   * The connection ended (or is being closed): nothing more is sent or parsed, and every
   * outstanding command completes with ABORTED - SQ DELETION at the next processCompletions.
   * `lastWords` flushes what is batched (a TermReq) before the send side closes.
   */
  fail(e: Error, lastWords = false): void {
    if (lastWords) this.#tx.flush();
    this.#connected = false;
    this.#reader.stopped = true;
    this.#tx.close();
    if (!this.#failed) this.#failed = e;
    const rej = this.#icReject;
    this.#icReject = null;
    this.#icResolve = null;
    rej?.(this.#failed);
    for (const r of this.#reqs)
      if (r.state === ST_INFLIGHT) this.#finish(r, STATUS_ABORTED_SQ_DELETION, 0, 0);
  }

  // ---- submission ----

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

  flushNs<C>(nsid: number, cb: Completion<C>, ctx: C): boolean {
    return this.submit({ opcode: IoOpcode.Flush, nsid }, cb, ctx);
  }

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
    const p = this.#fused.pop() ?? new FusedPair();
    p.status = 0;
    p.n = 0;
    p.cb = cb as Completion<unknown>;
    p.ctx = ctx;
    this.#rw(IoOpcode.Compare, nsid, lba, nlb, expect, 1, Fuse.First, this.#fusedDone, p);
    this.#rw(IoOpcode.Write, nsid, lba, nlb, data, 1, Fuse.Second, this.#fusedDone, p);
    return true;
  }

  readonly #fusedDone: Completion<FusedPair> = (p, status, dw0, dw1) => {
    // First non-zero status wins: the compare's (it completes first) in particular.
    if (p.n++ === 0 || p.status === 0) p.status = status;
    if (p.n < 2) return;
    const cb = p.cb!;
    const ctx = p.ctx;
    p.cb = null;
    p.ctx = undefined;
    this.#fused.push(p);
    cb(ctx, p.status, dw0, dw1);
  };

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

  submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean {
    if (this.#nfree === 0 || (!this.#connected && !(c.beforeConnect && this.#failed === null))) return false;
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
    if (c.cdw10 !== undefined) dv.setUint32(s + SqeOff.cdw10, c.cdw10 >>> 0, true);
    if (c.cdw11 !== undefined) dv.setUint32(s + SqeOff.cdw11, c.cdw11 >>> 0, true);
    if (c.cdw12 !== undefined) dv.setUint32(s + SqeOff.cdw12, c.cdw12 >>> 0, true);
    if (c.cdw13 !== undefined) dv.setUint32(s + SqeOff.cdw13, c.cdw13 >>> 0, true);
    if (c.cdw14 !== undefined) dv.setUint32(s + SqeOff.cdw14, c.cdw14 >>> 0, true);
    if (c.cdw15 !== undefined) dv.setUint32(s + SqeOff.cdw15, c.cdw15 >>> 0, true);
    c.fill?.(dv, s);
    this.#finishCapsule(r, o, buf, len, dir, icd, c.opcode, cb as Completion<unknown>, ctx);
    return true;
  }

  cidOf(ctx: unknown): number {
    for (const r of this.#reqs) if (r.state === ST_INFLIGHT && r.ctx === ctx) return r.cid;
    return -1;
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
      if (this.ddgst) dv.setUint32(o + pdo + icd, this.#crc32c(buf!, 0, icd), true);
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
    // An Asynchronous Event Request is answered only when an event happens, maybe never: it has
    // no deadline (as on PCIe, and in SPDK). Timing it out reset every controller whose life
    // outlasted timeoutMs without an event.
    r.deadline =
      this.#o.timeoutMs && !(this.qid === 0 && opcode === AdminOpcode.AsyncEventRequest)
        ? performance.now() + this.#o.timeoutMs
        : 0;
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

  /** Run up to `max` completion callbacks (0 = all queued), then send what they submitted. */
  processCompletions(max = 0): number {
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
    // An owner may poll again without yielding (nvme-perf spins): the microtask that would flush
    // what the callbacks submitted must not be what sends it.
    if (this.#flushScheduled) this.#flushFn();
    if (this.#o.timeoutMs) this.#scanTimeouts();
    return n;
  }

  #scanTimeouts(): void {
    const now = performance.now();
    if (now - this.#lastTimeoutScan < 10) return;
    this.#lastTimeoutScan = now;
    for (const r of this.#reqs) {
      if (r.state === ST_INFLIGHT && !r.timeoutReported && r.deadline !== 0 && now > r.deadline) {
        r.timeoutReported = true;
        this.#events.timedOut(r.cid, r.opcode);
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

  /** The first `n` bytes of `b` came from the connection (valid only during the call). */
  receive(b: Uint8Array, n: number): void {
    try {
      this.#reader.push(b, n);
    } catch (e) {
      // A protocol error ends the connection with an H2CTermReq; anything else (a bug) is also
      // contained to this qpair rather than thrown out of the socket's data handler.
      const p = e instanceof NvmeTcpProtocolError ? e : null;
      this.#sendTermReq(p ? p.fes : Fes.InvalidHeaderField, p ? p.fei : 0, this.#reader.errorHeader);
      const msg = e instanceof Error ? e.message : String(e);
      this.#events.fatal(new HostQpairError('EPROTO', `qpair ${this.qid}: ${msg}`, { cause: e }));
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
    throw new NvmeTcpProtocolError(fes, fei, msg);
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
        // A read answered with success before all of its data came (a controller sends the C2HData
        // first): completing it would hand the caller a buffer partly stale, silently. A replayed
        // or misrouted answer (digests cannot see one) does exactly this.
        if (r.dir === 2 && status === 0 && r.c2hRecv !== r.len)
          this.#proto(
            Fes.PduSequenceError,
            0,
            `CapsuleResp (success) for read CID ${r.cid} after ${r.c2hRecv} of its ${r.len} bytes`,
          );
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
          throw new NvmeTcpProtocolError(Fes.DataTransferOutOfRange, DataOff.datao, 'C2HData out of range');
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
          throw new NvmeTcpProtocolError(Fes.DataTransferOutOfRange, DataOff.r2to, 'R2T out of range');
        this.stats.r2ts++;
        this.#sendH2C(r, dv.getUint16(off + DataOff.ttag, true), r2to, r2tl);
        return;
      }
      case PduType.C2HTermReq: {
        const fes = dv.getUint16(off + TermOff.fes, true);
        this.#reader.stopped = true;
        queueMicrotask(() =>
          this.#events.fatal(new HostQpairError('EPROTO', `target sent C2HTermReq (FES ${fes})`)),
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

  // Answer an R2T with H2CData PDUs of MAXH2CDATA, bounded by a send buffer (as SPDK's and Linux's
  // hosts do: SPDK v24.01's target with data digests on ended the connection, FES 4, when a 128 KiB
  // R2T was answered in two 64 KiB PDUs; test/spdk-target.test.ts).
  #sendH2C(r: HostRequest, ttag: number, off: number, len: number): void {
    const tx = this.#tx;
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const dd = this.ddgst ? DIGEST_SIZE : 0;
    const chunk = Math.min(this.maxh2cdata, TX_BUFFER - PDU_OVERHEAD);
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
      if (dd) tx.dv.setUint32(o + pdo + n, this.#crc32c(buf, p, p + n), true);
      tx.commit(plen);
    }
    this.#scheduleFlush();
  }
}
