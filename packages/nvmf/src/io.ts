// NVM I/O commands against a namespace backend: Read, Write, Flush, Write Zeroes, Dataset
// Management (deallocate), Compare and fused Compare and Write, with the status codes NVMe Base
// §3.3 gives for each failure. Backend callbacks take the request as context: no closures per I/O.

import { IoStatus } from '@storkit/block';
import {
  DsmAttribute,
  GenericStatus,
  IoOpcode,
  MediaStatus,
  makeStatus,
  readU64,
  Sct,
  SqeOff,
} from '@storkit/nvme-spec';

import type { Controller } from './controller.js';
import type { Request } from './request.js';
import type { Namespace } from './subsystem.js';
import type { TcpQpair } from './tcp-qpair.js';

const S_INVALID_NS = makeStatus(Sct.Generic, GenericStatus.InvalidNamespaceOrFormat, true);
const S_LBA_RANGE = makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange, true);
const S_SGL_LEN = makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid, true);
const S_INVALID_OPCODE = makeStatus(Sct.Generic, GenericStatus.InvalidOpcode, true);
const S_INVALID_FIELD = makeStatus(Sct.Generic, GenericStatus.InvalidField, true);
const S_INTERNAL = makeStatus(Sct.Generic, GenericStatus.InternalError);
const S_READ_ERROR = makeStatus(Sct.Media, MediaStatus.UnrecoveredReadError);
const S_WRITE_FAULT = makeStatus(Sct.Media, MediaStatus.WriteFault);
const S_COMPARE_FAILURE = makeStatus(Sct.Media, MediaStatus.CompareFailure);
const S_ABORTED = makeStatus(Sct.Generic, GenericStatus.AbortedByRequest);
const S_FAILED_FUSED = makeStatus(Sct.Generic, GenericStatus.AbortedFailedFused);
const S_NS_NOT_READY = makeStatus(Sct.Generic, GenericStatus.NamespaceNotReady);

function statusOf(op: number, s: IoStatus): number {
  switch (s) {
    case IoStatus.SUCCESS:
      return 0;
    case IoStatus.MISCOMPARE:
      return S_COMPARE_FAILURE;
    case IoStatus.ABORTED:
      return S_ABORTED;
    case IoStatus.NOMEM:
      return S_NS_NOT_READY;
    default:
      return op === IoOpcode.Read ? S_READ_ERROR : op === IoOpcode.Write ? S_WRITE_FAULT : S_INTERNAL;
  }
}

function onDone(s: IoStatus, r: Request): void {
  const qp = r.qp;
  if (s !== IoStatus.SUCCESS && r.status === 0) r.status = statusOf(r.opcode, s);
  if (--r.pendingOps > 0) return;
  const ctrlr = qp.ctrlr;
  if (ctrlr && r.status === 0) ctrlr.countIo(r.opcode, r.dataLen);
  if (r.status !== 0 && ctrlr) ctrlr.logError(qp.qid, r);
  qp.complete(r, r.status);
}

function onFusedDone(s: IoStatus, first: Request): void {
  const qp = first.qp;
  const second = first.fused!;
  if (s === IoStatus.SUCCESS) {
    qp.ctrlr?.countIo(IoOpcode.Write, second.dataLen);
    qp.complete(first, 0);
    qp.complete(second, 0);
  } else {
    qp.complete(first, statusOf(IoOpcode.Compare, s));
    qp.complete(second, S_FAILED_FUSED);
  }
}

// Validate namespace, range and data length of a block command; returns 0 or a status.
function check(r: Request, ns: Namespace | undefined, withData: boolean): number {
  if (!ns) return S_INVALID_NS;
  const dv = r.sqeDv;
  const slba = readU64(dv, SqeOff.cdw10);
  const nlb = (dv.getUint16(SqeOff.cdw12, true) & 0xffff) + 1;
  if (slba + nlb > ns.backend.numBlocks) return S_LBA_RANGE;
  if (withData && nlb * ns.backend.blockSize !== r.dataLen) return S_SGL_LEN;
  return 0;
}

