/**
 * Reservation commands, as SPDK's scsi_pr.c: SPC-2 RESERVE / RELEASE and SPC-4 PERSISTENT RESERVE
 * IN / OUT over the LUN's Reservations (reservations.ts keeps the state and the conflict rules).
 */
import { allocationLength, be32, Op, put16, put32 } from './cdb.js';
import { checkDataOut, dataIn, fail, finish, invalidField } from './complete.js';
import type { LogicalUnit } from './lun.js';
import { validPrType } from './reservations.js';
import { Asc, Status } from './sense.js';
import type { ScsiTask } from './task.js';

export function reserve(lun: LogicalUnit, task: ScsiTask): void {
  const r = lun.reservations;
  const n = task.nexus!;
  if (task.cdb[0] === Op.Reserve10 && task.cdb[1] & 0x12) {
    invalidField(task);
    return;
  }
  if ((r.legacyHolder && r.legacyHolder.id !== n.id) || r.keys.size > 0 || r.type !== 0) {
    task.status = Status.ReservationConflict;
    finish(task);
    return;
  }
  r.legacyHolder = n;
  finish(task);
}

export function release(lun: LogicalUnit, task: ScsiTask): void {
  const r = lun.reservations;
  if (r.legacyHolder?.id === task.nexus!.id) r.legacyHolder = null;
  finish(task);
}

function legacyConflict(lun: LogicalUnit, task: ScsiTask): boolean {
  const h = lun.reservations.legacyHolder;
  if (!h || h.id === task.nexus!.id) return false;
  task.status = Status.ReservationConflict;
  finish(task);
  return true;
}

export function prIn(lun: LogicalUnit, task: ScsiTask): void {
  if (legacyConflict(lun, task)) return;
  const r = lun.reservations;
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
      dataIn(task, o, alloc);
      return;
    }
    case 1: {
      if (r.type === 0) {
        dataIn(task, 8, alloc);
        return;
      }
      b.fill(0, 8, 24);
      put32(b, 4, 16);
      putKey(b, 8, r.allRegistrantsType() ? 0n : r.key);
      b[21] = r.type & 0x0f;
      dataIn(task, 24, alloc);
      return;
    }
    case 2:
      b.fill(0, 0, 8);
      put16(b, 0, 8);
      b[2] = 0x10; // CRH: RESERVE/RELEASE follow SPC-4 5.12.3 when PR exist
      b[3] = 0x80; // TMV: the type mask is valid
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
      b[5] = 0x01;
      dataIn(task, 8, alloc);
      return;
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
      dataIn(task, o, alloc);
      return;
    }
    default: {
      invalidField(task);
      return;
    }
  }
}

export function prOut(lun: LogicalUnit, task: ScsiTask): void {
  if (legacyConflict(lun, task)) return;
  const cdb = task.cdb;
  const sa = cdb[1] & 0x1f;
  const scope = cdb[2] >>> 4;
  const type = cdb[2] & 0x0f;
  const plen = be32(cdb, 5);
  if (sa > 6) {
    invalidField(task);
    return;
  }
  if (!checkDataOut(task, plen)) return;
  if (plen !== 24) {
    fail(task, Asc.ParameterListLengthError);
    return;
  }
  const d = task.dataOut;
  const key = readKey(d, 0);
  const sark = readKey(d, 8);
  const flags = d[20];
  if (flags & 0x0d) {
    fail(task, Asc.InvalidFieldInParameterList);
    return;
  }
  const r = lun.reservations;
  const n = task.nexus!;
  const mine = r.keyOf(n);
  const conflict = () => {
    task.status = Status.ReservationConflict;
    finish(task);
  };
  switch (sa) {
    case 0:
    case 6: {
      if (sa === 0 && (mine === undefined ? key !== 0n : key !== mine)) {
        conflict();
        return;
      }
      if (sark === 0n) {
        if (mine !== undefined) for (const x of r.unregister(n)) lun.queueUa(x, Asc.ReservationsReleased);
      } else r.register(n, sark);
      finish(task);
      return;
    }
    case 1:
      if (mine === undefined || key !== mine) {
        conflict();
        return;
      }
      if (scope !== 0 || !validPrType(type)) {
        invalidField(task);
        return;
      }
      if (r.type !== 0) {
        if (!r.isHolder(n) || r.type !== type) {
          conflict();
          return;
        }
        finish(task);
        return;
      }
      r.reserve(n, type, mine);
      finish(task);
      return;
    case 2:
      if (mine === undefined || key !== mine) {
        conflict();
        return;
      }
      if (r.type === 0 || !r.isHolder(n)) {
        finish(task);
        return;
      }
      if (scope !== 0 || r.type !== type) {
        fail(task, Asc.InvalidReleaseOfPr);
        return;
      }
      for (const x of r.release(n)) lun.queueUa(x, Asc.ReservationsReleased);
      finish(task);
      return;
    case 3:
      if (mine === undefined || key !== mine) {
        conflict();
        return;
      }
      for (const x of r.clear(n)) lun.queueUa(x, Asc.ReservationsPreempted);
      finish(task);
      return;
    default: {
      preempt(lun, task, key, sark, scope, type, mine, conflict);
      return;
    }
  }
}

function preempt(
  lun: LogicalUnit,
  task: ScsiTask,
  key: bigint,
  sark: bigint,
  scope: number,
  type: number,
  mine: bigint | undefined,
  conflict: () => void,
): void {
  const r = lun.reservations;
  const n = task.nexus!;
  if (mine === undefined || key !== mine) {
    conflict();
    return;
  }
  if (r.type === 0 || (!r.allRegistrantsType() && r.key !== sark)) {
    if (sark === 0n) {
      fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
    const gone = r.removeKeys(n, sark, false);
    if (gone.length === 0 && r.type === 0) {
      conflict();
      return;
    }
    for (const x of gone) lun.queueUa(x, Asc.RegistrationsPreempted);
    finish(task);
    return;
  }
  if (scope !== 0 || !validPrType(type)) {
    invalidField(task);
    return;
  }
  const all = r.allRegistrantsType() && sark === 0n;
  const gone = r.removeKeys(n, sark, all);
  for (const x of gone) lun.queueUa(x, Asc.RegistrationsPreempted);
  const typeChanged = r.type !== type;
  r.reserve(n, type, mine);
  if (typeChanged) {
    for (const e of r.keys.values()) if (e.nexus !== n) lun.queueUa(e.nexus, Asc.ReservationsReleased);
  }
  finish(task);
}

function readKey(b: Uint8Array, o: number): bigint {
  return (BigInt(be32(b, o)) << 32n) | BigInt(be32(b, o + 4));
}

function putKey(b: Uint8Array, o: number, k: bigint): void {
  put32(b, o, Number((k >> 32n) & 0xffffffffn));
  put32(b, o + 4, Number(k & 0xffffffffn));
}
