/**
 * The protocol engine of one iSCSI connection: bytes in (`receive`), PDUs out through a `PduSink`.
 * It knows nothing about sockets, so a reactor poller can drive it as well as `node:net`.
 */
import { type Iobuf, IobufEntry } from '@storkit/block';
import { crc32cRange } from '@storkit/native';
import { Asc, DataDirection, ScsiTask, SenseKey, Status, writeFixedSense } from '@storkit/scsi';
import { TxArena } from './arena.js';
import { IscsiError } from './errors.js';
import { encodeText, type KeyPairs, parseText, type SessionParams, TEXT_LIMIT } from './keys.js';
import { Login } from './login.js';
import {
  BHS_LENGTH,
  CmdFlag,
  DigestResult,
  type EncodeOptions,
  encodePduInto,
  F,
  FLAG_FINAL,
  IOp,
  LoginFlag,
  Pdu,
  PduParser,
  pduLength,
  RESERVED_TAG,
  RejectReason,
  ResFlag,
  set16,
  set32,
  TOp,
} from './pdu.js';
import type { Session } from './session.js';
import type { IscsiTarget, TargetNode } from './target.js';

/**
 * Where the engine's output goes: one call per PDU, in order. `flushed` must be called once per
 * write, in write order, when the sink no longer needs the bytes (they are then reused).
 */
export interface PduSink {
  write(pdu: Uint8Array, flushed: () => void): void;
  /** Flush what was written, then close the transport. */
  close(): void;
}

