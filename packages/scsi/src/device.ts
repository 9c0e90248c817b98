import type { BlockBackend } from '@storkit/block';
import { allocationLength, Op, put32 } from './cdb.js';
import { ScsiError } from './errors.js';
import { LogicalUnit } from './lun.js';
import { absentLunInquiry } from './pages.js';
import { Asc, SenseKey, Status, writeFixedSense } from './sense.js';
import type { Nexus, ScsiTask } from './task.js';

export const MAX_LUNS = 256;

/**
 * A SCSI target device: the LUNs one target node exposes. Answers REPORT LUNS and commands to
 * absent LUNs itself, and hands everything else to the addressed logical unit.
 */
export class ScsiDevice {
  readonly name: string;
  readonly #luns = new Map<number, LogicalUnit>();

  constructor(name: string) {
    this.name = name;
  }

  addLun(id: number, backend: BlockBackend): LogicalUnit {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_LUNS) {
      throw new ScsiError('EINVAL', `LUN id ${id} out of range 0..${MAX_LUNS - 1}`);
    }
    if (this.#luns.has(id)) throw new ScsiError('EEXIST', `LUN ${id} already exists on ${this.name}`);
    const lun = new LogicalUnit(id, backend);
    this.#luns.set(id, lun);
    for (const l of this.#luns.values()) if (l !== lun) l.unitAttention(Asc.ReportedLunsDataChanged);
    return lun;
  }

  /**
   * Remove a LUN (its bdev went away, or it was deleted): commands for it then get LOGICAL UNIT NOT
   * SUPPORTED, and the LUNs left report REPORTED LUNS DATA HAS CHANGED. Tasks already running on it
   * finish through its backend.
   */
  removeLun(id: number): boolean {
    if (!this.#luns.delete(id)) return false;
    for (const l of this.#luns.values()) l.unitAttention(Asc.ReportedLunsDataChanged);
    return true;
  }

  lun(id: number): LogicalUnit | undefined {
    return this.#luns.get(id);
  }

  get luns(): IterableIterator<LogicalUnit> {
    return this.#luns.values();
  }

  execute(task: ScsiTask): void {
    const op = task.cdb[0];
    if (op === Op.ReportLuns) {
      this.#reportLuns(task);
      return;
    }
    const lun = this.#luns.get(task.lun);
    if (lun) {
      lun.execute(task);
      return;
    }
    if (op === Op.Inquiry) {
      const n = absentLunInquiry(task.ensureDataIn(96));
      task.dataInLength = task.transferLength = Math.min(n, allocationLength(task.cdb));
    } else if (op === Op.RequestSense) {
      const n = writeFixedSense(task.ensureDataIn(32), SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported);
      task.dataInLength = task.transferLength = Math.min(n, allocationLength(task.cdb));
    } else {
      task.status = Status.CheckCondition;
      task.senseLength = writeFixedSense(task.sense, SenseKey.IllegalRequest, Asc.LogicalUnitNotSupported);
    }
    task.onDone(task);
  }

  /** The nexus ended (logout, connection drop): LUNs drop its SPC-2 reservations. */
  nexusLost(n: Nexus): void {
    for (const l of this.#luns.values()) l.nexusLost(n);
  }

  /** TARGET WARM/COLD RESET: every LUN resets. */
  resetTarget(): void {
    for (const l of this.#luns.values()) l.resetLun();
  }

  #reportLuns(task: ScsiTask): void {
    const cdb = task.cdb;
    const alloc = allocationLength(cdb);
    if (alloc < 16 || cdb[2] > 2) {
      task.status = Status.CheckCondition;
      task.senseLength = writeFixedSense(task.sense, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb);
      task.onDone(task);
      return;
    }
    const ids = [...this.#luns.keys()].sort((a, b) => a - b);
    const n = 8 + ids.length * 8;
    const b = task.ensureDataIn(n);
    b.fill(0, 0, n);
    put32(b, 0, ids.length * 8);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      // Single level LUN structure: peripheral addressing below 256.
      b[8 + i * 8] = id >>> 8;
      b[9 + i * 8] = id & 0xff;
    }
    task.dataInLength = task.transferLength = Math.min(n, alloc);
    task.onDone(task);
  }
}
