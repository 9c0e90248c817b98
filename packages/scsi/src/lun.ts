import { type BlockBackend, IoStatus, type Lba } from '@storkit/block';
import {
  allocationLength,
  be16,
  be32,
  be64,
  decodeRw,
  Op,
  put16,
  put32,
  put64,
  RwFields,
  RwFlag,
  SaIn16,
  SaMaintIn,
} from './cdb.js';
import {
  cdbUsage,
  Limits,
  MODE_PAGES,
  ModePage,
  modePage,
  PageControl,
  SUPPORTED_OPCODES,
  standardInquiry,
  vpdPage,
} from './pages.js';
import { Access, Reservations, validPrType } from './reservations.js';
import { Asc, SenseKey, Status, writeFixedSense } from './sense.js';
import type { Nexus, ScsiTask } from './task.js';

/** Multi-step command stages (task.step). */
const Step = {
  Done: 0,
  Read: 1,
  Write: 2,
  WriteThenFlush: 3,
  Verify: 4,
  OrRead: 5,
  WriteSame: 6,
  Fanout: 7,
  Caw: 8,
  LbaHole: 9,
  LbaData: 10,
  TailRead: 11,
  /** COMPARE AND WRITE miscompared: the medium is read back to find the first differing byte. */
  CawReread: 12,
} as const;

const WS_CHUNK = 1024 * 1024;

/** Backend completions: the task is the context, so no closure is made per I/O. */
function onIo(st: IoStatus, task: ScsiTask): void {
  task.ioHandler(task, st, 0);
}
function onSeek(st: IoStatus, task: ScsiTask, offset: Lba): void {
  task.ioHandler(task, st, offset);
}

/** Opcodes exempt from unit attention reporting (SPC-4 5.14). */
function skipsUnitAttention(op: number): boolean {
  return op === Op.Inquiry || op === Op.ReportLuns || op === Op.RequestSense;
}

function accessOf(op: number): Access {
  switch (op) {
    case Op.Inquiry:
    case Op.ReportLuns:
    case Op.RequestSense:
    case Op.Release6:
    case Op.Release10:
    case Op.MaintenanceIn:
    case Op.PersistentReserveIn:
    case Op.PersistentReserveOut:
    case Op.Reserve6:
    case Op.Reserve10:
      return Access.Free;
    case Op.TestUnitReady:
    case Op.ReadCapacity10:
    case Op.ServiceActionIn16:
      return Access.Meta;
    case Op.Read6:
    case Op.Read10:
    case Op.Read12:
    case Op.Read16:
    case Op.Verify10:
    case Op.Verify12:
    case Op.Verify16:
    case Op.PreFetch10:
    case Op.PreFetch16:
    case Op.ModeSense6:
    case Op.ModeSense10:
    case Op.ReadDefectData10:
    case Op.ReadDefectData12:
      return Access.Read;
    default:
      return Access.Write;
  }
}

/**
 * One SCSI logical unit over a block backend: decodes CDBs, checks them, runs them on the backend
 * and fills status, sense and data-in. Unit attentions and reservations are kept per I_T nexus.
 */
export class LogicalUnit {
  readonly id: number;
  readonly backend: BlockBackend;
  readonly reservations = new Reservations();
  /** Pending unit attentions per nexus id, oldest first (ASC/ASCQ packed). */
  readonly #ua = new Map<number, number[]>();
  readonly #nexuses = new Map<number, Nexus>();
  readonly #rw = new RwFields();
  #wce: boolean;
  readonly #onIo = (t: ScsiTask, st: number, info: number) => this.#ioDone(t, st, info);

  constructor(id: number, backend: BlockBackend) {
    this.id = id;
    this.backend = backend;
    this.#wce = backend.writeCache;
  }

  /** Starts `task`; `task.onDone` runs once it finishes (never inside this call for backend I/O). */
  execute(task: ScsiTask): void {
    const n = task.nexus!;
    if (!this.#nexuses.has(n.id)) this.#nexuses.set(n.id, n);
    task.ioHandler = this.#onIo;
    const op = task.cdb[0];
    if (!skipsUnitAttention(op) && this.#reportUnitAttention(task)) {
      this.#finish(task);
      return;
    }
    const access = accessOf(op);
    if (access !== Access.Free && this.reservations.conflicts(n, access)) {
      task.status = Status.ReservationConflict;
      this.#finish(task);
      return;
    }
    this.#dispatch(task, op);
  }

  /** Queues a unit attention for every nexus known to this LUN except `except`. */
  unitAttention(asc: number, except: Nexus | null = null): void {
    for (const n of this.#nexuses.values()) if (n !== except) this.#queueUa(n, asc);
  }

  /** The nexus is gone (logout, connection loss): drop its SPC-2 reservation and attentions. */
  nexusLost(n: Nexus): void {
    if (this.reservations.legacyHolder?.id === n.id) this.reservations.legacyHolder = null;
    this.#ua.delete(n.id);
    this.#nexuses.delete(n.id);
  }

  /**
   * LUN RESET / target reset: clears SPC-2 reservations and raises a unit attention on every I_T
   * nexus, the one that asked for the reset included (SAM-5 6.3.3).
   */
  resetLun(): void {
    this.reservations.legacyHolder = null;
    this.unitAttention(Asc.PowerOnReset, null);
  }

  #queueUa(n: Nexus, asc: number): void {
    let q = this.#ua.get(n.id);
    if (!q) this.#ua.set(n.id, (q = []));
    if (!q.includes(asc)) q.push(asc);
  }

  #reportUnitAttention(task: ScsiTask): boolean {
    const q = this.#ua.get(task.nexus!.id);
    if (!q || q.length === 0) return false;
    this.#check(task, SenseKey.UnitAttention, q.shift()!);
    return true;
  }

