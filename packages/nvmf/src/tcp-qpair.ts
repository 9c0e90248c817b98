// The NVMe/TCP qpair protocol engine of the target: bytes in (`receive`), PDUs out through a
// TxSink. It knows nothing about sockets, so the node:net adapter today and a reactor's native
// socket poller later host it the same way. One connection = one qpair (admin or I/O).

import { ACCEL_EAGAIN, type AccelChannel } from '@storkit/accel';
import { type Iobuf, type IobufChannel, IobufEntry } from '@storkit/block';
import { crc32cRange } from '@storkit/native';
import {
  AdminOpcode,
  CH_SIZE,
  cqeWrite,
  DataOff,
  DIGEST_SIZE,
  encodeDataHeader,
  encodeIcResp,
  encodeTermReq,
  FabricsType,
  Fes,
  Fuse,
  GenericStatus,
  HLEN,
  IcDigest,
  IcOff,
  makeStatus,
  NvmeTcpProtocolError,
  PduFlag,
  PduType,
  putHeaderDigest,
  Sct,
  SglId,
  SqeOff,
  TERM_REQ_MAX_DATA,
  writeCh,
} from '@storkit/nvme-spec';
import { copyBytes, type PduHandler, PduReader, TxQueue, type TxSink } from '@storkit/nvme-spec/tcp';

import { CidTable } from './cid-table.js';
import type { Controller } from './controller.js';
import { executeFused, executeIo } from './io.js';
import type { TcpTransportOptions } from './options.js';
import { ReqState, Request } from './request.js';

const noop = (): void => {};

// Below this a READ's data is copied into the send buffer after all: measured on 2 cores
// (docs/perf-history.md), a 4 KiB read costs more target CPU as two more iovec entries and a
// deferred release than as a copy, while from 32 KiB sending from the request buffer saves
// 20-40% of target CPU per I/O.
const C2H_FROM_BUF_MIN = 32768;

/** What a qpair needs from the target that accepted it. */
export interface QpairOwner {
  readonly options: TcpTransportOptions;
  /** The poll group's channel of the iobuf pool: data buffers for transfers above in-capsule size. */
  readonly iobuf: IobufChannel;
  /** Execute a Fabrics Connect: set req status/dw0 and, on success, `qp.attach(ctrlr, qid, sqsize)`. */
  connect(qp: TcpQpair, req: Request): void;
  /** The qpair is gone (closed by either side). */
  qpairClosed(qp: TcpQpair): void;
  /**
   * The accel channel data digests go through (the reactor thread's): absent, they are computed
   * here on the CPU. Outbound (C2HData), an engine assigned crc32c gets them and the PDUs wait for
   * its callback; inbound (H2CData, in-capsule data), they are verified as the data streams in,
   * by its crc32cRange (an engine's round trip would hold the socket buffer).
   */
  readonly accel?: AccelChannel | null;
  /**
   * Take over sending: called once per batch of queued PDUs (until `flushNow` runs) instead of a
   * microtask. A reactor flushes from a poller, so responses leave within the iteration that made
   * them rather than when the loop next yields.
   */
  scheduleFlush?(qp: TcpQpair): void;
}

export interface QpairStats {
  commands: number;
  bytesIn: number;
  bytesOut: number;
  r2ts: number;
  termReqs: number;
  digestErrors: number;
  /** Commands whose data digests an accel engine computed (the PDUs waited for it). */
  digestsOffloaded: number;
  /** Commands whose data digests this CPU computed because the accel channel had no free task. */
  digestsInline: number;
  /** Unexpected exceptions contained to this connection. */
  internalErrors: number;
  /** Commands that waited for a buffer of the iobuf pool. */
  bufferWaits: number;
  /** NVMe I/O commands completed (on I/O queues; Fabrics commands such as Connect excluded). */
  completedIo: number;
}

/** A pool buffer became a waiting request's: the request is the wait entry's argument. */
function bufferReady(b: Iobuf, r: unknown): void {
  (r as Request).qp.bufferReady(r as Request, b);
}

enum Phase {
  AwaitIcReq,
  Running,
  Closed,
}

/** Admin capsules (Connect data) may carry more in-capsule data than I/O ones: Linux sends 8 KiB. */
const ADMIN_ICD = 8192;
const MIN_MAXH2CDATA = 4096;

let nextQpairId = 1;

export class TcpQpair implements PduHandler {
  readonly id = nextQpairId++;
  readonly owner: QpairOwner;
  readonly peer: string;
  /** The local address the host connected to (traddr, trsvcid), for listener checks. */
  readonly local: { traddr: string; trsvcid: string };
  ctrlr: Controller | null = null;
  qid = -1;
  sqsize = 0;
  hdgst = false;
  ddgst = false;
  readonly maxh2cdata: number;
  readonly stats: QpairStats = {
    internalErrors: 0,
    commands: 0,
    bytesIn: 0,
    bytesOut: 0,
    r2ts: 0,
    termReqs: 0,
    digestErrors: 0,
    digestsOffloaded: 0,
    digestsInline: 0,
    bufferWaits: 0,
    completedIo: 0,
  };

