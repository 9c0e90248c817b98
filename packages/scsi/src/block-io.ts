/**
 * Block commands over the LUN's backend, as SPDK's scsi_bdev.c: READ, WRITE (partial last block by
 * read-modify-write), VERIFY, ORWRITE, COMPARE AND WRITE, WRITE SAME, UNMAP, SYNCHRONIZE CACHE,
 * PRE-FETCH, READ CAPACITY and GET LBA STATUS. Multi-step commands keep their stage in task.step;
 * every backend completion comes back through ioDone.
 */
import { IoStatus, type Lba } from '@storkit/block';
import { allocationLength, be16, be32, be64, decodeRw, Op, put32, put64, RwFlag, SaIn16 } from './cdb.js';
import { check, checkDataOut, dataIn, fail, finish, invalidField } from './complete.js';
import type { LogicalUnit } from './lun.js';
import { Limits } from './pages.js';
import { Asc, SenseKey, Status } from './sense.js';
import type { ScsiTask } from './task.js';

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

/**
 * Decodes and checks LBA range, transfer size and protection fields; false when it finished the
 * task. `transfers`: the blocks travel with the command, so MAXIMUM TRANSFER LENGTH applies (not
 * to WRITE SAME, SYNCHRONIZE CACHE or PRE-FETCH, whose range moves no data).
 */
function checkRw(lun: LogicalUnit, task: ScsiTask, protect: boolean, transfers = true): boolean {
  const rw = lun.rw;
  if (!decodeRw(task.cdb, rw)) {
    fail(task, Asc.InvalidFieldInCdb);
    return false;
  }
  if (protect && (rw.flags & RwFlag.Protect) !== 0) {
    // No protection information on these LUNs: any *PROTECT value but 0 is invalid.
    fail(task, Asc.InvalidFieldInCdb);
    return false;
  }
  const nb = lun.backend.numBlocks;
  if (rw.lba > nb || rw.lba + rw.count > nb) {
    fail(task, Asc.LbaOutOfRange);
    return false;
  }
  if (transfers && rw.count * lun.backend.blockSize > Limits.maxTransferBytes) {
    fail(task, Asc.InvalidFieldInCdb);
    return false;
  }
  return true;
}

function writeProtected(lun: LogicalUnit, task: ScsiTask): boolean {
  if (!lun.backend.readOnly) return false;
  check(task, SenseKey.DataProtect, Asc.WriteProtected);
  finish(task);
  return true;
}

export function read(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, task.cdb[0] !== Op.Read6)) return;
  const { lba, count } = lun.rw;
  const bytes = count * lun.backend.blockSize;
  task.transferLength = bytes;
  if (count === 0) {
    finish(task);
    return;
  }
  task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
  task.dataInLength = bytes;
  task.step = Step.Read;
  lun.backend.readv(task.iov, lba, count, onIo, task);
}

export function write(lun: LogicalUnit, task: ScsiTask): void {
  const op = task.cdb[0];
  const isWv = op === Op.WriteVerify10 || op === Op.WriteVerify12 || op === Op.WriteVerify16;
  if (!checkRw(lun, task, op !== Op.Write6)) return;
  const { lba, count, flags } = lun.rw;
  if (op === Op.WriteAtomic16 && !atomicOk(lun, task, count)) return;
  if (isWv && (flags & RwFlag.ByteCheck) === 0x04) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const bs = lun.backend.blockSize;
  task.transferLength = count * bs;
  if (writeProtected(lun, task)) return;
  // The transport may deliver less or more than the CDB asks (iSCSI EDTL != transfer length):
  // write only what both cover (FCP-4 9.4.2 a), a partial last block by read-modify-write.
  const bytes = Math.min(task.dataOutLength, count * bs);
  if (bytes === 0) {
    finish(task);
    return;
  }
  const fua = op !== Op.Write6 && ((flags & RwFlag.Fua) !== 0 || isWv);
  task.cursor = lba;
  task.end = Math.ceil(bytes / bs);
  task.pending = fua && lun.wce ? 1 : 0;
  if (bytes % bs !== 0) {
    task.iov[0] = task.ensureDataIn(bs).subarray(0, bs);
    task.step = Step.TailRead;
    lun.backend.readv(task.iov, lba + task.end - 1, 1, onIo, task);
    return;
  }
  writeNow(lun, task);
}