/** Execute an I/O command on an I/O qpair. */
export function executeIo(qp: TcpQpair, ctrlr: Controller, r: Request): void {
  const ns = ctrlr.subsystem.namespaces.get(r.nsid);
  const dv = r.sqeDv;
  const slba = readU64(dv, SqeOff.cdw10);
  const nlb = (dv.getUint16(SqeOff.cdw12, true) & 0xffff) + 1;
  r.pendingOps = 1;
  let s: number;
  switch (r.opcode) {
    case IoOpcode.Read:
      if ((s = check(r, ns, true))) {
        fail(qp, ctrlr, r, s);
        return;
      }
      r.c2hLen = r.dataLen;
      ns!.backend.readv(r.iov, slba, nlb, onDone, r);
      return;
    case IoOpcode.Write:
      if ((s = check(r, ns, true))) {
        fail(qp, ctrlr, r, s);
        return;
      }
      ns!.backend.writev(r.iov, slba, nlb, onDone, r);
      return;
    case IoOpcode.Compare:
      if ((s = check(r, ns, true))) {
        fail(qp, ctrlr, r, s);
        return;
      }
      ns!.backend.comparev(r.iov, slba, nlb, onDone, r);
      return;
    case IoOpcode.WriteZeroes:
      if ((s = check(r, ns, false))) {
        fail(qp, ctrlr, r, s);
        return;
      }
      ns!.backend.writeZeroes(slba, nlb, onDone, r);
      return;
    case IoOpcode.Flush:
      if (!ns) {
        fail(qp, ctrlr, r, S_INVALID_NS);
        return;
      }
      ns.backend.flush(0, ns.backend.numBlocks, onDone, r);
      return;
    case IoOpcode.DatasetManagement:
      dsm(qp, ctrlr, r, ns);
      return;
    default:
      fail(qp, ctrlr, r, S_INVALID_OPCODE);
      return;
  }
}

function fail(qp: TcpQpair, ctrlr: Controller, r: Request, status: number): void {
  ctrlr.logError(qp.qid, r, status);
  qp.complete(r, status);
}

// Dataset Management: each range (16 bytes: attributes, length in blocks, starting LBA) with the
// Deallocate attribute becomes one unmap; without it the hint needs no action.
function dsm(qp: TcpQpair, ctrlr: Controller, r: Request, ns: Namespace | undefined): void {
  if (!ns) {
    fail(qp, ctrlr, r, S_INVALID_NS);
    return;
  }
  const dv = r.sqeDv;
  const nr = (dv.getUint32(SqeOff.cdw10, true) & 0xff) + 1;
  const attr = dv.getUint32(SqeOff.cdw11, true);
  if (nr * 16 > r.dataLen) {
    fail(qp, ctrlr, r, S_SGL_LEN);
    return;
  }
  const data = new DataView(r.buf.buffer, r.buf.byteOffset, nr * 16);
  for (let i = 0; i < nr; i++) {
    const len = data.getUint32(16 * i + 4, true);
    const slba = readU64(data, 16 * i + 8);
    if (slba + len > ns.backend.numBlocks) {
      fail(qp, ctrlr, r, S_LBA_RANGE);
      return;
    }
  }
  if (!(attr & DsmAttribute.Deallocate)) {
    r.pendingOps = 1;
    qp.complete(r, 0);
    return;
  }
  r.pendingOps = 1; // guard: no completion can land before all ranges are submitted
  for (let i = 0; i < nr; i++) {
    const len = data.getUint32(16 * i + 4, true);
    if (len === 0) continue;
    r.pendingOps++;
    ns.backend.unmap(readU64(data, 16 * i + 8), len, onDone, r);
  }
  onDone(IoStatus.SUCCESS, r);
}

/** Fused Compare (first) and Write (second): atomic through the backend's compareAndWrite. */
export function executeFused(qp: TcpQpair, first: Request, second: Request): void {
  const ctrlr = qp.ctrlr!;
  const ns = ctrlr.subsystem.namespaces.get(first.nsid);
  let s = check(first, ns, true) || check(second, ns, true);
  const a = first.sqeDv;
  const b = second.sqeDv;
  if (
    !s &&
    (first.nsid !== second.nsid ||
      readU64(a, SqeOff.cdw10) !== readU64(b, SqeOff.cdw10) ||
      a.getUint16(SqeOff.cdw12, true) !== b.getUint16(SqeOff.cdw12, true))
  )
    s = S_INVALID_FIELD;
  if (s) {
    qp.complete(first, s);
    qp.complete(second, S_FAILED_FUSED);
    return;
  }
  const slba = readU64(a, SqeOff.cdw10);
  const nlb = (a.getUint16(SqeOff.cdw12, true) & 0xffff) + 1;
  ns!.backend.compareAndWritev(first.iov, second.iov, slba, nlb, onFusedDone, first);
}