  #dispatch(task: ScsiTask, op: number): void {
    switch (op) {
      case Op.TestUnitReady:
      case Op.StartStopUnit:
      case Op.PreventAllow: {
        this.#finish(task);
        return;
      }
      case Op.RequestSense: {
        this.#requestSense(task);
        return;
      }
      case Op.Inquiry: {
        this.#inquiry(task);
        return;
      }
      case Op.ReadCapacity10: {
        this.#readCapacity10(task);
        return;
      }
      case Op.ServiceActionIn16: {
        this.#serviceActionIn(task);
        return;
      }
      case Op.MaintenanceIn:
        if ((task.cdb[1] & 0x1f) === SaMaintIn.ReportSupportedOpcodes) {
          this.#reportOpcodes(task);
          return;
        }
        {
          this.#invalidField(task);
          return;
        }
      case Op.ModeSense6:
      case Op.ModeSense10: {
        this.#modeSense(task);
        return;
      }
      case Op.ModeSelect6:
      case Op.ModeSelect10: {
        this.#modeSelect(task);
        return;
      }
      case Op.Read6:
      case Op.Read10:
      case Op.Read12:
      case Op.Read16: {
        this.#read(task);
        return;
      }
      case Op.Write6:
      case Op.Write10:
      case Op.Write12:
      case Op.Write16:
      case Op.WriteAtomic16:
      case Op.WriteVerify10:
      case Op.WriteVerify12:
      case Op.WriteVerify16: {
        this.#write(task);
        return;
      }
      case Op.Verify10:
      case Op.Verify12:
      case Op.Verify16: {
        this.#verify(task);
        return;
      }
      case Op.OrWrite16: {
        this.#orWrite(task);
        return;
      }
      case Op.CompareAndWrite: {
        this.#compareAndWrite(task);
        return;
      }
      case Op.WriteSame10:
      case Op.WriteSame16: {
        this.#writeSame(task);
        return;
      }
      case Op.Unmap: {
        this.#unmap(task);
        return;
      }
      case Op.SyncCache10:
      case Op.SyncCache16: {
        this.#syncCache(task);
        return;
      }
      case Op.PreFetch10:
      case Op.PreFetch16: {
        this.#preFetch(task);
        return;
      }
      case Op.ReadDefectData10:
      case Op.ReadDefectData12: {
        this.#readDefectData(task);
        return;
      }
      case Op.Reserve6:
      case Op.Reserve10: {
        this.#reserve(task);
        return;
      }
      case Op.Release6:
      case Op.Release10: {
        this.#release(task);
        return;
      }
      case Op.PersistentReserveIn: {
        this.#prIn(task);
        return;
      }
      case Op.PersistentReserveOut: {
        this.#prOut(task);
        return;
      }
      default:
        this.#check(task, SenseKey.IllegalRequest, Asc.InvalidOpcode);
        {
          this.#finish(task);
          return;
        }
    }
  }

  // ---- completion helpers

  #finish(task: ScsiTask): void {
    task.onDone(task);
  }

  #check(task: ScsiTask, key: number, asc: number, info = -1): void {
    task.status = Status.CheckCondition;
    task.senseLength = writeFixedSense(task.sense, key, asc, info);
    task.dataInLength = 0;
  }

  #invalidField(task: ScsiTask): void {
    this.#check(task, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb);
    this.#finish(task);
  }

  #fail(task: ScsiTask, asc: number): void {
    this.#check(task, SenseKey.IllegalRequest, asc);
    this.#finish(task);
  }

  /** Completes a data-in command that produced `n` bytes, truncated to its allocation length. */
  #dataIn(task: ScsiTask, n: number, alloc: number): void {
    const len = Math.min(n, alloc);
    task.dataInLength = len;
    task.transferLength = len;
    this.#finish(task);
  }

  // ---- block I/O

  /**
   * Decodes and checks LBA range, transfer size and protection fields; false when it finished the
   * task. `transfers`: the blocks travel with the command, so MAXIMUM TRANSFER LENGTH applies (not
   * to WRITE SAME, SYNCHRONIZE CACHE or PRE-FETCH, whose range moves no data).
   */
  #checkRw(task: ScsiTask, protect: boolean, transfers = true): boolean {
    const rw = this.#rw;
    if (!decodeRw(task.cdb, rw)) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return false;
    }
    if (protect && (rw.flags & RwFlag.Protect) !== 0) {
      // No protection information on these LUNs: any *PROTECT value but 0 is invalid.
      this.#fail(task, Asc.InvalidFieldInCdb);
      return false;
    }
    const nb = this.backend.numBlocks;
    if (rw.lba > nb || rw.lba + rw.count > nb) {
      this.#fail(task, Asc.LbaOutOfRange);
      return false;
    }
    if (transfers && rw.count * this.backend.blockSize > Limits.maxTransferBytes) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return false;
    }
    return true;
  }

  /** Checks that the transport delivered exactly `need` bytes of data-out. */
  #checkDataOut(task: ScsiTask, need: number): boolean {
    task.transferLength = need;
    if (task.dataOutLength === need) return true;
    this.#fail(task, Asc.InvalidFieldInInformationUnit);
    return false;
  }

  #writeProtected(task: ScsiTask): boolean {
    if (!this.backend.readOnly) return false;
    this.#check(task, SenseKey.DataProtect, Asc.WriteProtected);
    this.#finish(task);
    return true;
  }

  #read(task: ScsiTask): void {
    if (!this.#checkRw(task, task.cdb[0] !== Op.Read6)) return;
    const { lba, count } = this.#rw;
    const bytes = count * this.backend.blockSize;
    task.transferLength = bytes;
    if (count === 0) {
      this.#finish(task);
      return;
    }
    task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
    task.dataInLength = bytes;
    task.step = Step.Read;
    this.backend.readv(task.iov, lba, count, onIo, task);
  }

  #write(task: ScsiTask): void {
    const op = task.cdb[0];
    const isWv = op === Op.WriteVerify10 || op === Op.WriteVerify12 || op === Op.WriteVerify16;
    if (!this.#checkRw(task, op !== Op.Write6)) return;
    const { lba, count, flags } = this.#rw;
    if (op === Op.WriteAtomic16 && !this.#atomicOk(task, count)) return;
    if (isWv && (flags & RwFlag.ByteCheck) === 0x04) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const bs = this.backend.blockSize;
    task.transferLength = count * bs;
    if (this.#writeProtected(task)) return;
    // The transport may deliver less or more than the CDB asks (iSCSI EDTL != transfer length):
    // write only what both cover (FCP-4 9.4.2 a), a partial last block by read-modify-write.
    const bytes = Math.min(task.dataOutLength, count * bs);
    if (bytes === 0) {
      this.#finish(task);
      return;
    }
    const fua = op !== Op.Write6 && ((flags & RwFlag.Fua) !== 0 || isWv);
    task.cursor = lba;
    task.end = Math.ceil(bytes / bs);
    task.pending = fua && this.#wce ? 1 : 0;
    if (bytes % bs !== 0) {
      task.iov[0] = task.ensureDataIn(bs).subarray(0, bs);
      task.step = Step.TailRead;
      this.backend.readv(task.iov, lba + task.end - 1, 1, onIo, task);
      return;
    }
    this.#writeNow(task);
  }

  /** WRITE ATOMIC: only when the backend guarantees it, within its size, no ATOMIC BOUNDARY. */
  #atomicOk(task: ScsiTask, count: number): boolean {
    const max = this.backend.atomicWriteBlocks ?? 0;
    if (max === 0) {
      this.#fail(task, Asc.InvalidOpcode);
      return false;
    }
    if (count > max || be16(task.cdb, 10) !== 0) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return false;
    }
    return true;
  }

  #writeNow(task: ScsiTask): void {
    task.iov[0] = exact(task.dataOut, task.end * this.backend.blockSize);
    task.step = task.pending ? Step.WriteThenFlush : Step.Write;
    this.backend.writev(task.iov, task.cursor, task.end, onIo, task);
  }

  /** The old last block was read: lay the partial data over it, then write everything. */
  #writeTail(task: ScsiTask): void {
    const bs = this.backend.blockSize;
    const at = (task.end - 1) * bs;
    const have = task.dataOutLength - at;
    const merged = task.dataIn;
    merged.set(task.dataOut.subarray(at, at + have), 0);
    growKeep(task, task.end * bs);
    task.dataOut.set(merged.subarray(0, bs), at);
    this.#writeNow(task);
  }

  #verify(task: ScsiTask): void {
    if (!this.#checkRw(task, true)) return;
    const { lba, count, flags } = this.#rw;
    const bytchk = (flags & RwFlag.ByteCheck) >>> 1;
    const bs = this.backend.blockSize;
    if (bytchk === 2) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const need = bytchk === 0 ? 0 : bytchk === 1 ? count * bs : count === 0 ? 0 : bs;
    if (!this.#checkDataOut(task, need)) return;
    if (count === 0 || bytchk === 0) {
      this.#finish(task);
      return;
    }
    const bytes = count * bs;
    task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
    task.step = Step.Verify;
    task.cursor = bytchk;
    this.backend.readv(task.iov, lba, count, onIo, task);
  }

  #orWrite(task: ScsiTask): void {
    if (!this.#checkRw(task, true)) return;
    const { lba, count } = this.#rw;
    const bytes = count * this.backend.blockSize;
    if (this.#writeProtected(task)) return;
    if (!this.#checkDataOut(task, bytes)) return;
    if (count === 0) {
      this.#finish(task);
      return;
    }
    task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
    task.step = Step.OrRead;
    task.cursor = lba;
    task.end = count;
    this.backend.readv(task.iov, lba, count, onIo, task);
  }

  #compareAndWrite(task: ScsiTask): void {
    if (!this.#checkRw(task, true)) return;
    const { lba, count } = this.#rw;
    if (count > Limits.maxCompareAndWrite) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const bytes = count * this.backend.blockSize;
    task.transferLength = 2 * bytes;
    if (this.#writeProtected(task)) return;
    // A data-out size that disagrees with NUMBER OF LOGICAL BLOCKS means the CDB field is wrong.
    if (task.dataOutLength !== 2 * bytes) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    if (count === 0) {
      this.#finish(task);
      return;
    }
    task.iov[0] = task.dataOut.subarray(0, bytes);
    task.iov2[0] = task.dataOut.subarray(bytes, 2 * bytes);
    task.dataInLength = 0;
    task.step = Step.Caw;
    task.cursor = lba;
    task.end = count;
    this.backend.compareAndWritev(task.iov, task.iov2, lba, count, onIo, task);
  }

  #writeSame(task: ScsiTask): void {
    const cdb = task.cdb;
    // One block travels; the range is bounded by MAXIMUM WRITE SAME LENGTH below.
    if (!this.#checkRw(task, true, false)) return;
    const rw = this.#rw;
    const flags = rw.flags;
    const nb = this.backend.numBlocks;
    const bs = this.backend.blockSize;
    if (flags & (RwFlag.WsAnchor | RwFlag.WsPbdata | RwFlag.WsLbdata)) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const ndob = cdb[0] === Op.WriteSame16 && (flags & RwFlag.WsNdob) !== 0;
    const unmap = (flags & RwFlag.WsUnmap) !== 0;
    if (unmap && !this.backend.unmapSupported) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const count = rw.count === 0 ? nb - rw.lba : rw.count;
    if (count > Limits.maxWriteSameBlocks) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    if (this.#writeProtected(task)) return;
    if (!this.#checkDataOut(task, ndob ? 0 : bs)) return;
    if (count === 0) {
      this.#finish(task);
      return;
    }
    task.cursor = rw.lba;
    task.end = rw.lba + count;
    task.step = Step.Done;
    // UNMAP asks for deallocation whatever the data (LBPRZ: deallocated blocks read as zeroes).
    if (unmap) {
      this.backend.unmap(rw.lba, count, onIo, task);
      return;
    }
    if (ndob || isZero(task.dataOut, bs)) {
      this.backend.writeZeroes(rw.lba, count, onIo, task);
      return;
    }
    // Replicate the block into a chunk-sized pattern once, then write the range chunk by chunk.
    const chunk = Math.min(WS_CHUNK, count * bs);
    const buf = task.ensureDataIn(chunk);
    for (let o = 0; o < chunk; o += bs) buf.set(task.dataOut.subarray(0, bs), o);
    task.step = Step.WriteSame;
    this.#writeSameNext(task);
  }

  #writeSameNext(task: ScsiTask): void {
    const bs = this.backend.blockSize;
    const n = Math.min(task.end - task.cursor, WS_CHUNK / bs);
    if (n <= 0) {
      task.step = Step.Done;
      this.#finish(task);
      return;
    }
    task.iov[0] = task.dataIn.subarray(0, n * bs);
    const at = task.cursor;
    task.cursor += n;
    this.backend.writev(task.iov, at, n, onIo, task);
  }

  #unmap(task: ScsiTask): void {
    const cdb = task.cdb;
    if (!this.backend.unmapSupported) {
      this.#fail(task, Asc.InvalidOpcode);
      return;
    }
    if (cdb[1] & 0x01) {
      this.#fail(task, Asc.InvalidFieldInCdb);
      return;
    }
    const plen = be16(cdb, 7);
    if (!this.#checkDataOut(task, plen)) return;
    if (plen === 0) {
      this.#finish(task);
      return;
    }
    if (plen < 8) {
      this.#fail(task, Asc.ParameterListLengthError);
      return;
    }
    const d = task.dataOut;
    const bdl = be16(d, 2);
    const n = Math.floor(Math.min(bdl, plen - 8) / 16);
    if (n > Limits.maxUnmapDescriptors) {
      this.#fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
    const nb = this.backend.numBlocks;
    for (let i = 0; i < n; i++) {
      const lba = be64(d, 8 + i * 16);
      const cnt = be32(d, 16 + i * 16);
      if (lba + cnt > nb) {
        this.#fail(task, Asc.LbaOutOfRange);
        return;
      }
      if (cnt > Limits.maxUnmapBlocks) {
        this.#fail(task, Asc.InvalidFieldInParameterList);
        return;
      }
    }
    if (this.#writeProtected(task)) return;
    task.step = Step.Fanout;
    task.pending = 1;
    for (let i = 0; i < n; i++) {
      const cnt = be32(d, 16 + i * 16);
      if (cnt === 0) continue;
      task.pending++;
      this.backend.unmap(be64(d, 8 + i * 16), cnt, onIo, task);
    }
    // The extra reference keeps completion out of this call even when no descriptor had blocks.
    this.backend.flush(0, 0, onIo, task);
  }

  #syncCache(task: ScsiTask): void {
    if (!this.#checkRw(task, false, false)) return;
    const { lba, count } = this.#rw;
    task.step = Step.Done;
    this.backend.flush(lba, count === 0 ? this.backend.numBlocks - lba : count, onIo, task);
  }

  #preFetch(task: ScsiTask): void {
    if (!this.#checkRw(task, false, false)) return;
    // RAM and bdev data needs no staging: the range is valid, report that the cache holds it.
    this.#finish(task);
  }

  #readDefectData(task: ScsiTask): void {
    const b = task.ensureDataIn(8);
    const twelve = task.cdb[0] === Op.ReadDefectData12;
    b.fill(0, 0, 8);
    b[1] = task.cdb[twelve ? 1 : 2] & 0x1f;
    this.#dataIn(task, twelve ? 8 : 4, allocationLength(task.cdb));
  }

  #ioDone(task: ScsiTask, st: number, info: number): void {
    if (st !== IoStatus.SUCCESS) {
      this.#ioFailed(task, st, info);
      return;
    }
    switch (task.step) {
      case Step.WriteThenFlush:
        task.step = Step.Done;
        {
          this.backend.flush(task.cursor, task.end, onIo, task);
          return;
        }
      case Step.Verify: {
        this.#verifyCompare(task);
        return;
      }
      case Step.TailRead: {
        this.#writeTail(task);
        return;
      }
      case Step.OrRead: {
        const buf = task.iov[0];
        const d = task.dataOut;
        for (let i = 0; i < buf.length; i++) buf[i] |= d[i];
        task.step = Step.Done;
        this.backend.writev(task.iov, task.cursor, task.end, onIo, task);
        return;
      }
      case Step.WriteSame: {
        this.#writeSameNext(task);
        return;
      }
      case Step.Fanout:
        if (--task.pending > 0) return;
        task.step = Step.Done;
        {
          this.#finish(task);
          return;
        }
      case Step.LbaHole:
      case Step.LbaData: {
        this.#lbaStatusStep(task, info);
        return;
      }
      case Step.CawReread: {
        this.#cawMiscompare(task);
        return;
      }
      default:
        task.step = Step.Done;
        {
          this.#finish(task);
          return;
        }
    }
  }

  #ioFailed(task: ScsiTask, st: number, info: number): void {
    if (task.step === Step.Fanout && --task.pending > 0) {
      task.status = Status.CheckCondition;
      return;
    }
    const step = task.step;
    task.step = Step.Done;
    if (st === IoStatus.MISCOMPARE && step === Step.Caw) {
      // SBC-4 5.3: the sense INFORMATION is the offset of the first byte that differed. The
      // backend says only that one did: read the medium back (rare path) to find it.
      const bytes = task.end * this.backend.blockSize;
      task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
      task.step = Step.CawReread;
      this.backend.readv(task.iov, task.cursor, task.end, onIo, task);
      return;
    }
    if (st === IoStatus.MISCOMPARE || step === Step.CawReread)
      this.#check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, info);
    else if (step === Step.Read || step === Step.Verify || step === Step.OrRead || step === Step.TailRead)
      this.#check(task, SenseKey.MediumError, Asc.UnrecoveredReadError);
    else this.#check(task, SenseKey.MediumError, Asc.WriteError);
    this.#finish(task);
  }

  /** The medium after a COMPARE AND WRITE miscompare: report the first differing byte. */
  #cawMiscompare(task: ScsiTask): void {
    task.step = Step.Done;
    const medium = task.iov[0];
    const d = task.dataOut;
    let at = 0;
    for (let i = 0; i < medium.length; i++) {
      if (medium[i] !== d[i]) {
        at = i;
        break;
      }
    }
    this.#check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, at);
    this.#finish(task);
  }

  #verifyCompare(task: ScsiTask): void {
    task.step = Step.Done;
    const medium = task.iov[0];
    const d = task.dataOut;
    const bs = this.backend.blockSize;
    const one = task.cursor === 3;
    for (let i = 0; i < medium.length; i++) {
      if (medium[i] !== d[one ? i % bs : i]) {
        this.#check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, i);
        break;
      }
    }
    this.#finish(task);
  }

  // ---- inquiry, capacity, mode pages

  #inquiry(task: ScsiTask): void {
    const cdb = task.cdb;
    const alloc = allocationLength(cdb);
    const buf = task.ensureDataIn(1024);
    if (cdb[1] & 0x02) {
      this.#invalidField(task);
      return;
    }
    if ((cdb[1] & 0x01) === 0) {
      if (cdb[2] !== 0) {
        this.#invalidField(task);
        return;
      }
      this.#dataIn(task, standardInquiry(buf), alloc);
      return;
    }
    const n = vpdPage(cdb[2], this.backend, task.nexus, buf);
    if (n < 0) {
      this.#invalidField(task);
      return;
    }
    this.#dataIn(task, n, alloc);
  }

  #readCapacity10(task: ScsiTask): void {
    const cdb = task.cdb;
    if ((cdb[8] & 1) === 0 && be32(cdb, 2) !== 0) {
      this.#invalidField(task);
      return;
    }
    const b = task.ensureDataIn(8);
    const last = this.backend.numBlocks - 1;
    put32(b, 0, Math.min(last, 0xffffffff));
    put32(b, 4, this.backend.blockSize);
    this.#dataIn(task, 8, 8);
  }

  #serviceActionIn(task: ScsiTask): void {
    const cdb = task.cdb;
    const sa = cdb[1] & 0x1f;
    const alloc = allocationLength(cdb);
    if (sa === SaIn16.ReadCapacity16) {
      const b = task.ensureDataIn(32);
      b.fill(0, 0, 32);
      put64(b, 0, this.backend.numBlocks - 1);
      put32(b, 8, this.backend.blockSize);
      // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
      b[13] =
        Math.log2((this.backend.physicalBlockSize ?? this.backend.blockSize) / this.backend.blockSize) & 0x0f;
      if (this.backend.unmapSupported) b[14] = 0xc0; // LBPME, LBPRZ
      this.#dataIn(task, 32, alloc);
      return;
    }
    if (sa === SaIn16.GetLbaStatus) {
      const lba = be64(cdb, 2);
      if (lba >= this.backend.numBlocks) {
        this.#fail(task, Asc.LbaOutOfRange);
        return;
      }
      task.cursor = lba;
      if (!this.backend.seekHole || !this.backend.seekData || !this.backend.unmapSupported) {
        this.#lbaStatusDone(task, this.backend.numBlocks, 0);
        return;
      }
      task.step = Step.LbaHole;
      this.backend.seekHole(lba, onSeek, task);
      return;
    }
    this.#invalidField(task);
  }

  #lbaStatusStep(task: ScsiTask, at: number): void {
    if (task.step === Step.LbaHole) {
      if (at > task.cursor) {
        this.#lbaStatusDone(task, at, 0);
        return;
      }
      task.step = Step.LbaData;
      this.backend.seekData!(task.cursor, onSeek, task);
      return;
    }
    this.#lbaStatusDone(task, at, 1);
  }

  #lbaStatusDone(task: ScsiTask, end: number, state: number): void {
    task.step = Step.Done;
    const b = task.ensureDataIn(24);
    b.fill(0, 0, 24);
    put32(b, 0, 20);
    put64(b, 8, task.cursor);
    put32(b, 16, Math.min(end - task.cursor, 0xffffffff));
    b[20] = state;
    this.#dataIn(task, 24, allocationLength(task.cdb));
  }

  #modeSense(task: ScsiTask): void {
    const cdb = task.cdb;
    const ten = cdb[0] === Op.ModeSense10;
    const dbd = (cdb[1] & 0x08) !== 0;
    const llbaa = ten && (cdb[1] & 0x10) !== 0;
    const pc = cdb[2] >>> 6;
    const page = cdb[2] & 0x3f;
    const subpage = cdb[3];
    if (pc === PageControl.Saved) {
      this.#fail(task, Asc.SavingParametersNotSupported);
      return;
    }
    if (subpage !== 0 && !(page === ModePage.All && subpage === 0xff)) {
      this.#invalidField(task);
      return;
    }
    const b = task.ensureDataIn(512);
    const hdr = ten ? 8 : 4;
    b.fill(0, 0, hdr);
    let o = hdr;
    if (!dbd) {
      const bdl = llbaa ? 16 : 8;
      b.fill(0, o, o + bdl);
      const nb = this.backend.numBlocks;
      if (llbaa) {
        put64(b, o, nb);
        put32(b, o + 12, this.backend.blockSize);
      } else {
        put32(b, o, Math.min(nb, 0xffffffff));
        put32(b, o + 4, this.backend.blockSize & 0xffffff);
      }
      o += bdl;
      if (ten) {
        b[4] = llbaa ? 1 : 0;
        put16(b, 6, bdl);
      } else b[3] = bdl;
    }
    if (page === ModePage.All) {
      for (const p of MODE_PAGES) o += modePage(p, pc, this.#wce, b, o);
    } else {
      const n = modePage(page, pc, this.#wce, b, o);
      if (n < 0) {
        this.#invalidField(task);
        return;
      }
      o += n;
    }
    const dsp = (this.backend.readOnly ? 0x80 : 0) | 0x10; // WP, DPOFUA
    if (ten) {
      put16(b, 0, o - 2);
      b[3] = dsp;
    } else {
      b[0] = o - 1;
      b[2] = dsp;
    }
    this.#dataIn(task, o, allocationLength(cdb));
  }

  #modeSelect(task: ScsiTask): void {
    const cdb = task.cdb;
    const ten = cdb[0] === Op.ModeSelect10;
    if (cdb[1] & 0x01) {
      this.#invalidField(task);
      return;
    }
    const plen = ten ? be16(cdb, 7) : cdb[4];
    if (!this.#checkDataOut(task, plen)) return;
    if (plen === 0) {
      this.#finish(task);
      return;
    }
    const d = task.dataOut;
    const hdr = ten ? 8 : 4;
    if (plen < hdr) {
      this.#fail(task, Asc.ParameterListLengthError);
      return;
    }
    const bdl = ten ? be16(d, 6) : d[3];
    let o = hdr + bdl;
    if (o > plen) {
      this.#fail(task, Asc.ParameterListLengthError);
      return;
    }
    const cur = new Uint8Array(32);
    const mask = new Uint8Array(32);
    let wce = this.#wce;
    while (o < plen) {
      const page = d[o] & 0x3f;
      if (d[o] & 0x40 || o + 2 > plen) {
        this.#fail(task, Asc.InvalidFieldInParameterList);
        return;
      }
      const len = d[o + 1] + 2;
      const n = modePage(page, PageControl.Current, this.#wce, cur, 0);
      modePage(page, PageControl.Changeable, this.#wce, mask, 0);
      if (n < 0 || n !== len || o + len > plen) {
        this.#fail(task, Asc.InvalidFieldInParameterList);
        return;
      }
      for (let i = 2; i < len; i++) {
        if ((d[o + i] ^ cur[i]) & ~mask[i]) {
          this.#fail(task, Asc.InvalidFieldInParameterList);
          return;
        }
      }
      if (page === ModePage.Caching) wce = (d[o + 2] & 0x04) !== 0;
      o += len;
    }
    if (wce !== this.#wce) {
      this.#wce = wce;
      this.unitAttention(Asc.ModeParametersChanged, task.nexus);
    }
    this.#finish(task);
  }

  #reportOpcodes(task: ScsiTask): void {
    const cdb = task.cdb;
    const options = cdb[2] & 0x07;
    const rctd = (cdb[2] & 0x80) !== 0;
    const alloc = allocationLength(cdb);
    const b = task.ensureDataIn(4 + SUPPORTED_OPCODES.length * 20);
    if (options === 0) {
      const size = rctd ? 20 : 8;
      let o = 4;
      for (const info of SUPPORTED_OPCODES) {
        b.fill(0, o, o + size);
        b[o] = info.op;
        if (info.sa >= 0) {
          put16(b, o + 2, info.sa);
          b[o + 5] = 0x01;
        }
        if (rctd) b[o + 5] |= 0x02;
        put16(b, o + 6, info.len);
        if (rctd) put16(b, o + 8, 0x0a);
        o += size;
      }
      put32(b, 0, o - 4);
      this.#dataIn(task, o, alloc);
      return;
    }
    if (options > 3) {
      this.#invalidField(task);
      return;
    }
    const op = cdb[3];
    const sa = be16(cdb, 4);
    const hasSa = SUPPORTED_OPCODES.some((i) => i.op === op && i.sa >= 0);
    if (options === 1 && hasSa) {
      this.#invalidField(task);
      return;
    }
    if (options === 2 && !hasSa && SUPPORTED_OPCODES.some((i) => i.op === op)) {
      this.#invalidField(task);
      return;
    }
    const info = SUPPORTED_OPCODES.find(
      (i) =>
        i.op === op && (options === 1 ? i.sa < 0 : options === 2 ? i.sa === sa : i.sa < 0 || i.sa === sa),
    );
    b.fill(0, 0, 4);
    if (!info) {
      b[1] = 0x01; // not supported
      this.#dataIn(task, 4, alloc);
      return;
    }
    b[1] = 0x03 | (rctd ? 0x80 : 0);
    put16(b, 2, info.len);
    cdbUsage(info, b, 4);
    let o = 4 + info.len;
    if (rctd) {
      b.fill(0, o, o + 12);
      put16(b, o, 0x0a);
      o += 12;
    }
    this.#dataIn(task, o, alloc);
  }

  #requestSense(task: ScsiTask): void {
    const cdb = task.cdb;
    const desc = (cdb[1] & 0x01) !== 0;
    const q = this.#ua.get(task.nexus!.id);
    const asc = q && q.length > 0 ? q.shift()! : Asc.NoAdditional;
    const key = asc === Asc.NoAdditional ? SenseKey.NoSense : SenseKey.UnitAttention;
    const b = task.ensureDataIn(32);
    let n: number;
    if (desc) {
      b.fill(0, 0, 8);
      b[0] = 0x72;
      b[1] = key;
      b[2] = asc >>> 8;
      b[3] = asc & 0xff;
      n = 8;
    } else n = writeFixedSense(b, key, asc);
    this.#dataIn(task, n, allocationLength(cdb));
  }

  // ---- reservations

  #reserve(task: ScsiTask): void {
    const r = this.reservations;
    const n = task.nexus!;
    if (task.cdb[0] === Op.Reserve10 && task.cdb[1] & 0x12) {
      this.#invalidField(task);
      return;
    }
    if ((r.legacyHolder && r.legacyHolder.id !== n.id) || r.keys.size > 0 || r.type !== 0) {
      task.status = Status.ReservationConflict;
      this.#finish(task);
      return;
    }
    r.legacyHolder = n;
    this.#finish(task);
  }

  #release(task: ScsiTask): void {
    const r = this.reservations;
    if (r.legacyHolder?.id === task.nexus!.id) r.legacyHolder = null;
    this.#finish(task);
  }

  #legacyConflict(task: ScsiTask): boolean {
    const h = this.reservations.legacyHolder;
    if (!h || h.id === task.nexus!.id) return false;
    task.status = Status.ReservationConflict;
    this.#finish(task);
    return true;
  }

  #prIn(task: ScsiTask): void {
    if (this.#legacyConflict(task)) return;
    const r = this.reservations;
    const cdb = task.cdb;
    const alloc = allocationLength(cdb);
    const b = task.ensureDataIn(8 + r.keys.size * 64 + 64);
    b.fill(0, 0, 8);
    put32(b, 0, r.generation);
    switch (cdb[1] & 0x1f) {
      case 0: {
        let o = 8;
        for (const e of r.keys.values()) {
          putKey(b, o, e.key);
          o += 8;
        }
        put32(b, 4, o - 8);
        this.#dataIn(task, o, alloc);
        return;
      }
      case 1: {
        if (r.type === 0) {
          this.#dataIn(task, 8, alloc);
          return;
        }
        b.fill(0, 8, 24);
        put32(b, 4, 16);
        putKey(b, 8, r.allRegistrantsType() ? 0n : r.key);
        b[21] = r.type & 0x0f;
        this.#dataIn(task, 24, alloc);
        return;
      }
      case 2:
        b.fill(0, 0, 8);
        put16(b, 0, 8);
        b[2] = 0x10; // CRH: RESERVE/RELEASE follow SPC-4 5.12.3 when PR exist
        b[3] = 0x80; // TMV: the type mask is valid
        b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
        b[5] = 0x01;
        {
          this.#dataIn(task, 8, alloc);
          return;
        }
      case 3: {
        let o = 8;
        for (const e of r.keys.values()) {
          const name = e.nexus.initiatorPort;
          const tidLen = (name.length + 1 + 4 + 3) & ~3;
          const need = o + 24 + tidLen;
          if (b.length < need) break;
          b.fill(0, o, need);
          putKey(b, o, e.key);
          if (r.isHolder(e.nexus)) {
            b[o + 12] = 0x01;
            b[o + 13] = r.type & 0x0f;
          }
          put16(b, o + 18, e.nexus.targetPortId);
          put32(b, o + 20, tidLen);
          b[o + 24] = 0x45; // iSCSI TransportID, format 01b (with ISID)
          put16(b, o + 26, tidLen - 4);
          for (let i = 0; i < name.length; i++) b[o + 28 + i] = name.charCodeAt(i) & 0x7f;
          o = need;
        }
        put32(b, 4, o - 8);
        this.#dataIn(task, o, alloc);
        return;
      }
      default: {
        this.#invalidField(task);
        return;
      }
    }
  }

  #prOut(task: ScsiTask): void {
    if (this.#legacyConflict(task)) return;
    const cdb = task.cdb;
    const sa = cdb[1] & 0x1f;
    const scope = cdb[2] >>> 4;
    const type = cdb[2] & 0x0f;
    const plen = be32(cdb, 5);
    if (sa > 6) {
      this.#invalidField(task);
      return;
    }
    if (!this.#checkDataOut(task, plen)) return;
    if (plen !== 24) {
      this.#fail(task, Asc.ParameterListLengthError);
      return;
    }
    const d = task.dataOut;
    const key = readKey(d, 0);
    const sark = readKey(d, 8);
    const flags = d[20];
    if (flags & 0x0d) {
      this.#fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
    const r = this.reservations;
    const n = task.nexus!;
    const mine = r.keyOf(n);
    const conflict = () => {
      task.status = Status.ReservationConflict;
      this.#finish(task);
    };
    switch (sa) {
      case 0:
      case 6: {
        if (sa === 0 && (mine === undefined ? key !== 0n : key !== mine)) {
          conflict();
          return;
        }
        if (sark === 0n) {
          if (mine !== undefined) for (const x of r.unregister(n)) this.#queueUa(x, Asc.ReservationsReleased);
        } else r.register(n, sark);
        this.#finish(task);
        return;
      }
      case 1:
        if (mine === undefined || key !== mine) {
          conflict();
          return;
        }
        if (scope !== 0 || !validPrType(type)) {
          this.#invalidField(task);
          return;
        }
        if (r.type !== 0) {
          if (!r.isHolder(n) || r.type !== type) {
            conflict();
            return;
          }
          this.#finish(task);
          return;
        }
        r.reserve(n, type, mine);
        {
          this.#finish(task);
          return;
        }
      case 2:
        if (mine === undefined || key !== mine) {
          conflict();
          return;
        }
        if (r.type === 0 || !r.isHolder(n)) {
          this.#finish(task);
          return;
        }
        if (scope !== 0 || r.type !== type) {
          this.#fail(task, Asc.InvalidReleaseOfPr);
          return;
        }
        for (const x of r.release(n)) this.#queueUa(x, Asc.ReservationsReleased);
        {
          this.#finish(task);
          return;
        }
      case 3:
        if (mine === undefined || key !== mine) {
          conflict();
          return;
        }
        for (const x of r.clear(n)) this.#queueUa(x, Asc.ReservationsPreempted);
        {
          this.#finish(task);
          return;
        }
      default: {
        this.#preempt(task, key, sark, scope, type, mine, conflict);
        return;
      }
    }
  }

  #preempt(
    task: ScsiTask,
    key: bigint,
    sark: bigint,
    scope: number,
    type: number,
    mine: bigint | undefined,
    conflict: () => void,
  ): void {
    const r = this.reservations;
    const n = task.nexus!;
    if (mine === undefined || key !== mine) {
      conflict();
      return;
    }
    if (r.type === 0 || (!r.allRegistrantsType() && r.key !== sark)) {
      if (sark === 0n) {
        this.#fail(task, Asc.InvalidFieldInParameterList);
        return;
      }
      const gone = r.removeKeys(n, sark, false);
      if (gone.length === 0 && r.type === 0) {
        conflict();
        return;
      }
      for (const x of gone) this.#queueUa(x, Asc.RegistrationsPreempted);
      this.#finish(task);
      return;
    }
    if (scope !== 0 || !validPrType(type)) {
      this.#invalidField(task);
      return;
    }
    const all = r.allRegistrantsType() && sark === 0n;
    const gone = r.removeKeys(n, sark, all);
    for (const x of gone) this.#queueUa(x, Asc.RegistrationsPreempted);
    const typeChanged = r.type !== type;
    r.reserve(n, type, mine);
    if (typeChanged) {
      for (const e of r.keys.values()) if (e.nexus !== n) this.#queueUa(e.nexus, Asc.ReservationsReleased);
    }
    this.#finish(task);
  }
}

/** `buf` itself when it is exactly `n` bytes (the steady state for same-size I/O), else a view. */
function exact(buf: Uint8Array, n: number): Uint8Array {
  return buf.length === n ? buf : buf.subarray(0, n);
}

/** Grows the task's data-out buffer keeping its contents. */
function growKeep(task: ScsiTask, n: number): void {
  if (task.dataOut.length >= n) return;
  const old = task.dataOut;
  task.ensureDataOut(n).set(old.subarray(0, task.dataOutLength));
}

function isZero(b: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[i] !== 0) return false;
  return true;
}

function readKey(b: Uint8Array, o: number): bigint {
  return (BigInt(be32(b, o)) << 32n) | BigInt(be32(b, o + 4));
}

function putKey(b: Uint8Array, o: number, k: bigint): void {
  put32(b, o, Number((k >> 32n) & 0xffffffffn));
  put32(b, o + 4, Number(k & 0xffffffffn));
}