export interface ConnectionInfo {
  portalGroupTag: number;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export type ConnectionState = 'login' | 'full' | 'closing' | 'closed';

/** Largest text accepted during login and for Text requests (RFC 7143: 8192 by default). */
const LOGIN_MAX_SEGMENT = 65536;

/** A pooled command keeps private data buffers up to this size for the next one. */
const KEEP_PRIVATE = 8192;
const NO_DATA = new Uint8Array(0);

/** A data buffer for a command that waited for one (runs inside the put that freed it). */
function cmdBuffer(b: Iobuf, c: unknown): void {
  const cmd = c as IscsiCmd;
  cmd.waitConn?.bufferReady(cmd, b);
}

/** A SCSI command and its iSCSI transfer state; pooled per connection. */
class IscsiCmd extends ScsiTask {
  conn: Connection | null = null;
  /** The iobuf buffer holding the command's data (given back when the command is released). */
  pooled: Iobuf | null = null;
  /** A transfer above one large buffer: counts against max_large_datain_per_connection. */
  large = false;
  /** Waiting for a data buffer: the command PDU as received (its immediate data included)... */
  held: Uint8Array | null = null;
  /** ...and the unsolicited Data-Out that came meanwhile. */
  readonly heldOut: Uint8Array[] = [];
  /** The connection the buffer wait is for. */
  waitConn: Connection | null = null;
  readonly bufWait = new IobufEntry(cmdBuffer, this);
  /** Holds a CmdSN window slot until it finishes. */
  windowed = false;
  readonly cdbBuf = new Uint8Array(16);
  itt = 0;
  cmdSn = 0;
  edtl = 0;
  isWrite = false;
  isRead = false;
  received = 0;
  /** End of the unsolicited (immediate + unsolicited Data-Out) part of the data. */
  firstBurstEnd = 0;
  unsolicitedDone = false;
  unsolDataSn = 0;
  nextR2tOffset = 0;
  r2tSn = 0;
  executing = false;
  readonly r2ts: R2t[] = [];
}

class R2t {
  ttt = 0;
  offset = 0;
  length = 0;
  received = 0;
  dataSn = 0;
}

export class Connection {
  readonly target: IscsiTarget;
  readonly info: ConnectionInfo;
  state: ConnectionState = 'login';
  session: Session | null = null;
  cid = 0;
  readonly #sink: PduSink;
  readonly #parser: PduParser;
  readonly #bhs = new Uint8Array(BHS_LENGTH);
  readonly #tx = new TxArena();
  readonly #flushed = () => this.#tx.release();
  #statSn = 1;
  /** Digests of what we send: off during login, as negotiated afterwards. */
  readonly #txOpts: EncodeOptions = { headerDigest: false, dataDigest: false, crc32c: crc32cRange };
  /** The peer's MaxRecvDataSegmentLength: largest data segment we may send. */
  #maxSend = 8192;
  readonly #cmds = new Map<number, IscsiCmd>();
  readonly #free: IscsiCmd[] = [];
  readonly #r2tPool: R2t[] = [];
  /** Data-Out that arrived for commands still waiting for their CmdSN, by ITT. */
  readonly #early = new Map<number, Uint8Array[]>();
  readonly #onPdu = (p: Pdu, d: number) => this.#handle(p, d);
  readonly #taskDone = (t: ScsiTask) => this.#complete(t as IscsiCmd);
  #nextTtt = 1;
  // Login state.
  #login: Login | null = new Login(this, {
    hdr: (op, flags) => this.#hdr(op, flags),
    send: (b, data) => this.#send(b, data),
    setStatSn: (sn) => {
      this.#statSn = sn;
    },
    nextStatSn: () => this.#statSn++ >>> 0,
    close: () => {
      this.state = 'closing';
      this.#sink.close();
      this.closed();
    },
    fullFeature: (params) => this.#enterFullFeature(params),
  });
  // Text request continuation: pending request text and pending response text.
  #textIn: Uint8Array[] = [];
  #textOut: Uint8Array | null = null;
  #textOutTtt = 0;
  // NOP-In keepalive.
  #timer: ReturnType<typeof setInterval> | null = null;
  #lastRx = Date.now();
  #pingTtt = 0;
  #pingAt = 0;
  readonly stats = { pdusIn: 0, pdusOut: 0, rejects: 0, bufferWaits: 0 };
  /** Large transfers in flight, and the commands waiting for their turn (oldest first). */
  #largeIn = 0;
  readonly #largeWait: IscsiCmd[] = [];

  constructor(target: IscsiTarget, sink: PduSink, info: ConnectionInfo) {
    this.target = target;
    this.#sink = sink;
    this.info = info;
    this.#parser = new PduParser({
      maxDataSegment: LOGIN_MAX_SEGMENT,
      headerDigest: false,
      dataDigest: false,
      crc32c: crc32cRange,
    });
  }

  /** The first login request has named its initiator and target (or login is over). */
  get identified(): boolean {
    return this.#login === null || this.#login.identified || this.state !== 'login';
  }

  /** Bytes from the transport. Protocol errors end this connection only. */
  receive(chunk: Uint8Array): void {
    if (this.state === 'closed') return;
    this.#lastRx = Date.now();
    try {
      this.#parser.push(chunk, this.#onPdu);
    } catch (e) {
      if (!(e instanceof IscsiError)) throw e;
      this.drop(e.message);
    }
  }

  /** The transport went away (or `drop` finished): release everything. */
  closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const c of this.#cmds.values()) {
      // Executing commands give their window slot and buffers back when they complete.
      if (!c.executing) {
        this.#unwindow(c);
        this.#dropBuffers(c);
      }
      c.conn = null;
    }
    this.#cmds.clear();
    this.#largeWait.length = 0;
    this.#early.clear();
    this.target.connections.delete(this);
    this.session?.connectionGone(this);
  }

  /** Ends this connection at once (protocol error, reinstatement, reset). */
  drop(_why: string): void {
    if (this.state === 'closed') return;
    this.#sink.close();
    this.closed();
  }

  describe() {
    const s = this.session;
    return {
      id: this.cid,
      cid: this.cid,
      tsih: s?.tsih ?? 0,
      initiator_addr: this.info.remoteAddress,
      target_addr: this.info.localAddress,
      target_node_name: s?.node?.name ?? '',
      initiator_name: s?.initiatorName ?? '',
      state: this.state,
    };
  }

  /** Re-runs a PDU stashed by the session until its CmdSN came up. */
  replay(bytes: Uint8Array): void {
    if (this.state !== 'full') return;
    this.#dispatchOrdered(pduFromCompact(bytes), true);
  }

  // ---- receive dispatch

  #handle(p: Pdu, digest: number): void {
    this.stats.pdusIn++;
    if (this.state === 'closed' || this.state === 'closing') return;
    if (digest === DigestResult.DataError) {
      this.#reject(p, RejectReason.DataDigestError);
      this.drop('data digest error');
      return;
    }
    if (this.state === 'login') {
      this.#login?.receive(p);
      return;
    }
    switch (p.opcode) {
      case IOp.DataOut: {
        this.#dataOut(p);
        return;
      }
      case IOp.NopOut:
        if (p.itt === RESERVED_TAG) {
          this.#nopReply(p);
          return;
        }
        {
          this.#ordered(p);
          return;
        }
      case IOp.ScsiCommand:
      case IOp.TaskMgmt:
      case IOp.Text:
      case IOp.Logout: {
        this.#ordered(p);
        return;
      }
      case IOp.Snack: {
        this.#reject(p, RejectReason.SnackReject);
        return;
      }
      default:
        this.#reject(p, RejectReason.ProtocolError);
        {
          this.drop(`unknown opcode 0x${p.opcode.toString(16)}`);
          return;
        }
    }
  }

  /** CmdSN ordering for non-immediate requests (RFC 7143 3.2.2.1). */
  #ordered(p: Pdu): void {
    const s = this.session!;
    if (p.immediate) {
      this.#dispatchOrdered(p, false);
      return;
    }
    const cmdSn = p.u32(F.CmdSn);
    const where = s.classify(cmdSn);
    if (where < 0) return;
    if (where > 0) {
      s.stash(cmdSn, this, compactPdu(p));
      // Unsolicited Data-Out for it may arrive before its turn: keep that too (see #dataOut).
      if (p.opcode === IOp.ScsiCommand && !this.#early.has(p.itt)) this.#early.set(p.itt, []);
      return;
    }
    s.take();
    this.#dispatchOrdered(p, true);
    s.drain();
  }

  /** `windowed`: the PDU took a CmdSN slot (non-immediate). */
  #dispatchOrdered(p: Pdu, windowed: boolean): void {
    switch (p.opcode) {
      case IOp.ScsiCommand: {
        this.#scsiCommand(p, windowed);
        return;
      }
      case IOp.NopOut: {
        this.#nopOut(p);
        return;
      }
      case IOp.TaskMgmt: {
        this.#taskMgmt(p);
        return;
      }
      case IOp.Text: {
        this.#text(p);
        return;
      }
      case IOp.Logout: {
        this.#logout(p);
        return;
      }
    }
  }

  // ---- output helpers

  #hdr(op: number, flags: number): Uint8Array {
    const b = this.#bhs;
    b.fill(0);
    b[0] = op;
    b[1] = flags;
    return b;
  }

  #sn(b: Uint8Array, statSn: boolean): void {
    const s = this.session;
    if (statSn) set32(b, F.StatSn, this.#statSn++ >>> 0);
    else set32(b, F.StatSn, this.#statSn >>> 0);
    set32(b, F.ExpCmdSn, s ? s.expCmdSn : 0);
    set32(b, F.MaxCmdSn, s ? s.maxCmdSn : 0);
  }

  #send(b: Uint8Array, data: Uint8Array | null, off = 0, len = data ? data.length : 0): void {
    if (this.state === 'closed') return;
    this.stats.pdusOut++;
    const out = this.#tx.alloc(pduLength(len, this.#txOpts));
    encodePduInto(out, b, data, off, len, this.#txOpts);
    this.#sink.write(out, this.#flushed);
  }

  #reject(p: Pdu, reason: number): void {
    this.stats.rejects++;
    const b = this.#hdr(TOp.Reject, FLAG_FINAL);
    b[2] = reason;
    set32(b, F.Itt, RESERVED_TAG);
    this.#sn(b, true);
    // The rejected PDU's header goes back as data; copy it first, #bhs is being filled.
    this.#send(b, p.bhs().slice());
  }

  #enterFullFeature(params: SessionParams): void {
    this.state = 'full';
    this.#txOpts.headerDigest = params.headerDigest;
    this.#txOpts.dataDigest = params.dataDigest;
    this.#maxSend = params.maxSendDataSegment;
    this.#parser.limits.headerDigest = params.headerDigest;
    this.#parser.limits.dataDigest = params.dataDigest;
    this.#txOpts.crc32c = this.#parser.limits.crc32c = this.target.crc32c ?? crc32cRange;
    this.#parser.limits.maxDataSegment = this.target.options.max_recv_data_segment_length;
    this.#login = null;
    this.#startKeepalive();
  }

  // ---- full feature phase: SCSI commands

  #allocCmd(): IscsiCmd {
    const c = this.#free.pop() ?? new IscsiCmd();
    c.reset();
    c.conn = this;
    c.received = 0;
    c.unsolicitedDone = false;
    c.unsolDataSn = 0;
    c.r2tSn = 0;
    c.executing = false;
    c.windowed = false;
    this.#freeR2ts(c);
    c.onDone = this.#taskDone;
    return c;
  }

  /** The command no longer holds a CmdSN window slot. */
  #unwindow(c: IscsiCmd): void {
    if (!c.windowed) return;
    c.windowed = false;
    if (this.session) this.session.inFlight--;
  }

  #release(c: IscsiCmd): void {
    this.#unwindow(c);
    this.#dropBuffers(c);
    c.conn = null;
    this.#freeR2ts(c);
    if (this.#free.length < 256) this.#free.push(c);
  }

  /**
   * A buffer for the command's data before it runs (reads) or asks for data (writes): one iobuf
   * buffer when the transfer fits one, else a private one within max_large_datain_per_connection.
   * False: the command waits, and resumes when its turn comes.
   */
  #takeBuffer(c: IscsiCmd): boolean {
    const ch = this.target.iobuf;
    if (ch.fits(c.edtl)) {
      c.waitConn = this;
      const b = ch.get(c.edtl, c.bufWait);
      if (b === null) {
        this.stats.bufferWaits++;
        return false;
      }
      this.#useBuffer(c, b);
      return true;
    }
    if (this.#largeIn >= this.target.options.max_large_datain_per_connection) {
      this.stats.bufferWaits++;
      this.#largeWait.push(c);
      return false;
    }
    this.#largeIn++;
    c.large = true;
    return true;
  }

  #useBuffer(c: IscsiCmd, b: Iobuf): void {
    c.pooled = b;
    if (c.isWrite) c.dataOut = b.bytes;
    else c.dataIn = b.bytes;
  }

  /** @internal A waiting command's buffer is there. */
  bufferReady(c: IscsiCmd, b: Iobuf): void {
    if (c.conn !== this) {
      this.target.iobuf.put(b);
      return;
    }
    this.#useBuffer(c, b);
    this.#resume(c);
  }

  /** A command that waited for its buffer goes on: executes, or takes its data. */
  #resume(c: IscsiCmd): void {
    const held = c.held;
    c.held = null;
    if (held === null) {
      this.#begin(c, null, true);
      return;
    }
    const p = pduFromCompact(held);
    this.#begin(c, p.dataLength > 0 ? p.data() : null, (p.flags & FLAG_FINAL) !== 0);
    const out = c.heldOut.splice(0);
    for (const b of out) if (c.conn === this && !c.executing) this.#dataOut(pduFromCompact(b));
  }

  /** Give the command's buffers back: iobuf ones to the pool, large private ones to the GC. */
  #dropBuffers(c: IscsiCmd): void {
    const ch = this.target.iobuf;
    if (c.bufWait.queued) ch.abort(c.bufWait);
    const w = this.#largeWait.indexOf(c);
    if (w >= 0) this.#largeWait.splice(w, 1);
    c.waitConn = null;
    c.held = null;
    c.heldOut.length = 0;
    const b = c.pooled;
    if (b !== null) {
      c.pooled = null;
      if (c.dataIn === b.bytes) c.dataIn = NO_DATA;
      if (c.dataOut === b.bytes) c.dataOut = NO_DATA;
    }
    if (c.dataIn.length > KEEP_PRIVATE) c.dataIn = NO_DATA;
    if (c.dataOut.length > KEEP_PRIVATE) c.dataOut = NO_DATA;
    if (c.large) {
      c.large = false;
      this.#largeIn--;
      const next = this.state === 'full' ? this.#largeWait.shift() : undefined;
      if (next !== undefined) {
        this.#largeIn++;
        next.large = true;
        this.#resume(next);
      }
    }
    if (b !== null) ch.put(b);
  }

  #scsiCommand(p: Pdu, windowed: boolean): void {
    const s = this.session!;
    if (s.discovery || !s.node) {
      this.#reject(p, RejectReason.ProtocolError);
      return;
    }
    const itt = p.itt;
    if (this.#cmds.has(itt)) {
      this.#reject(p, RejectReason.TaskInProgress);
      return;
    }
    const flags = p.flags;
    const c = this.#allocCmd();
    if (windowed) {
      c.windowed = true;
      s.inFlight++;
    }
    c.itt = itt;
    c.cmdSn = p.u32(F.CmdSn);
    c.edtl = p.u32(F.Edtl);
    c.isWrite = (flags & CmdFlag.Write) !== 0;
    c.isRead = (flags & CmdFlag.Read) !== 0;
    if (p.ahsLength > 0) c.cdb = p.cdb();
    else {
      for (let i = 0; i < 16; i++) c.cdbBuf[i] = p.buf[p.off + F.Cdb + i];
      c.cdb = c.cdbBuf;
    }
    c.lun = p.lun;
    c.nexus = s.nexus;
    c.expectedLength = c.edtl;
    c.direction = c.isWrite ? DataDirection.Write : c.isRead ? DataDirection.Read : DataDirection.None;
    const dlen = p.dataLength;
    if (
      dlen > 0 &&
      (!c.isWrite || !s.params.immediateData || dlen > c.edtl || dlen > s.params.firstBurstLength)
    ) {
      this.#release(c);
      this.#reject(p, RejectReason.ProtocolError);
      this.drop('bad immediate data');
      return;
    }
    this.#cmds.set(itt, c);
    if (c.edtl > 0 && (c.isWrite || c.isRead) && !this.#takeBuffer(c)) {
      // Nothing is lost while it waits: the command's PDU (with any immediate data) is kept.
      if (c.isWrite) c.held = compactPdu(p);
      return;
    }
    this.#begin(c, dlen > 0 ? p.data() : null, (flags & FLAG_FINAL) !== 0);
  }

  /** A command with its data buffer: execute it, or take its data (`immediate`, then Data-Out). */
  #begin(c: IscsiCmd, immediate: Uint8Array | null, final: boolean): void {
    if (!c.isWrite || c.edtl === 0) {
      this.#execute(c);
      return;
    }
    const s = this.session!;
    const dlen = immediate === null ? 0 : immediate.length;
    const buf = c.ensureDataOut(c.edtl);
    if (immediate !== null) buf.set(immediate, 0);
    c.received = dlen;
    c.firstBurstEnd = s.params.initialR2T ? dlen : Math.min(s.params.firstBurstLength, c.edtl);
    c.unsolicitedDone = c.received >= c.firstBurstEnd || final;
    c.nextR2tOffset = c.unsolicitedDone ? c.received : c.firstBurstEnd;
    this.#progressWrite(c);
    const itt = c.itt;
    const early = this.#early.get(itt);
    if (early) {
      this.#early.delete(itt);
      for (const b of early) if (c.conn === this && !c.executing) this.#dataOut(pduFromCompact(b));
    }
  }

  /** After more data arrived: execute when complete, else keep R2Ts outstanding. */
  #progressWrite(c: IscsiCmd): void {
    if (c.received >= c.edtl) {
      this.#execute(c);
      return;
    }
    if (!c.unsolicitedDone) return;
    const s = this.session!;
    while (c.r2ts.length < s.params.maxOutstandingR2T && c.nextR2tOffset < c.edtl) {
      const r = this.#r2tPool.pop() ?? new R2t();
      r.received = 0;
      r.dataSn = 0;
      r.ttt = this.#ttt();
      r.offset = c.nextR2tOffset;
      r.length = Math.min(s.params.maxBurstLength, c.edtl - r.offset);
      c.nextR2tOffset += r.length;
      c.r2ts.push(r);
      const b = this.#hdr(TOp.R2t, FLAG_FINAL);
      putLun(b, c.lun);
      set32(b, F.Itt, c.itt);
      set32(b, F.Ttt, r.ttt);
      this.#sn(b, false);
      set32(b, F.DataSn, c.r2tSn++);
      set32(b, F.BufferOffset, r.offset);
      set32(b, F.DesiredLength, r.length);
      this.#send(b, null);
    }
  }

  #ttt(): number {
    const t = this.#nextTtt;
    this.#nextTtt = this.#nextTtt >= 0x7fffffff ? 1 : this.#nextTtt + 1;
    return t;
  }

  #freeR2ts(c: IscsiCmd): void {
    const r2ts = c.r2ts;
    // Most commands (reads, immediate-data writes) never had one: setting an array's length is a
    // runtime call even when it does not change (1.4% of a target core at 200 k IOPS).
    if (r2ts.length === 0) return;
    for (let i = 0; i < r2ts.length; i++) this.#r2tPool.push(r2ts[i]);
    r2ts.length = 0;
  }

  #dataOut(p: Pdu): void {
    const c = this.#cmds.get(p.itt);
    const early = c ? undefined : this.#early.get(p.itt);
    if (early) {
      // The command waits for its CmdSN: hold its unsolicited data, bounded by FirstBurstLength.
      const held = early.reduce((n, b) => n + b.length, 0);
      if (held + p.dataLength > this.session!.params.firstBurstLength + BHS_LENGTH * 64) {
        this.#protocolError(p, 'too much unsolicited data for a waiting command');
        return;
      }
      early.push(compactPdu(p));
      return;
    }
    if (c !== undefined && c.held !== null) {
      // Its command waits for a buffer: keep the unsolicited data, bounded by FirstBurstLength.
      const held = c.heldOut.reduce((n, b) => n + b.length, 0);
      if (held + p.dataLength > this.session!.params.firstBurstLength + BHS_LENGTH * 64) {
        this.#protocolError(p, 'too much unsolicited data for a waiting command');
        return;
      }
      c.heldOut.push(compactPdu(p));
      return;
    }
    if (!c || c.executing || !c.isWrite) {
      this.#reject(p, RejectReason.InvalidPduField);
      return;
    }
    const ttt = p.u32(F.Ttt);
    const off = p.u32(F.BufferOffset);
    const len = p.dataLength;
    const dsn = p.u32(F.DataSn);
    let r: R2t | undefined;
    if (ttt === RESERVED_TAG) {
      if (c.unsolicitedDone || dsn !== c.unsolDataSn || off !== c.received || off + len > c.firstBurstEnd) {
        this.#dataSequenceError(c);
        return;
      }
      c.unsolDataSn++;
    } else {
      r = findR2t(c.r2ts, ttt);
      if (!r) {
        this.#reject(p, RejectReason.InvalidPduField);
        return;
      }
      if (dsn !== r.dataSn || off !== r.offset + r.received || r.received + len > r.length) {
        this.#dataSequenceError(c);
        return;
      }
      r.dataSn++;
      r.received += len;
    }
    c.dataOut.set(p.data(), off);
    c.received += len;
    if (r && r.received === r.length) {
      c.r2ts.splice(c.r2ts.indexOf(r), 1);
      this.#r2tPool.push(r);
    }
    if (!r && ((p.flags & FLAG_FINAL) !== 0 || c.received >= c.firstBurstEnd)) {
      c.unsolicitedDone = true;
      if (c.nextR2tOffset < c.received) c.nextR2tOffset = c.received;
    }
    this.#progressWrite(c);
  }

  #protocolError(p: Pdu, why: string): void {
    this.#reject(p, RejectReason.ProtocolError);
    this.drop(why);
  }

  /**
   * Data-Out out of sequence (wrong DataSN or offset). At ErrorRecoveryLevel 0 nothing can be
   * retransmitted: end the task with CHECK CONDITION (ABORTED COMMAND, DATA PHASE ERROR) and keep
   * the connection; later Data-Out PDUs for it are rejected as unknown tasks.
   */
  #dataSequenceError(c: IscsiCmd): void {
    c.status = Status.CheckCondition;
    c.senseLength = writeFixedSense(c.sense, SenseKey.AbortedCommand, Asc.DataPhaseError);
    c.transferLength = c.edtl;
    c.isRead = false;
    this.#complete(c);
  }

  #execute(c: IscsiCmd): void {
    c.executing = true;
    c.dataOutLength = c.isWrite ? c.received : 0;
    this.session!.node!.device.execute(c);
  }

  #complete(c: IscsiCmd): void {
    // The slot reopens before the response goes out, so the response's MaxCmdSN shows it.
    this.#unwindow(c);
    if (c.conn !== this || this.state === 'closed') {
      // The connection went while it ran: nothing to send, but its buffers go back.
      this.#dropBuffers(c);
      return;
    }
    if (this.#cmds.get(c.itt) === c) this.#cmds.delete(c.itt);
    if (c.aborted) {
      this.#release(c);
      return;
    }
    const total = c.isRead ? Math.min(c.dataInLength, c.edtl) : 0;
    let resFlags = 0;
    let residual = 0;
    if (c.status === Status.Good || c.transferLength !== 0 || c.isWrite) {
      if (c.transferLength > c.edtl) {
        resFlags = ResFlag.Overflow;
        residual = c.transferLength - c.edtl;
      } else if (c.transferLength < c.edtl) {
        resFlags = ResFlag.Underflow;
        residual = c.edtl - c.transferLength;
      }
    }
    const collapse = c.status === Status.Good && c.senseLength === 0 && total > 0;
    const dataSn = this.#sendDataIn(c, total, collapse, resFlags, residual);
    if (!collapse) this.#sendResponse(c, resFlags, residual, dataSn);
    this.#release(c);
  }

  #sendDataIn(c: IscsiCmd, total: number, collapse: boolean, resFlags: number, residual: number): number {
    const s = this.session!;
    const seg = this.#maxSend;
    const burst = s.params.maxBurstLength;
    let off = 0;
    let dataSn = 0;
    while (off < total) {
      const n = Math.min(seg, total - off, burst - (off % burst));
      const last = off + n === total;
      let flags = last || (off + n) % burst === 0 ? FLAG_FINAL : 0;
      if (last && collapse) flags |= ResFlag.Status | resFlags;
      const b = this.#hdr(TOp.DataIn, flags);
      if (last && collapse) b[3] = c.status;
      set32(b, F.Itt, c.itt);
      set32(b, F.Ttt, RESERVED_TAG);
      this.#sn(b, last && collapse);
      set32(b, F.DataSn, dataSn++);
      set32(b, F.BufferOffset, off);
      if (last && collapse) set32(b, F.ResidualCount, residual);
      this.#send(b, c.dataIn, off, n);
      off += n;
    }
    return dataSn;
  }

  #sendResponse(c: IscsiCmd, resFlags: number, residual: number, dataSn: number): void {
    const b = this.#hdr(TOp.ScsiResponse, FLAG_FINAL | resFlags);
    b[2] = 0;
    b[3] = c.status;
    set32(b, F.Itt, c.itt);
    this.#sn(b, true);
    set32(b, F.DataSn, dataSn);
    set32(b, F.ResidualCount, residual);
    if (c.senseLength > 0) {
      const d = new Uint8Array(2 + c.senseLength);
      d[0] = c.senseLength >>> 8;
      d[1] = c.senseLength & 0xff;
      d.set(c.sense.subarray(0, c.senseLength), 2);
      this.#send(b, d);
    } else this.#send(b, null);
  }

  // ---- NOP, text, logout, task management

  #nopOut(p: Pdu): void {
    const b = this.#hdr(TOp.NopIn, FLAG_FINAL);
    b.set(p.buf.subarray(p.off + F.Lun, p.off + F.Lun + 8), F.Lun);
    set32(b, F.Itt, p.itt);
    set32(b, F.Ttt, RESERVED_TAG);
    this.#sn(b, true);
    this.#send(b, p.data().slice());
  }

  /** NOP-Out answering our NOP-In ping (ITT reserved): no response, just clears the ping. */
  #nopReply(p: Pdu): void {
    if (p.u32(F.Ttt) === this.#pingTtt) this.#pingTtt = 0;
  }

  #startKeepalive(): void {
    const o = this.target.options;
    if (o.nop_in_interval <= 0) return;
    const periodMs = Math.min(o.nop_in_interval * 1000, 1000);
    this.#timer = setInterval(() => this.#keepalive(), periodMs);
    this.#timer.unref?.();
  }

  #keepalive(): void {
    const o = this.target.options;
    const now = Date.now();
    if (this.#pingTtt !== 0) {
      if (now - this.#pingAt > o.nop_timeout * 1000) this.drop('NOP-In ping timed out');
      return;
    }
    if (now - this.#lastRx < o.nop_in_interval * 1000) return;
    this.sendPing();
  }

  /** Sends a NOP-In that asks the initiator for a NOP-Out (liveness check). */
  sendPing(): void {
    this.#pingTtt = this.#ttt();
    this.#pingAt = Date.now();
    const b = this.#hdr(TOp.NopIn, FLAG_FINAL);
    set32(b, F.Itt, RESERVED_TAG);
    set32(b, F.Ttt, this.#pingTtt);
    this.#sn(b, false);
    this.#send(b, null);
  }

  /** Asks the initiator to log out (Async Message, AsyncEvent 1) within `seconds`. */
  requestLogout(seconds = 5): void {
    const b = this.#hdr(TOp.AsyncMessage, FLAG_FINAL);
    set32(b, F.Itt, RESERVED_TAG);
    this.#sn(b, false);
    b[36] = 1;
    set16(b, 40, 0);
    set16(b, 42, 0);
    set16(b, 44, seconds);
    this.#send(b, null);
  }

  #text(p: Pdu): void {
    const ttt = p.u32(F.Ttt);
    const flags = p.flags;
    if (ttt !== RESERVED_TAG && this.#textOut && ttt === this.#textOutTtt) {
      this.#sendTextChunk(p.itt);
      return;
    }
    this.#textOut = null;
    this.#textIn.push(p.data().slice());
    const size = this.#textIn.reduce((a, b) => a + b.length, 0);
    if (size > TEXT_LIMIT) {
      this.#textIn = [];
      this.#reject(p, RejectReason.ProtocolError);
      return;
    }
    if (flags & LoginFlag.Continue) {
      const b = this.#hdr(TOp.TextResponse, 0);
      set32(b, F.Itt, p.itt);
      set32(b, F.Ttt, this.#ttt());
      this.#sn(b, true);
      this.#send(b, null);
      return;
    }
    let pairs: KeyPairs;
    try {
      pairs = parseText(Buffer.concat(this.#textIn));
    } catch {
      this.#textIn = [];
      this.#reject(p, RejectReason.ProtocolError);
      return;
    }
    this.#textIn = [];
    const answer: KeyPairs = [];
    for (const [k, v] of pairs) {
      if (k === 'SendTargets') answer.push(...this.#sendTargets(v));
      else answer.push([k, 'NotUnderstood']);
    }
    this.#textOut = encodeText(answer);
    this.#textOutTtt = this.#ttt();
    this.#sendTextChunk(p.itt);
  }

  #sendTextChunk(itt: number): void {
    const out = this.#textOut!;
    const n = Math.min(out.length, this.#maxSend);
    const last = n === out.length;
    const b = this.#hdr(TOp.TextResponse, last ? FLAG_FINAL : LoginFlag.Continue);
    set32(b, F.Itt, itt);
    set32(b, F.Ttt, last ? RESERVED_TAG : this.#textOutTtt);
    this.#sn(b, true);
    this.#send(b, out, 0, n);
    this.#textOut = last ? null : out.subarray(n);
  }

  #sendTargets(v: string): KeyPairs {
    const s = this.session!;
    const out: KeyPairs = [];
    const t = this.target;
    let nodes: TargetNode[];
    if (v === 'All') nodes = s.discovery ? [...t.nodes.values()] : s.node ? [s.node] : [];
    else if (v === '') nodes = s.node ? [s.node] : [];
    else nodes = [...t.nodes.values()].filter((n) => n.name === v);
    for (const n of nodes) {
      const maps = n.params.pg_ig_maps.filter((m) => {
        const g = t.initiatorGroups.get(m.ig_tag);
        return g !== undefined && t.permitted(n, m.pg_tag, s.initiatorName, this.info.remoteAddress);
      });
      if (maps.length === 0) continue;
      out.push(['TargetName', n.name]);
      for (const m of maps) {
        for (const portal of t.portalGroups.get(m.pg_tag)?.portals ?? []) {
          const any = portal.host === '0.0.0.0' || portal.host === '::' || portal.host === '[::]';
          const host = any ? this.info.localAddress : portal.host;
          const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
          out.push(['TargetAddress', `${h}:${portal.port},${m.pg_tag}`]);
        }
      }
    }
    return out;
  }

  #logout(p: Pdu): void {
    const reason = p.flags & 0x7f;
    const cid = p.u16(20);
    let response = 0;
    const s = this.session!;
    if (reason === 2) response = 2;
    else if (reason === 1 && cid !== this.cid) {
      const other = [...s.conns].find((c) => c.cid === cid);
      if (other) other.drop('logged out by another connection');
      else response = 1;
    } else if (reason > 2) {
      this.#reject(p, RejectReason.ProtocolError);
      return;
    }
    const b = this.#hdr(TOp.LogoutResponse, FLAG_FINAL);
    b[2] = response;
    set32(b, F.Itt, p.itt);
    this.#sn(b, true);
    set16(b, 40, s.params.defaultTime2Wait);
    set16(b, 42, s.params.defaultTime2Retain);
    this.#send(b, null);
    if (response !== 0 || (reason === 1 && cid !== this.cid)) return;
    if (reason === 0) {
      for (const c of [...s.conns]) if (c !== this) c.drop('session logged out');
    }
    this.state = 'closing';
    this.#sink.close();
    this.closed();
  }

  #taskMgmt(p: Pdu): void {
    const s = this.session!;
    const fn = p.flags & 0x7f;
    let response = 0;
    let cold = false;
    if (s.discovery || !s.node) response = 5;
    else {
      const dev = s.node.device;
      const lun = p.lun;
      switch (fn) {
        case 1:
          response = this.#abortTask(p.u32(F.RefTaskTag), p.u32(F.RefCmdSn), p.u32(F.CmdSn));
          break;
        case 2:
        case 4:
          if (!dev.lun(lun)) response = 2;
          else this.#abortWhere((c) => c.lun === lun, fn === 4);
          break;
        case 5: {
          const l = dev.lun(lun);
          if (!l) response = 2;
          else {
            this.#abortWhere((c) => c.lun === lun, true);
            l.resetLun();
          }
          break;
        }
        case 6:
        case 7:
          this.#abortWhere(() => true, true);
          dev.resetTarget();
          cold = fn === 7;
          break;
        case 8:
          response = 4;
          break;
        default:
          response = 5;
      }
    }
    const b = this.#hdr(TOp.TaskMgmtResponse, FLAG_FINAL);
    b[2] = response;
    set32(b, F.Itt, p.itt);
    this.#sn(b, true);
    this.#send(b, null);
    if (cold) {
      // TARGET COLD RESET ends every session of the target node after the response.
      for (const other of [...this.target.sessions.values()]) if (other.node === s.node) other.drop();
    }
  }

  #abortTask(rtt: number, refCmdSn: number, tmfCmdSn: number): number {
    for (const conn of this.session!.conns) {
      const c = conn.#cmds.get(rtt);
      if (c) {
        c.aborted = true;
        conn.#cmds.delete(rtt);
        if (!c.executing) conn.#release(c);
        return 0;
      }
    }
    // Not found (RFC 7143 11.5.1, ABORT TASK): a RefCmdSN inside the CmdSN window and before the
    // TMF's own CmdSN names a command not received yet: Function complete. Below ExpCmdSN the task
    // already completed and its response went out (or it never existed): Task does not exist,
    // never Function complete, or the initiator sees a task both answered and aborted.
    const s = this.session!;
    const ref = (refCmdSn - s.expCmdSn) >>> 0;
    const own = (tmfCmdSn - s.expCmdSn) >>> 0;
    return ref < own && ref < 0x80000000 ? 0 : 1;
  }

  /** Aborts this session's matching tasks; `allSessions` extends to other sessions on the node. */
  #abortWhere(match: (c: IscsiCmd) => boolean, allSessions: boolean): void {
    const s = this.session!;
    const sessions = allSessions ? [...this.target.sessions.values()].filter((x) => x.node === s.node) : [s];
    for (const sess of sessions) {
      for (const conn of sess.conns) {
        for (const [itt, c] of conn.#cmds) {
          if (!match(c)) continue;
          c.aborted = true;
          conn.#cmds.delete(itt);
          if (!c.executing) conn.#release(c);
        }
      }
    }
  }

  /** Statistics of the data-out buffer accounting: exposed for tests. */
  get outstanding(): number {
    return this.#cmds.size;
  }
}

/** A PDU's header segments and data, without digests or padding, as one buffer. */
function compactPdu(p: Pdu): Uint8Array {
  const hdr = BHS_LENGTH + p.ahsLength;
  const out = new Uint8Array(hdr + p.dataLength);
  out.set(p.buf.subarray(p.off, p.off + hdr), 0);
  out.set(p.data(), hdr);
  return out;
}

function pduFromCompact(bytes: Uint8Array): Pdu {
  const p = new Pdu();
  p.buf = bytes;
  p.off = 0;
  p.ahsLength = bytes[F.TotalAhsLength] * 4;
  p.dataLength = (bytes[5] << 16) | (bytes[6] << 8) | bytes[7];
  p.dataOff = BHS_LENGTH + p.ahsLength;
  return p;
}

function findR2t(list: R2t[], ttt: number): R2t | undefined {
  for (let i = 0; i < list.length; i++) if (list[i].ttt === ttt) return list[i];
  return undefined;
}

/** LUN field, single-level addressing (peripheral below 256, flat above). */
function putLun(b: Uint8Array, lun: number): void {
  b[F.Lun] = lun > 255 ? 0x40 | (lun >>> 8) : 0;
  b[F.Lun + 1] = lun & 0xff;
}