  readonly #reader: PduReader;
  readonly #tx: TxQueue;
  readonly #close: () => void;
  readonly #reqs: Request[];
  /** Indexes of idle requests (a stack: #idle[0, #nidle)). */
  readonly #idle: Int32Array;
  #nidle: number;
  readonly #byCid: CidTable;
  #phase = Phase.AwaitIcReq;
  #sqhd = 0;
  #cpdaPad = 0;
  // The request and base offset the current PDU's data goes to.
  #rxReq: Request | null = null;
  #rxType = 0;
  #rxBase = 0;
  #fusedFirst: Request | null = null;
  #flushScheduled = false;
  #closeAfterFlush = false;
  readonly #flushFn = (): void => {
    this.#flushScheduled = false;
    this.#tx.flush();
    if (this.#closeAfterFlush) this.close();
  };

  constructor(
    owner: QpairOwner,
    sink: TxSink,
    close: () => void,
    peer: string,
    local: { traddr: string; trsvcid: string },
    kick: (() => void) | null = null,
  ) {
    this.owner = owner;
    this.peer = peer;
    this.local = local;
    this.#close = close;
    const o = owner.options;
    this.maxh2cdata = Math.max(MIN_MAXH2CDATA, o.io_unit_size & ~3);
    const depth = Math.max(o.max_queue_depth, o.max_aq_depth);
    const icd = Math.max(o.in_capsule_data_size, ADMIN_ICD);
    // Largest inbound PDU: a capsule with in-capsule data or an H2CData of MAXH2CDATA, digests, padding.
    this.#reader = new PduReader(this, Math.max(HLEN.CapsuleCmd + icd, HLEN.H2CData + this.maxh2cdata) + 512);
    if (owner.accel != null) this.#reader.crc32c = owner.accel.crc32cRange;
    this.#tx = new TxQueue(
      (b, release) => {
        this.stats.bytesOut += b.length;
        sink(b, release);
      },
      this.#c2hChunk() + 4096,
      kick,
    );
    this.#reqs = [];
    this.#idle = new Int32Array(depth);
    for (let i = 0; i < depth; i++) {
      const r = new Request(this, i, o.in_capsule_data_size || 4096);
      r.sent = () => this.#recycle(r);
      r.wait = new IobufEntry(bufferReady, r);
      this.#reqs.push(r);
      this.#idle[i] = depth - 1 - i;
    }
    this.#nidle = depth;
    this.#byCid = new CidTable(depth);
  }

  #c2hChunk(): number {
    return Math.min(this.owner.options.io_unit_size, 128 * 1024);
  }

  get closed(): boolean {
    return this.#phase === Phase.Closed;
  }

  /** Requests currently in use. */
  get outstanding(): number {
    return this.#reqs.length - this.#nidle;
  }

  /** The first `len` bytes of `bytes` came from the connection (valid only during the call).
   * Protocol errors end this connection with a C2HTermReq. */
  receive(bytes: Uint8Array, len = bytes.length): void {
    if (this.#phase === Phase.Closed) return;
    this.stats.bytesIn += len;
    try {
      this.#reader.push(bytes, len);
    } catch (e) {
      if (e instanceof NvmeTcpProtocolError) {
        this.#fatal(e.fes, e.fei, this.#reader.errorHeader);
        return;
      }
      // A bug of ours must not take down every other connection: contain it to this one, and
      // leave a trace (tests assert there are none).
      this.stats.internalErrors++;
      this.lastInternalError = e;
      this.#fatal(Fes.InvalidHeaderField, 0, this.#reader.errorHeader);
      return;
    }
    this.#scheduleFlush();
  }

  /** The last unexpected exception contained by `receive` (a bug if ever set). */
  lastInternalError: unknown = undefined;

  /** The connection went away (host vanished or closed it). In-flight backend I/O completes into the void. */
  peerClosed(): void {
    if (this.#phase === Phase.Closed) return;
    this.#phase = Phase.Closed;
    this.#reader.stopped = true;
    this.#tx.close();
    // Commands that will never reach the backend give their buffers back now (those in the
    // backend do when it completes them, those being sent when the socket lets go of them).
    for (const r of this.#reqs) {
      const st = r.state;
      if (st === ReqState.AwaitH2C || st === ReqState.AwaitFused || st === ReqState.NeedBuffer)
        this.#release(r);
    }
    this.#fusedFirst = null;
    this.owner.qpairClosed(this);
  }

  /** Close from our side (KATO expiry, Disconnect, controller teardown). */
  close(): void {
    if (this.#phase === Phase.Closed) return;
    this.#tx.flush();
    this.peerClosed();
    this.#close();
  }

  /** Called by the target's Connect handling on success. */
  attach(ctrlr: Controller, qid: number, sqsize: number): void {
    this.ctrlr = ctrlr;
    this.qid = qid;
    this.sqsize = sqsize;
  }

  findByCid(cid: number): Request | undefined {
    const i = this.#byCid.get(cid);
    return i < 0 ? undefined : this.#reqs[i];
  }

  // ---- receive side (PduHandler) ----

  onPduHeader(type: number, _flags: number, dv: DataView, off: number, dataLen: number): void {
    if (this.#phase === Phase.AwaitIcReq) {
      if (type !== PduType.ICReq) this.#seqError('expected ICReq');
      this.#onIcReq(dv, off);
      return;
    }
    this.#rxReq = null;
    this.#rxType = type;
    switch (type) {
      case PduType.CapsuleCmd:
        this.#onCapsuleHeader(dv, off, dataLen);
        return;
      case PduType.H2CData:
        this.#onH2CDataHeader(dv, off, dataLen);
        return;
      case PduType.H2CTermReq:
        this.stats.termReqs++;
        this.#reader.stopped = true;
        this.#closeAfterFlush = true;
        return;
      case PduType.ICReq:
        this.#seqError('second ICReq');
        return;
      default:
        throw new NvmeTcpProtocolError(
          Fes.InvalidHeaderField,
          0,
          `PDU type ${type} is not host-to-controller`,
        );
    }
  }

  onPduData(buf: Uint8Array, start: number, end: number, dataOffset: number): void {
    const r = this.#rxReq;
    if (r) copyBytes(buf, start, end, r.buf, this.#rxBase + dataOffset);
  }

  onPduEnd(digestOk: boolean): void {
    const r = this.#rxReq;
    this.#rxReq = null;
    if (this.#rxType === PduType.H2CTermReq) return;
    if (!r) return;
    if (!digestOk) {
      this.stats.digestErrors++;
      r.digestError = true;
    }
    if (this.#rxType === PduType.CapsuleCmd) this.#onCapsule(r);
    else if (this.#rxType === PduType.H2CData && r.h2cRecv === r.dataLen) this.#dataReady(r);
  }

  #seqError(msg: string): never {
    throw new NvmeTcpProtocolError(Fes.PduSequenceError, 0, msg);
  }

  #onIcReq(dv: DataView, off: number): void {
    if (dv.getUint32(off + 4, true) !== HLEN.ICReq)
      throw new NvmeTcpProtocolError(Fes.InvalidHeaderField, 4, 'ICReq PLEN must be 128');
    if (dv.getUint16(off + IcOff.pfv, true) !== 0)
      throw new NvmeTcpProtocolError(Fes.InvalidHeaderField, IcOff.pfv, 'unsupported PDU format version');
    const hpda = dv.getUint8(off + IcOff.hpda);
    if (hpda > 31) throw new NvmeTcpProtocolError(Fes.InvalidHeaderField, IcOff.hpda, 'HPDA above 31');
    const dgst = dv.getUint8(off + IcOff.dgst);
    this.hdgst = (dgst & IcDigest.Header) !== 0;
    this.ddgst = (dgst & IcDigest.Data) !== 0;
    // C2HData PDO must be a multiple of (HPDA+1)*4: pad after the header (and its digest).
    const align = (hpda + 1) * 4;
    const hEnd = HLEN.C2HData + (this.hdgst ? DIGEST_SIZE : 0);
    this.#cpdaPad = (align - (hEnd % align)) % align;
    const o = this.#tx.reserve(HLEN.ICResp);
    encodeIcResp(this.#tx.dv, o, {
      cpda: 0,
      hdgst: this.hdgst,
      ddgst: this.ddgst,
      maxh2cdata: this.maxh2cdata,
    });
    this.#tx.commit(HLEN.ICResp);
    this.#phase = Phase.Running;
    this.#reader.hdgst = this.hdgst;
    this.#reader.ddgst = this.ddgst;
  }

  #onCapsuleHeader(dv: DataView, off: number, dataLen: number): void {
    const limit =
      this.qid > 0
        ? this.owner.options.in_capsule_data_size
        : Math.max(this.owner.options.in_capsule_data_size, ADMIN_ICD);
    if (dataLen > limit)
      throw new NvmeTcpProtocolError(
        Fes.DataTransferLimitExceeded,
        0,
        `${dataLen} bytes of in-capsule data, limit ${limit}`,
      );
    if (this.#nidle === 0)
      throw new NvmeTcpProtocolError(Fes.PduSequenceError, 0, 'more commands than the queue holds');
    const r = this.#reqs[this.#idle[--this.#nidle]];
    const s = off + CH_SIZE;
    const k = this.#wordsSlot(dv);
    const at = this.#wordsOffs[k] + s;
    if ((at & 3) === 0) {
      // Aligned (capsules are 72 bytes, so nearly always): 16 word moves, no byte order involved.
      const src = this.#wordsI32[k];
      const dst = r.sqe32;
      const w = at >>> 2;
      for (let i = 0; i < 16; i++) dst[i] = src[w + i];
    } else {
      for (let i = 0; i < 64; i += 4) r.sqeDv.setUint32(i, dv.getUint32(s + i, true), true);
    }
    r.state = ReqState.Executing;
    r.setDataLen(dataLen);
    r.h2cRecv = dataLen;
    this.#rxReq = r;
    this.#rxBase = 0;
  }

  // Int32 words of the buffer behind `dv`. Headers come from two buffers, the connection's
  // receive buffer and the reader's staging buffer (a header split across reads), and a stream may
  // alternate between them: one cached view each, so switching allocates nothing. Each one's
  // byteOffset is read once too (the getter is a builtin call, not inlined).
  #wordsDv: (DataView | null)[] = [null, null];
  #wordsI32: Int32Array[] = [new Int32Array(0), new Int32Array(0)];
  #wordsOffs: number[] = [0, 0];
  #wordsNext = 0;
  /** The slot (0 or 1) holding `dv`'s words view and byteOffset, made on first sight. */
  #wordsSlot(dv: DataView): number {
    if (dv === this.#wordsDv[0]) return 0;
    if (dv === this.#wordsDv[1]) return 1;
    const k = this.#wordsNext;
    this.#wordsNext ^= 1;
    this.#wordsDv[k] = dv;
    this.#wordsI32[k] = new Int32Array(dv.buffer, 0, dv.buffer.byteLength >>> 2);
    this.#wordsOffs[k] = dv.byteOffset;
    return k;
  }

  #onH2CDataHeader(dv: DataView, off: number, dataLen: number): void {
    const ttag = dv.getUint16(off + DataOff.ttag, true);
    const r = ttag < this.#reqs.length ? this.#reqs[ttag] : undefined;
    if (!r || r.state !== ReqState.AwaitH2C)
      throw new NvmeTcpProtocolError(
        Fes.InvalidHeaderField,
        DataOff.ttag,
        `H2CData for unknown TTAG ${ttag}`,
      );
    if (dv.getUint16(off + DataOff.cccid, true) !== r.cid)
      throw new NvmeTcpProtocolError(
        Fes.InvalidHeaderField,
        DataOff.cccid,
        'H2CData CCCID does not match TTAG',
      );
    const datao = dv.getUint32(off + DataOff.datao, true);
    const datal = dv.getUint32(off + DataOff.datal, true);
    if (datal !== dataLen)
      throw new NvmeTcpProtocolError(Fes.InvalidHeaderField, DataOff.datal, 'DATAL does not match PLEN');
    if (datal > this.maxh2cdata)
      throw new NvmeTcpProtocolError(Fes.DataTransferLimitExceeded, 0, `H2CData of ${datal} > MAXH2CDATA`);
    if (datao !== r.h2cRecv)
      throw new NvmeTcpProtocolError(Fes.DataTransferOutOfRange, DataOff.datao, 'H2CData out of order');
    if (datal === 0 || datao + datal > r.dataLen)
      throw new NvmeTcpProtocolError(Fes.DataTransferOutOfRange, DataOff.datal, 'H2CData beyond the R2T');
    r.h2cRecv += datal;
    this.#rxReq = r;
    this.#rxBase = datao;
  }

  // ---- command handling ----

  #onCapsule(r: Request): void {
    const dv = r.sqeDv;
    const icd = r.dataLen;
    r.opcode = dv.getUint8(0);
    r.cid = dv.getUint16(2, true);
    r.nsid = dv.getUint32(4, true);
    this.stats.commands++;
    this.#sqhd = this.sqsize > 0 ? (this.#sqhd + 1) % (this.sqsize + 1) : 0;
    if (!this.#byCid.add(r.cid, r.idx) && !this.#takeAerCid(r)) {
      // Answer on the conflicting CID without touching the command that owns it.
      r.dataLen = 0;
      this.#completeDetached(r, makeStatus(Sct.Generic, GenericStatus.CommandIdConflict));
      return;
    }
    const fuse = dv.getUint8(1) & 3;
    if (this.#fusedFirst && fuse !== Fuse.Second) {
      const f = this.#fusedFirst;
      this.#fusedFirst = null;
      this.complete(f, makeStatus(Sct.Generic, GenericStatus.AbortedMissingFused));
    }
    if (
      this.ctrlr === null &&
      !(r.opcode === AdminOpcode.Fabrics && dv.getUint8(4) === FabricsType.Connect)
    ) {
      this.complete(r, makeStatus(Sct.Generic, GenericStatus.CommandSequenceError));
      return;
    }
    // Data direction: opcode bits 1:0, or the fabrics command type's for fabrics commands.
    const dir = r.opcode === AdminOpcode.Fabrics ? dv.getUint8(4) & 3 : r.opcode & 3;
    r.dir = dir === 3 ? 0 : dir;
    const sglId = dv.getUint8(SqeOff.sglId);
    const sglLen = dv.getUint32(SqeOff.sglLength, true);
    if (fuse === Fuse.First || fuse === Fuse.Second) {
      if (this.qid === 0 || r.opcode !== (fuse === Fuse.First ? 0x05 : 0x01)) {
        this.complete(r, makeStatus(Sct.Generic, GenericStatus.InvalidField));
        return;
      }
      if (fuse === Fuse.Second) {
        const f = this.#fusedFirst;
        if (!f) {
          this.complete(r, makeStatus(Sct.Generic, GenericStatus.AbortedMissingFused));
          return;
        }
        this.#fusedFirst = null;
        f.fused = r;
        r.fused = f;
      } else {
        this.#fusedFirst = r;
      }
    }
    if (icd > 0) {
      if (sglId !== SglId.InCapsuleData || r.dir !== 1) {
        this.#failEarly(r, makeStatus(Sct.Generic, GenericStatus.SglDescriptorTypeInvalid));
        return;
      }
      if (dv.getUint32(SqeOff.sglAddress, true) !== 0 || sglLen !== icd) {
        this.#failEarly(r, makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid));
        return;
      }
    } else if (r.dir !== 0 && sglLen > 0) {
      if (sglId !== SglId.TransportDataBlock) {
        this.#failEarly(r, makeStatus(Sct.Generic, GenericStatus.SglDescriptorTypeInvalid));
        return;
      }
      if (sglLen > this.owner.options.max_io_size) {
        this.#failEarly(r, makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid));
        return;
      }
      // A transfer that fits the request's own buffer uses it; a larger one borrows a pool
      // buffer, or waits in the poll group's queue (oldest first) until one is back.
      if (sglLen <= r.own.length) r.setDataLen(sglLen);
      else {
        const b = this.owner.iobuf.get(sglLen, r.wait as IobufEntry);
        if (b === null) {
          r.dataLen = sglLen;
          r.state = ReqState.NeedBuffer;
          this.stats.bufferWaits++;
          return;
        }
        r.usePool(b, sglLen);
      }
      this.#haveBuffer(r);
      return;
    }
    this.#dataReady(r);
  }

  /** A command's data buffer is there: ask for its data (write), or run it. */
  #haveBuffer(r: Request): void {
    if (r.dir === 1) {
      r.h2cRecv = 0;
      this.#sendR2T(r);
      return;
    }
    r.h2cRecv = r.dataLen;
    this.#dataReady(r);
  }

  /** @internal A pool buffer for a command that waited for one (runs inside the put that freed it). */
  bufferReady(r: Request, b: Iobuf): void {
    r.usePool(b, r.dataLen);
    r.state = ReqState.Executing;
    this.#haveBuffer(r);
    this.#scheduleFlush();
  }

  // A command rejected before execution; a fused partner fails with it.
  #failEarly(r: Request, status: number): void {
    if (this.#fusedFirst === r) this.#fusedFirst = null;
    const f = r.fused;
    if (f) {
      f.fused = null;
      r.fused = null;
      if (f.state !== ReqState.AwaitH2C)
        this.complete(f, makeStatus(Sct.Generic, GenericStatus.AbortedFailedFused));
    }
    this.complete(r, status);
  }

  #dataReady(r: Request): void {
    if ((r.sqeDv.getUint8(1) & 3) === Fuse.First && r.fused === null) {
      r.state = ReqState.AwaitFused;
      return;
    }
    if (r.fused) {
      this.#fusedReady(r);
      return;
    }
    this.#execute(r);
  }

  // Both halves of a fused Compare and Write execute together once both have all their data.
  #fusedReady(r: Request): void {
    const first = (r.sqeDv.getUint8(1) & 3) === Fuse.First ? r : r.fused!;
    const second = first.fused!;
    if (first.h2cRecv !== first.dataLen || second.h2cRecv !== second.dataLen) {
      if (r.h2cRecv === r.dataLen) r.state = ReqState.AwaitFused;
      return;
    }
    first.state = ReqState.Executing;
    second.state = ReqState.Executing;
    if (first.digestError || second.digestError) {
      this.complete(first, makeStatus(Sct.Generic, GenericStatus.TransientTransportError));
      this.complete(second, makeStatus(Sct.Generic, GenericStatus.AbortedFailedFused));
      return;
    }
    executeFused(this, first, second);
  }

  #execute(r: Request): void {
    r.state = ReqState.Executing;
    if (r.digestError) {
      this.complete(r, makeStatus(Sct.Generic, GenericStatus.TransientTransportError));
      return;
    }
    if (r.opcode === AdminOpcode.Fabrics && r.sqeDv.getUint8(4) === FabricsType.Connect) {
      if (this.ctrlr !== null) {
        this.complete(r, makeStatus(Sct.Generic, GenericStatus.CommandSequenceError));
        return;
      }
      this.owner.connect(this, r);
      this.complete(r, r.status);
      return;
    }
    const c = this.ctrlr!;
    if (this.qid === 0) c.executeAdmin(this, r);
    else if (r.opcode === AdminOpcode.Fabrics) this.#ioFabrics(r);
    else executeIo(this, c, r);
  }

  #ioFabrics(r: Request): void {
    if (r.sqeDv.getUint8(4) === FabricsType.Disconnect) {
      this.#closeAfterFlush = true;
      this.complete(r, 0);
      return;
    }
    this.complete(r, makeStatus(Sct.Generic, GenericStatus.InvalidOpcode));
  }

  #sendR2T(r: Request): void {
    r.state = ReqState.AwaitH2C;
    this.stats.r2ts++;
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const len = HLEN.R2T + hd;
    const tx = this.#tx;
    const o = tx.reserve(len);
    writeCh(tx.dv, o, PduType.R2T, this.hdgst ? PduFlag.HDGSTF : 0, HLEN.R2T, 0, len);
    encodeDataHeader(tx.dv, o, r.cid, r.idx, 0, r.dataLen);
    if (hd) putHeaderDigest(tx.bytes, tx.dv, o, HLEN.R2T);
    tx.commit(len);
    this.#scheduleFlush();
  }

  // ---- completion side ----

  /**
   * Finish a command: `status` (and r.dw0/dw1) go to the host, with r.c2hLen bytes of r.buf as
   * C2HData first when it succeeded. Frees the request.
   */
  complete(r: Request, status: number): void {
    r.status = status;
    if (this.qid > 0 && r.opcode !== AdminOpcode.Fabrics) this.stats.completedIo++;
    if (this.#phase === Phase.Closed) {
      this.#release(r);
      return;
    }
    if (status === 0 && r.c2hLen > 0 && this.ddgst && !this.#digests(r)) return; // #digestsDone sends
    this.#completeData(r);
  }

  /**
   * The data digest of each C2HData PDU of `r` into r.ddgsts, through the owner's accel channel.
   * True when they are there now; false when an engine has them (#digestsDone goes on).
   */
  #digests(r: Request): boolean {
    const n = Math.min(r.c2hLen, r.dataLen);
    const chunk = this.#c2hChunk();
    const k = Math.ceil(n / chunk);
    if (r.ddgsts.length < k) r.ddgsts = new Uint32Array(k);
    const accel = this.owner.accel;
    for (let i = 0; i < k; i++) {
      const off = i * chunk;
      const len = Math.min(chunk, n - off);
      if (accel == null) {
        r.ddgsts[i] = crc32cRange(r.buf, off, off + len);
        continue;
      }
      const crc = accel.crc32cNow(r.buf, off, len, 0);
      if (crc !== ACCEL_EAGAIN) {
        r.ddgsts[i] = crc;
        continue;
      }
      // The rest to the engine, as one batch: one callback for the command.
      const b = accel.batch();
      let ok = b !== null;
      for (let j = i; ok && j < k; j++) {
        const o = j * chunk;
        ok =
          (b as NonNullable<typeof b>).appendCrc32c(r.buf, o, Math.min(chunk, n - o), 0, r.ddgsts, j) === 0;
      }
      if (ok && (b as NonNullable<typeof b>).submit(this.#digestsDone, r) === 0) {
        this.stats.digestsOffloaded++;
        return false;
      }
      if (b !== null && !ok) b.abort();
      // No free task or sequence on the channel now: this CPU computes the rest.
      for (let j = i; j < k; j++) {
        const o = j * chunk;
        r.ddgsts[j] = crc32cRange(r.buf, o, o + Math.min(chunk, n - o));
      }
      this.stats.digestsInline++;
      return true;
    }
    return true;
  }

  readonly #digestsDone = (r: Request, status: number): void => {
    if (this.#phase === Phase.Closed) {
      this.#release(r);
      return;
    }
    if (status !== 0) {
      // The engine failed: the command fails rather than go out with a wrong digest.
      this.stats.internalErrors++;
      r.status = makeStatus(Sct.Generic, GenericStatus.InternalError);
      this.#sendResp(r, r.status);
      this.#release(r);
      return;
    }
    this.#completeData(r);
  };

  /** complete() once the data digests are known. */
  #completeData(r: Request): void {
    const status = r.status;
    const ok = status === 0;
    if (ok && r.c2hLen > 0) {
      const n = Math.min(r.c2hLen, r.dataLen);
      if (n >= C2H_FROM_BUF_MIN && n === r.dataLen && n <= this.#c2hChunk() && this.#tx.gathers) {
        this.#sendC2HFromBuf(r, n);
        return;
      }
      if (this.#sendC2H(r, n)) {
        this.#release(r);
        return;
      }
    }
    this.#sendResp(r, status);
    this.#release(r);
  }

  // Completion for a capsule that never owned its CID (CID conflict): answer without unmapping it.
  #completeDetached(r: Request, status: number): void {
    if (this.qid > 0 && r.opcode !== AdminOpcode.Fabrics) this.stats.completedIo++;
    if (this.#phase !== Phase.Closed) this.#sendResp(r, status);
    this.#recycle(r);
  }

  #sendResp(r: Request, status: number): void {
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const len = HLEN.CapsuleResp + hd;
    const tx = this.#tx;
    const o = tx.reserve(len);
    writeCh(tx.dv, o, PduType.CapsuleResp, this.hdgst ? PduFlag.HDGSTF : 0, HLEN.CapsuleResp, 0, len);
    cqeWrite(tx.dv, o + CH_SIZE, r.dw0, r.dw1, this.#sqhd, Math.max(this.qid, 0), r.cid, status);
    if (hd) putHeaderDigest(tx.bytes, tx.dv, o, HLEN.CapsuleResp);
    tx.commit(len);
    this.#scheduleFlush();
  }

  // Send n bytes as C2HData PDUs; returns true when the last one carried SUCCESS (no CapsuleResp).
  #sendC2H(r: Request, n: number): boolean {
    const chunk = this.#c2hChunk();
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const dd = this.ddgst ? DIGEST_SIZE : 0;
    const pdo = HLEN.C2HData + hd + this.#cpdaPad;
    const success = this.owner.options.c2h_success;
    const tx = this.#tx;
    for (let off = 0, i = 0; off < n; off += chunk, i++) {
      const len = Math.min(chunk, n - off);
      const last = off + len === n;
      const plen = pdo + len + dd;
      const o = tx.reserve(plen);
      let flags = (hd ? PduFlag.HDGSTF : 0) | (dd ? PduFlag.DDGSTF : 0);
      if (last) flags |= PduFlag.LAST_PDU | (success ? PduFlag.SUCCESS : 0);
      writeCh(tx.dv, o, PduType.C2HData, flags, HLEN.C2HData, pdo, plen);
      encodeDataHeader(tx.dv, o, r.cid, 0, off, len);
      if (hd) putHeaderDigest(tx.bytes, tx.dv, o, HLEN.C2HData);
      for (let i = HLEN.C2HData + hd; i < pdo; i++) tx.bytes[o + i] = 0;
      // The whole transfer in one PDU (the usual case) copies from iov[0], a view of exactly those
      // bytes, which copyBytes does without making a view.
      if (off === 0 && len === r.dataLen) copyBytes(r.iov[0], 0, len, tx.bytes, o + pdo);
      else copyBytes(r.buf, off, off + len, tx.bytes, o + pdo);
      if (dd) tx.dv.setUint32(o + pdo + len, r.ddgsts[i], true);
      tx.commit(plen);
    }
    this.#scheduleFlush();
    return success;
  }

  // One C2HData PDU whose data is r.buf itself, sent in order with what was queued before it. The
  // CID is unmapped now (a stray H2CData for it must not touch the buffer being sent), but the
  // request, and so its buffer, stays taken until the socket took the last byte (r.sent).
  #sendC2HFromBuf(r: Request, n: number): void {
    const hd = this.hdgst ? DIGEST_SIZE : 0;
    const dd = this.ddgst ? DIGEST_SIZE : 0;
    const pdo = HLEN.C2HData + hd + this.#cpdaPad;
    const success = this.owner.options.c2h_success;
    const head = r.c2hHead;
    const hdv = r.c2hHeadDv;
    let flags = PduFlag.LAST_PDU | (hd ? PduFlag.HDGSTF : 0) | (dd ? PduFlag.DDGSTF : 0);
    if (success) flags |= PduFlag.SUCCESS;
    writeCh(hdv, 0, PduType.C2HData, flags, HLEN.C2HData, pdo, pdo + n + dd);
    encodeDataHeader(hdv, 0, r.cid, 0, 0, n);
    if (hd) putHeaderDigest(head, hdv, 0, HLEN.C2HData);
    for (let i = HLEN.C2HData + hd; i < pdo; i++) head[i] = 0;
    if (r.c2hHeadView.length !== pdo) r.c2hHeadView = head.subarray(0, pdo);
    const data = r.iov[0];
    let tail = 0;
    const tdv = r.c2hTailDv;
    if (dd) {
      tdv.setUint32(0, r.ddgsts[0], true);
      tail = dd;
    }
    if (!success) {
      const rlen = HLEN.CapsuleResp + hd;
      writeCh(tdv, tail, PduType.CapsuleResp, hd ? PduFlag.HDGSTF : 0, HLEN.CapsuleResp, 0, rlen);
      cqeWrite(tdv, tail + CH_SIZE, r.dw0, r.dw1, this.#sqhd, Math.max(this.qid, 0), r.cid, r.status);
      if (hd) putHeaderDigest(r.c2hTail, tdv, tail, HLEN.CapsuleResp);
      tail += rlen;
    }
    this.#byCid.delete(r.cid, r.idx);
    const tx = this.#tx;
    tx.append(r.c2hHeadView, noop);
    if (tail === 0) {
      tx.append(data, r.sent);
    } else {
      if (r.c2hTailView.length !== tail) r.c2hTailView = r.c2hTail.subarray(0, tail);
      tx.append(data, noop);
      // Released in order: when the tail is taken, so are the header and data before it.
      tx.append(r.c2hTailView, r.sent);
    }
    this.#scheduleFlush();
  }

  // Hosts reuse the CID of an Asynchronous Event Request they gave up on (SPDK's host does, for its
  // shutdown's Property Get CC, after dropping its AERs locally): the AER is never to be answered,
  // so it is forgotten and the new command takes its CID.
  #takeAerCid(r: Request): boolean {
    if (this.qid !== 0 || this.ctrlr === null) return false;
    const aer = this.ctrlr.takeAer(r.cid);
    if (aer === null) return false;
    this.#release(aer);
    return this.#byCid.add(r.cid, r.idx);
  }

  #release(r: Request): void {
    this.#byCid.delete(r.cid, r.idx);
    this.#recycle(r);
  }

  /** Back to the idle stack; its pool buffer back to the pool (which may hand it on at once). */
  #recycle(r: Request): void {
    const b = r.pooled;
    const w = r.wait as IobufEntry;
    if (w.queued) this.owner.iobuf.abort(w);
    r.pooled = null;
    r.reset();
    this.#idle[this.#nidle++] = r.idx;
    if (b !== null) this.owner.iobuf.put(b);
  }

  /** Queue a Disconnect-style close once pending output is flushed. */
  closeAfterFlush(): void {
    this.#closeAfterFlush = true;
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      if (this.owner.scheduleFlush) this.owner.scheduleFlush(this);
      else queueMicrotask(this.#flushFn);
    }
  }

  /** Send what is queued now (for an owner that schedules flushes itself). */
  flushNow(): void {
    if (this.#flushScheduled) this.#flushFn();
  }

  #fatal(fes: number, fei: number, header: Uint8Array | null): void {
    if (this.#phase === Phase.Closed) return;
    this.stats.termReqs++;
    const data = header ? Math.min(header.length, TERM_REQ_MAX_DATA) : 0;
    const tx = this.#tx;
    const o = tx.reserve(HLEN.TermReq + data);
    encodeTermReq(tx.dv, o, PduType.C2HTermReq, fes, fei, data);
    if (header) copyBytes(header, 0, data, tx.bytes, o + HLEN.TermReq);
    tx.commit(HLEN.TermReq + data);
    this.close();
  }

  /** Abort a command that has not reached the backend (waiting for data or its fused partner). */
  tryAbort(cid: number): boolean {
    const r = this.findByCid(cid);
    // Only a fused first half still waiting for its second has not started: anything receiving
    // H2CData would desync the stream if dropped, and backend I/O cannot be recalled.
    if (r?.state === ReqState.NeedBuffer && r.fused === null && this.#fusedFirst !== r) {
      // Waiting for a buffer: nothing has started (SPDK aborts these too).
      this.owner.iobuf.abort(r.wait as IobufEntry);
      this.complete(r, makeStatus(Sct.Generic, GenericStatus.AbortedByRequest));
      return true;
    }
    if (!r || r.state !== ReqState.AwaitFused || r.fused !== null || this.#fusedFirst !== r) return false;
    this.#fusedFirst = null;
    this.complete(r, makeStatus(Sct.Generic, GenericStatus.AbortedByRequest));
    return true;
  }
}