/** WRITE ATOMIC: only when the backend guarantees it, within its size, no ATOMIC BOUNDARY. */
function atomicOk(lun: LogicalUnit, task: ScsiTask, count: number): boolean {
  const max = lun.backend.atomicWriteBlocks ?? 0;
  if (max === 0) {
    fail(task, Asc.InvalidOpcode);
    return false;
  }
  if (count > max || be16(task.cdb, 10) !== 0) {
    fail(task, Asc.InvalidFieldInCdb);
    return false;
  }
  return true;
}

function writeNow(lun: LogicalUnit, task: ScsiTask): void {
  task.iov[0] = exact(task.dataOut, task.end * lun.backend.blockSize);
  task.step = task.pending ? Step.WriteThenFlush : Step.Write;
  lun.backend.writev(task.iov, task.cursor, task.end, onIo, task);
}

/** The old last block was read: lay the partial data over it, then write everything. */
function writeTail(lun: LogicalUnit, task: ScsiTask): void {
  const bs = lun.backend.blockSize;
  const at = (task.end - 1) * bs;
  const have = task.dataOutLength - at;
  const merged = task.dataIn;
  merged.set(task.dataOut.subarray(at, at + have), 0);
  growKeep(task, task.end * bs);
  task.dataOut.set(merged.subarray(0, bs), at);
  writeNow(lun, task);
}

export function verify(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, true)) return;
  const { lba, count, flags } = lun.rw;
  const bytchk = (flags & RwFlag.ByteCheck) >>> 1;
  const bs = lun.backend.blockSize;
  if (bytchk === 2) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const need = bytchk === 0 ? 0 : bytchk === 1 ? count * bs : count === 0 ? 0 : bs;
  if (!checkDataOut(task, need)) return;
  if (count === 0 || bytchk === 0) {
    finish(task);
    return;
  }
  const bytes = count * bs;
  task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
  task.step = Step.Verify;
  task.cursor = bytchk;
  lun.backend.readv(task.iov, lba, count, onIo, task);
}

export function orWrite(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, true)) return;
  const { lba, count } = lun.rw;
  const bytes = count * lun.backend.blockSize;
  if (writeProtected(lun, task)) return;
  if (!checkDataOut(task, bytes)) return;
  if (count === 0) {
    finish(task);
    return;
  }
  task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
  task.step = Step.OrRead;
  task.cursor = lba;
  task.end = count;
  lun.backend.readv(task.iov, lba, count, onIo, task);
}

export function compareAndWrite(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, true)) return;
  const { lba, count } = lun.rw;
  if (count > Limits.maxCompareAndWrite) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const bytes = count * lun.backend.blockSize;
  task.transferLength = 2 * bytes;
  if (writeProtected(lun, task)) return;
  // A data-out size that disagrees with NUMBER OF LOGICAL BLOCKS means the CDB field is wrong.
  if (task.dataOutLength !== 2 * bytes) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  if (count === 0) {
    finish(task);
    return;
  }
  task.iov[0] = task.dataOut.subarray(0, bytes);
  task.iov2[0] = task.dataOut.subarray(bytes, 2 * bytes);
  task.dataInLength = 0;
  task.step = Step.Caw;
  task.cursor = lba;
  task.end = count;
  lun.backend.compareAndWritev(task.iov, task.iov2, lba, count, onIo, task);
}

export function writeSame(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  // One block travels; the range is bounded by MAXIMUM WRITE SAME LENGTH below.
  if (!checkRw(lun, task, true, false)) return;
  const rw = lun.rw;
  const flags = rw.flags;
  const nb = lun.backend.numBlocks;
  const bs = lun.backend.blockSize;
  if (flags & (RwFlag.WsAnchor | RwFlag.WsPbdata | RwFlag.WsLbdata)) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const ndob = cdb[0] === Op.WriteSame16 && (flags & RwFlag.WsNdob) !== 0;
  const unmap = (flags & RwFlag.WsUnmap) !== 0;
  if (unmap && !lun.backend.unmapSupported) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const count = rw.count === 0 ? nb - rw.lba : rw.count;
  if (count > Limits.maxWriteSameBlocks) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  if (writeProtected(lun, task)) return;
  if (!checkDataOut(task, ndob ? 0 : bs)) return;
  if (count === 0) {
    finish(task);
    return;
  }
  task.cursor = rw.lba;
  task.end = rw.lba + count;
  task.step = Step.Done;
  // UNMAP asks for deallocation whatever the data (LBPRZ: deallocated blocks read as zeroes).
  if (unmap) {
    lun.backend.unmap(rw.lba, count, onIo, task);
    return;
  }
  if (ndob || isZero(task.dataOut, bs)) {
    lun.backend.writeZeroes(rw.lba, count, onIo, task);
    return;
  }
  // Replicate the block into a chunk-sized pattern once, then write the range chunk by chunk.
  const chunk = Math.min(WS_CHUNK, count * bs);
  const buf = task.ensureDataIn(chunk);
  for (let o = 0; o < chunk; o += bs) buf.set(task.dataOut.subarray(0, bs), o);
  task.step = Step.WriteSame;
  writeSameNext(lun, task);
}

