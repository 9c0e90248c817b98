import type { BlockBackend } from '@storkit/block';
import {
  compareAndWrite,
  ioDone,
  orWrite,
  preFetch,
  read,
  readCapacity10,
  serviceActionIn,
  syncCache,
  unmap,
  verify,
  write,
  writeSame,
} from './block-io.js';
import { Op, RwFields, SaMaintIn } from './cdb.js';
import { check, finish, invalidField } from './complete.js';
import { inquiry, modeSelect, modeSense, readDefectData, reportOpcodes, requestSense } from './inquiry.js';
import { prIn, prOut, release, reserve } from './pr.js';
import { Access, Reservations } from './reservations.js';
import { Asc, SenseKey, Status } from './sense.js';
import type { Nexus, ScsiTask } from './task.js';

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
 * One SCSI logical unit over a block backend: reports unit attentions, checks reservations and
 * hands each CDB to its command (block-io.ts, inquiry.ts, pr.ts), which fills status, sense and
 * data-in. Unit attentions and reservations are kept per I_T nexus.
 */
export class LogicalUnit {
  readonly id: number;
  readonly backend: BlockBackend;
  readonly reservations = new Reservations();
  /** @internal Pending unit attentions per nexus id, oldest first (ASC/ASCQ packed). */
  readonly ua = new Map<number, number[]>();
  readonly #nexuses = new Map<number, Nexus>();
  /** @internal The CDB fields of the command being decoded (one per LUN: read before any I/O). */
  readonly rw = new RwFields();
  /** @internal WCE of the caching mode page, as MODE SELECT last set it. */
  wce: boolean;
  readonly #onIo = (t: ScsiTask, st: number, info: number) => ioDone(this, t, st, info);

  constructor(id: number, backend: BlockBackend) {
    this.id = id;
    this.backend = backend;
    this.wce = backend.writeCache;
  }

  /** Starts `task`; `task.onDone` runs once it finishes (never inside this call for backend I/O). */
  execute(task: ScsiTask): void {
    const n = task.nexus!;
    if (!this.#nexuses.has(n.id)) this.#nexuses.set(n.id, n);
    task.ioHandler = this.#onIo;
    const op = task.cdb[0];
    if (!skipsUnitAttention(op) && this.#reportUnitAttention(task)) {
      finish(task);
      return;
    }
    const access = accessOf(op);
    if (access !== Access.Free && this.reservations.conflicts(n, access)) {
      task.status = Status.ReservationConflict;
      finish(task);
      return;
    }
    this.#dispatch(task, op);
  }

  /** Queues a unit attention for every nexus known to this LUN except `except`. */
  unitAttention(asc: number, except: Nexus | null = null): void {
    for (const n of this.#nexuses.values()) if (n !== except) this.queueUa(n, asc);
  }

  /** The nexus is gone (logout, connection loss): drop its SPC-2 reservation and attentions. */
  nexusLost(n: Nexus): void {
    if (this.reservations.legacyHolder?.id === n.id) this.reservations.legacyHolder = null;
    this.ua.delete(n.id);
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

  /** @internal Queues unit attention `asc` for nexus `n` (once). */
  queueUa(n: Nexus, asc: number): void {
    let q = this.ua.get(n.id);
    if (!q) this.ua.set(n.id, (q = []));
    if (!q.includes(asc)) q.push(asc);
  }

  #reportUnitAttention(task: ScsiTask): boolean {
    const q = this.ua.get(task.nexus!.id);
    if (!q || q.length === 0) return false;
    check(task, SenseKey.UnitAttention, q.shift()!);
    return true;
  }

  #dispatch(task: ScsiTask, op: number): void {
    switch (op) {
      case Op.TestUnitReady:
      case Op.StartStopUnit:
      case Op.PreventAllow:
        finish(task);
        return;
      case Op.RequestSense:
        requestSense(this, task);
        return;
      case Op.Inquiry:
        inquiry(this, task);
        return;
      case Op.ReadCapacity10:
        readCapacity10(this, task);
        return;
      case Op.ServiceActionIn16:
        serviceActionIn(this, task);
        return;
      case Op.MaintenanceIn:
        if ((task.cdb[1] & 0x1f) === SaMaintIn.ReportSupportedOpcodes) {
          reportOpcodes(this, task);
          return;
        }
        invalidField(task);
        return;
      case Op.ModeSense6:
      case Op.ModeSense10:
        modeSense(this, task);
        return;
      case Op.ModeSelect6:
      case Op.ModeSelect10:
        modeSelect(this, task);
        return;
      case Op.Read6:
      case Op.Read10:
      case Op.Read12:
      case Op.Read16:
        read(this, task);
        return;
      case Op.Write6:
      case Op.Write10:
      case Op.Write12:
      case Op.Write16:
      case Op.WriteAtomic16:
      case Op.WriteVerify10:
      case Op.WriteVerify12:
      case Op.WriteVerify16:
        write(this, task);
        return;
      case Op.Verify10:
      case Op.Verify12:
      case Op.Verify16:
        verify(this, task);
        return;
      case Op.OrWrite16:
        orWrite(this, task);
        return;
      case Op.CompareAndWrite:
        compareAndWrite(this, task);
        return;
      case Op.WriteSame10:
      case Op.WriteSame16:
        writeSame(this, task);
        return;
      case Op.Unmap:
        unmap(this, task);
        return;
      case Op.SyncCache10:
      case Op.SyncCache16:
        syncCache(this, task);
        return;
      case Op.PreFetch10:
      case Op.PreFetch16:
        preFetch(this, task);
        return;
      case Op.ReadDefectData10:
      case Op.ReadDefectData12:
        readDefectData(this, task);
        return;
      case Op.Reserve6:
      case Op.Reserve10:
        reserve(this, task);
        return;
      case Op.Release6:
      case Op.Release10:
        release(this, task);
        return;
      case Op.PersistentReserveIn:
        prIn(this, task);
        return;
      case Op.PersistentReserveOut:
        prOut(this, task);
        return;
      default:
        check(task, SenseKey.IllegalRequest, Asc.InvalidOpcode);
        finish(task);
        return;
    }
  }

  // ---- block I/O

  // ---- reservations
}
