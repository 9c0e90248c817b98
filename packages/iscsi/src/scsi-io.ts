/**
 * The SCSI command path of one connection (SPDK's iscsi.c scsi_cmd / data_out / r2t / data_in
 * part): commands and their data buffers, unsolicited and solicited Data-Out, R2Ts, Data-In and
 * the SCSI Response. Pooled commands and R2Ts: nothing is allocated per PDU on this path.
 */
import { type Iobuf, IobufEntry } from '@storkit/block';
import { Asc, DataDirection, ScsiTask, SenseKey, Status, writeFixedSense } from '@storkit/scsi';
import type { Connection } from './connection.js';
import {
  BHS_LENGTH,
  CmdFlag,
  compactPdu,
  F,
  FLAG_FINAL,
  type Pdu,
  pduFromCompact,
  RESERVED_TAG,
  RejectReason,
  ResFlag,
  set32,
  TOp,
} from './pdu.js';
import type { PduTx } from './pdu-tx.js';

/** A pooled command keeps private data buffers up to this size for the next one. */
const KEEP_PRIVATE = 8192;
const NO_DATA = new Uint8Array(0);

/** A data buffer for a command that waited for one (runs inside the put that freed it). */
function cmdBuffer(b: Iobuf, c: unknown): void {
  const cmd = c as IscsiCmd;
  cmd.waitIo?.bufferReady(cmd, b);
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
  /** The command path the buffer wait is for. */
  waitIo: ScsiIo | null = null;
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

export class ScsiIo {
  readonly #conn: Connection;
  readonly #tx: PduTx;
  readonly #cmds = new Map<number, IscsiCmd>();
  readonly #free: IscsiCmd[] = [];
  readonly #r2tPool: R2t[] = [];
  /** Data-Out that arrived for commands still waiting for their CmdSN, by ITT. */
  readonly #early = new Map<number, Uint8Array[]>();
  readonly #taskDone = (t: ScsiTask) => this.#complete(t as IscsiCmd);
  /** Large transfers in flight, and the commands waiting for their turn (oldest first). */
  #largeIn = 0;
  readonly #largeWait: IscsiCmd[] = [];

  constructor(conn: Connection, tx: PduTx) {
    this.#conn = conn;
    this.#tx = tx;
  }

  /** A command stashed until its CmdSN comes up: its unsolicited Data-Out is kept meanwhile. */
  waitsForCmdSn(itt: number): void {
    if (!this.#early.has(itt)) this.#early.set(itt, []);
  }

  /** The connection is gone: executing commands give their slot and buffers back when they complete. */
  closed(): void {
    for (const c of this.#cmds.values()) {
      if (!c.executing) {
        this.#unwindow(c);
        this.#dropBuffers(c);
      }
      c.conn = null;
    }
    this.#cmds.clear();
    this.#largeWait.length = 0;
    this.#early.clear();
  }

  /** ABORT TASK of the command with ITT `rtt` on this connection; false when it has none. */
  abortTask(rtt: number): boolean {
    const c = this.#cmds.get(rtt);
    if (!c) return false;
    c.aborted = true;
    this.#cmds.delete(rtt);
    if (!c.executing) this.#release(c);
    return true;
  }

  /** Aborts this connection's tasks that `match`. */
  abortWhere(match: (c: ScsiTask) => boolean): void {
    for (const [itt, c] of this.#cmds) {
      if (!match(c)) continue;
      c.aborted = true;
      this.#cmds.delete(itt);
      if (!c.executing) this.#release(c);
    }
  }

  /** Commands in flight on this connection. */
  get outstanding(): number {
    return this.#cmds.size;
  }

  #allocCmd(): IscsiCmd {
    const c = this.#free.pop() ?? new IscsiCmd();
    c.reset();
    c.conn = this.#conn;
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
    if (this.#conn.session) this.#conn.session.inFlight--;
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
    const ch = this.#conn.target.iobuf;
    if (ch.fits(c.edtl)) {
      c.waitIo = this;
      const b = ch.get(c.edtl, c.bufWait);
      if (b === null) {
        this.#conn.stats.bufferWaits++;
        return false;
      }
      this.#useBuffer(c, b);
      return true;
    }
    if (this.#largeIn >= this.#conn.target.options.max_large_datain_per_connection) {
      this.#conn.stats.bufferWaits++;
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

  /** A waiting command's buffer is there (runs inside the put that freed it). */
  bufferReady(c: IscsiCmd, b: Iobuf): void {
    if (c.conn !== this.#conn) {
      this.#conn.target.iobuf.put(b);
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
    for (const b of out) if (c.conn === this.#conn && !c.executing) this.dataOut(pduFromCompact(b));
  }

  /** Give the command's buffers back: iobuf ones to the pool, large private ones to the GC. */
  #dropBuffers(c: IscsiCmd): void {
    const ch = this.#conn.target.iobuf;
    if (c.bufWait.queued) ch.abort(c.bufWait);
    const w = this.#largeWait.indexOf(c);
    if (w >= 0) this.#largeWait.splice(w, 1);
    c.waitIo = null;
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
      const next = this.#conn.state === 'full' ? this.#largeWait.shift() : undefined;
      if (next !== undefined) {
        this.#largeIn++;
        next.large = true;
        this.#resume(next);
      }
    }
    if (b !== null) ch.put(b);
  }

  /** A SCSI Command PDU in CmdSN order; `windowed`: it took a CmdSN slot. */
  command(p: Pdu, windowed: boolean): void {
    const s = this.#conn.session!;
    if (s.discovery || !s.node) {
      this.#tx.reject(p, RejectReason.ProtocolError);
      return;
    }
    const itt = p.itt;
    if (this.#cmds.has(itt)) {
      this.#tx.reject(p, RejectReason.TaskInProgress);
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
      this.#tx.reject(p, RejectReason.ProtocolError);
      this.#conn.drop('bad immediate data');
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
    const s = this.#conn.session!;
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
      for (const b of early) if (c.conn === this.#conn && !c.executing) this.dataOut(pduFromCompact(b));
    }
  }

  /** After more data arrived: execute when complete, else keep R2Ts outstanding. */
  #progressWrite(c: IscsiCmd): void {
    if (c.received >= c.edtl) {
      this.#execute(c);
      return;
    }
    if (!c.unsolicitedDone) return;
    const s = this.#conn.session!;
    while (c.r2ts.length < s.params.maxOutstandingR2T && c.nextR2tOffset < c.edtl) {
      const r = this.#r2tPool.pop() ?? new R2t();
      r.received = 0;
      r.dataSn = 0;
      r.ttt = this.#tx.ttt();
      r.offset = c.nextR2tOffset;
      r.length = Math.min(s.params.maxBurstLength, c.edtl - r.offset);
      c.nextR2tOffset += r.length;
      c.r2ts.push(r);
      const b = this.#tx.hdr(TOp.R2t, FLAG_FINAL);
      putLun(b, c.lun);
      set32(b, F.Itt, c.itt);
      set32(b, F.Ttt, r.ttt);
      this.#tx.sn(b, false);
      set32(b, F.DataSn, c.r2tSn++);
      set32(b, F.BufferOffset, r.offset);
      set32(b, F.DesiredLength, r.length);
      this.#tx.send(b, null);
    }
  }

  #freeR2ts(c: IscsiCmd): void {
    const r2ts = c.r2ts;
    // Most commands (reads, immediate-data writes) never had one: setting an array's length is a
    // runtime call even when it does not change (1.4% of a target core at 200 k IOPS).
    if (r2ts.length === 0) return;
    for (let i = 0; i < r2ts.length; i++) this.#r2tPool.push(r2ts[i]);
    r2ts.length = 0;
  }

  /** A Data-Out PDU (solicited by an R2T, or unsolicited). */
  dataOut(p: Pdu): void {
    const c = this.#cmds.get(p.itt);
    const early = c ? undefined : this.#early.get(p.itt);
    if (early) {
      // The command waits for its CmdSN: hold its unsolicited data, bounded by FirstBurstLength.
      const held = early.reduce((n, b) => n + b.length, 0);
      if (held + p.dataLength > this.#conn.session!.params.firstBurstLength + BHS_LENGTH * 64) {
        this.#protocolError(p, 'too much unsolicited data for a waiting command');
        return;
      }
      early.push(compactPdu(p));
      return;
    }
    if (c !== undefined && c.held !== null) {
      // Its command waits for a buffer: keep the unsolicited data, bounded by FirstBurstLength.
      const held = c.heldOut.reduce((n, b) => n + b.length, 0);
      if (held + p.dataLength > this.#conn.session!.params.firstBurstLength + BHS_LENGTH * 64) {
        this.#protocolError(p, 'too much unsolicited data for a waiting command');
        return;
      }
      c.heldOut.push(compactPdu(p));
      return;
    }
    if (!c || c.executing || !c.isWrite) {
      this.#tx.reject(p, RejectReason.InvalidPduField);
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
        this.#tx.reject(p, RejectReason.InvalidPduField);
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
    this.#tx.reject(p, RejectReason.ProtocolError);
    this.#conn.drop(why);
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
    this.#conn.session!.node!.device.execute(c);
  }

  #complete(c: IscsiCmd): void {
    // The slot reopens before the response goes out, so the response's MaxCmdSN shows it.
    this.#unwindow(c);
    if (c.conn !== this.#conn || this.#conn.state === 'closed') {
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
    const s = this.#conn.session!;
    const seg = this.#tx.maxSend;
    const burst = s.params.maxBurstLength;
    let off = 0;
    let dataSn = 0;
    while (off < total) {
      const n = Math.min(seg, total - off, burst - (off % burst));
      const last = off + n === total;
      let flags = last || (off + n) % burst === 0 ? FLAG_FINAL : 0;
      if (last && collapse) flags |= ResFlag.Status | resFlags;
      const b = this.#tx.hdr(TOp.DataIn, flags);
      if (last && collapse) b[3] = c.status;
      set32(b, F.Itt, c.itt);
      set32(b, F.Ttt, RESERVED_TAG);
      this.#tx.sn(b, last && collapse);
      set32(b, F.DataSn, dataSn++);
      set32(b, F.BufferOffset, off);
      if (last && collapse) set32(b, F.ResidualCount, residual);
      this.#tx.send(b, c.dataIn, off, n);
      off += n;
    }
    return dataSn;
  }

  #sendResponse(c: IscsiCmd, resFlags: number, residual: number, dataSn: number): void {
    const b = this.#tx.hdr(TOp.ScsiResponse, FLAG_FINAL | resFlags);
    b[2] = 0;
    b[3] = c.status;
    set32(b, F.Itt, c.itt);
    this.#tx.sn(b, true);
    set32(b, F.DataSn, dataSn);
    set32(b, F.ResidualCount, residual);
    if (c.senseLength > 0) {
      const d = new Uint8Array(2 + c.senseLength);
      d[0] = c.senseLength >>> 8;
      d[1] = c.senseLength & 0xff;
      d.set(c.sense.subarray(0, c.senseLength), 2);
      this.#tx.send(b, d);
    } else this.#tx.send(b, null);
  }
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