function writeSameNext(lun: LogicalUnit, task: ScsiTask): void {
  const bs = lun.backend.blockSize;
  const n = Math.min(task.end - task.cursor, WS_CHUNK / bs);
  if (n <= 0) {
    task.step = Step.Done;
    finish(task);
    return;
  }
  task.iov[0] = task.dataIn.subarray(0, n * bs);
  const at = task.cursor;
  task.cursor += n;
  lun.backend.writev(task.iov, at, n, onIo, task);
}

export function unmap(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  if (!lun.backend.unmapSupported) {
    fail(task, Asc.InvalidOpcode);
    return;
  }
  if (cdb[1] & 0x01) {
    fail(task, Asc.InvalidFieldInCdb);
    return;
  }
  const plen = be16(cdb, 7);
  if (!checkDataOut(task, plen)) return;
  if (plen === 0) {
    finish(task);
    return;
  }
  if (plen < 8) {
    fail(task, Asc.ParameterListLengthError);
    return;
  }
  const d = task.dataOut;
  const bdl = be16(d, 2);
  const n = Math.floor(Math.min(bdl, plen - 8) / 16);
  if (n > Limits.maxUnmapDescriptors) {
    fail(task, Asc.InvalidFieldInParameterList);
    return;
  }
  const nb = lun.backend.numBlocks;
  for (let i = 0; i < n; i++) {
    const lba = be64(d, 8 + i * 16);
    const cnt = be32(d, 16 + i * 16);
    if (lba + cnt > nb) {
      fail(task, Asc.LbaOutOfRange);
      return;
    }
    if (cnt > Limits.maxUnmapBlocks) {
      fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
  }
  if (writeProtected(lun, task)) return;
  task.step = Step.Fanout;
  task.pending = 1;
  for (let i = 0; i < n; i++) {
    const cnt = be32(d, 16 + i * 16);
    if (cnt === 0) continue;
    task.pending++;
    lun.backend.unmap(be64(d, 8 + i * 16), cnt, onIo, task);
  }
  // The extra reference keeps completion out of this call even when no descriptor had blocks.
  lun.backend.flush(0, 0, onIo, task);
}

export function syncCache(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, false, false)) return;
  const { lba, count } = lun.rw;
  task.step = Step.Done;
  lun.backend.flush(lba, count === 0 ? lun.backend.numBlocks - lba : count, onIo, task);
}

export function preFetch(lun: LogicalUnit, task: ScsiTask): void {
  if (!checkRw(lun, task, false, false)) return;
  // RAM and bdev data needs no staging: the range is valid, report that the cache holds it.
  finish(task);
}

export function ioDone(lun: LogicalUnit, task: ScsiTask, st: number, info: number): void {
  if (st !== IoStatus.SUCCESS) {
    ioFailed(lun, task, st, info);
    return;
  }
  switch (task.step) {
    case Step.WriteThenFlush:
      task.step = Step.Done;
      lun.backend.flush(task.cursor, task.end, onIo, task);
      return;
    case Step.Verify:
      verifyCompare(lun, task);
      return;
    case Step.TailRead:
      writeTail(lun, task);
      return;
    case Step.OrRead: {
      const buf = task.iov[0];
      const d = task.dataOut;
      for (let i = 0; i < buf.length; i++) buf[i] |= d[i];
      task.step = Step.Done;
      lun.backend.writev(task.iov, task.cursor, task.end, onIo, task);
      return;
    }
    case Step.WriteSame:
      writeSameNext(lun, task);
      return;
    case Step.Fanout:
      if (--task.pending > 0) return;
      task.step = Step.Done;
      finish(task);
      return;
    case Step.LbaHole:
    case Step.LbaData:
      lbaStatusStep(lun, task, info);
      return;
    case Step.CawReread:
      cawMiscompare(task);
      return;
    default:
      task.step = Step.Done;
      finish(task);
      return;
  }
}

function ioFailed(lun: LogicalUnit, task: ScsiTask, st: number, info: number): void {
  if (task.step === Step.Fanout && --task.pending > 0) {
    task.status = Status.CheckCondition;
    return;
  }
  const step = task.step;
  task.step = Step.Done;
  if (st === IoStatus.MISCOMPARE && step === Step.Caw) {
    // SBC-4 5.3: the sense INFORMATION is the offset of the first byte that differed. The
    // backend says only that one did: read the medium back (rare path) to find it.
    const bytes = task.end * lun.backend.blockSize;
    task.iov[0] = exact(task.ensureDataIn(bytes), bytes);
    task.step = Step.CawReread;
    lun.backend.readv(task.iov, task.cursor, task.end, onIo, task);
    return;
  }
  if (st === IoStatus.MISCOMPARE || step === Step.CawReread)
    check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, info);
  else if (step === Step.Read || step === Step.Verify || step === Step.OrRead || step === Step.TailRead)
    check(task, SenseKey.MediumError, Asc.UnrecoveredReadError);
  else check(task, SenseKey.MediumError, Asc.WriteError);
  finish(task);
}

/** The medium after a COMPARE AND WRITE miscompare: report the first differing byte. */
function cawMiscompare(task: ScsiTask): void {
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
  check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, at);
  finish(task);
}

function verifyCompare(lun: LogicalUnit, task: ScsiTask): void {
  task.step = Step.Done;
  const medium = task.iov[0];
  const d = task.dataOut;
  const bs = lun.backend.blockSize;
  const one = task.cursor === 3;
  for (let i = 0; i < medium.length; i++) {
    if (medium[i] !== d[one ? i % bs : i]) {
      check(task, SenseKey.Miscompare, Asc.MiscompareDuringVerify, i);
      break;
    }
  }
  finish(task);
}

export function readCapacity10(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  if ((cdb[8] & 1) === 0 && be32(cdb, 2) !== 0) {
    invalidField(task);
    return;
  }
  const b = task.ensureDataIn(8);
  const last = lun.backend.numBlocks - 1;
  put32(b, 0, Math.min(last, 0xffffffff));
  put32(b, 4, lun.backend.blockSize);
  dataIn(task, 8, 8);
}

export function serviceActionIn(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  const sa = cdb[1] & 0x1f;
  const alloc = allocationLength(cdb);
  if (sa === SaIn16.ReadCapacity16) {
    const b = task.ensureDataIn(32);
    b.fill(0, 0, 32);
    put64(b, 0, lun.backend.numBlocks - 1);
    put32(b, 8, lun.backend.blockSize);
    // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
    b[13] =
      Math.log2((lun.backend.physicalBlockSize ?? lun.backend.blockSize) / lun.backend.blockSize) & 0x0f;
    if (lun.backend.unmapSupported) b[14] = 0xc0; // LBPME, LBPRZ
    dataIn(task, 32, alloc);
    return;
  }
  if (sa === SaIn16.GetLbaStatus) {
    const lba = be64(cdb, 2);
    if (lba >= lun.backend.numBlocks) {
      fail(task, Asc.LbaOutOfRange);
      return;
    }
    task.cursor = lba;
    if (!lun.backend.seekHole || !lun.backend.seekData || !lun.backend.unmapSupported) {
      lbaStatusDone(lun, task, lun.backend.numBlocks, 0);
      return;
    }
    task.step = Step.LbaHole;
    lun.backend.seekHole(lba, onSeek, task);
    return;
  }
  invalidField(task);
}

function lbaStatusStep(lun: LogicalUnit, task: ScsiTask, at: number): void {
  if (task.step === Step.LbaHole) {
    if (at > task.cursor) {
      lbaStatusDone(lun, task, at, 0);
      return;
    }
    task.step = Step.LbaData;
    lun.backend.seekData!(task.cursor, onSeek, task);
    return;
  }
  lbaStatusDone(lun, task, at, 1);
}

function lbaStatusDone(_lun: LogicalUnit, task: ScsiTask, end: number, state: number): void {
  task.step = Step.Done;
  const b = task.ensureDataIn(24);
  b.fill(0, 0, 24);
  put32(b, 0, 20);
  put64(b, 8, task.cursor);
  put32(b, 16, Math.min(end - task.cursor, 0xffffffff));
  b[20] = state;
  dataIn(task, 24, allocationLength(task.cdb));
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
