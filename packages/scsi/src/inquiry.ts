/**
 * Commands that describe the LUN rather than move its blocks: INQUIRY (standard data and VPD
 * pages), MODE SENSE / MODE SELECT, REPORT SUPPORTED OPERATION CODES, REQUEST SENSE and READ
 * DEFECT DATA. The page contents are built in pages.ts.
 */
import { allocationLength, be16, Op, put16, put32, put64 } from './cdb.js';
import { checkDataOut, dataIn, fail, finish, invalidField } from './complete.js';
import type { LogicalUnit } from './lun.js';
import {
  cdbUsage,
  MODE_PAGES,
  ModePage,
  modePage,
  PageControl,
  SUPPORTED_OPCODES,
  standardInquiry,
  vpdPage,
} from './pages.js';
import { Asc, SenseKey, writeFixedSense } from './sense.js';
import type { ScsiTask } from './task.js';

export function inquiry(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  const alloc = allocationLength(cdb);
  const buf = task.ensureDataIn(1024);
  if (cdb[1] & 0x02) {
    invalidField(task);
    return;
  }
  if ((cdb[1] & 0x01) === 0) {
    if (cdb[2] !== 0) {
      invalidField(task);
      return;
    }
    dataIn(task, standardInquiry(buf), alloc);
    return;
  }
  const n = vpdPage(cdb[2], lun.backend, task.nexus, buf);
  if (n < 0) {
    invalidField(task);
    return;
  }
  dataIn(task, n, alloc);
}

export function modeSense(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  const ten = cdb[0] === Op.ModeSense10;
  const dbd = (cdb[1] & 0x08) !== 0;
  const llbaa = ten && (cdb[1] & 0x10) !== 0;
  const pc = cdb[2] >>> 6;
  const page = cdb[2] & 0x3f;
  const subpage = cdb[3];
  if (pc === PageControl.Saved) {
    fail(task, Asc.SavingParametersNotSupported);
    return;
  }
  if (subpage !== 0 && !(page === ModePage.All && subpage === 0xff)) {
    invalidField(task);
    return;
  }
  const b = task.ensureDataIn(512);
  const hdr = ten ? 8 : 4;
  b.fill(0, 0, hdr);
  let o = hdr;
  if (!dbd) {
    const bdl = llbaa ? 16 : 8;
    b.fill(0, o, o + bdl);
    const nb = lun.backend.numBlocks;
    if (llbaa) {
      put64(b, o, nb);
      put32(b, o + 12, lun.backend.blockSize);
    } else {
      put32(b, o, Math.min(nb, 0xffffffff));
      put32(b, o + 4, lun.backend.blockSize & 0xffffff);
    }
    o += bdl;
    if (ten) {
      b[4] = llbaa ? 1 : 0;
      put16(b, 6, bdl);
    } else b[3] = bdl;
  }
  if (page === ModePage.All) {
    for (const p of MODE_PAGES) o += modePage(p, pc, lun.wce, b, o);
  } else {
    const n = modePage(page, pc, lun.wce, b, o);
    if (n < 0) {
      invalidField(task);
      return;
    }
    o += n;
  }
  const dsp = (lun.backend.readOnly ? 0x80 : 0) | 0x10; // WP, DPOFUA
  if (ten) {
    put16(b, 0, o - 2);
    b[3] = dsp;
  } else {
    b[0] = o - 1;
    b[2] = dsp;
  }
  dataIn(task, o, allocationLength(cdb));
}

export function modeSelect(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  const ten = cdb[0] === Op.ModeSelect10;
  if (cdb[1] & 0x01) {
    invalidField(task);
    return;
  }
  const plen = ten ? be16(cdb, 7) : cdb[4];
  if (!checkDataOut(task, plen)) return;
  if (plen === 0) {
    finish(task);
    return;
  }
  const d = task.dataOut;
  const hdr = ten ? 8 : 4;
  if (plen < hdr) {
    fail(task, Asc.ParameterListLengthError);
    return;
  }
  const bdl = ten ? be16(d, 6) : d[3];
  let o = hdr + bdl;
  if (o > plen) {
    fail(task, Asc.ParameterListLengthError);
    return;
  }
  const cur = new Uint8Array(32);
  const mask = new Uint8Array(32);
  let wce = lun.wce;
  while (o < plen) {
    const page = d[o] & 0x3f;
    if (d[o] & 0x40 || o + 2 > plen) {
      fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
    const len = d[o + 1] + 2;
    const n = modePage(page, PageControl.Current, lun.wce, cur, 0);
    modePage(page, PageControl.Changeable, lun.wce, mask, 0);
    if (n < 0 || n !== len || o + len > plen) {
      fail(task, Asc.InvalidFieldInParameterList);
      return;
    }
    for (let i = 2; i < len; i++) {
      if ((d[o + i] ^ cur[i]) & ~mask[i]) {
        fail(task, Asc.InvalidFieldInParameterList);
        return;
      }
    }
    if (page === ModePage.Caching) wce = (d[o + 2] & 0x04) !== 0;
    o += len;
  }
  if (wce !== lun.wce) {
    lun.wce = wce;
    lun.unitAttention(Asc.ModeParametersChanged, task.nexus);
  }
  finish(task);
}

export function reportOpcodes(_lun: LogicalUnit, task: ScsiTask): void {
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
    dataIn(task, o, alloc);
    return;
  }
  if (options > 3) {
    invalidField(task);
    return;
  }
  const op = cdb[3];
  const sa = be16(cdb, 4);
  const hasSa = SUPPORTED_OPCODES.some((i) => i.op === op && i.sa >= 0);
  if (options === 1 && hasSa) {
    invalidField(task);
    return;
  }
  if (options === 2 && !hasSa && SUPPORTED_OPCODES.some((i) => i.op === op)) {
    invalidField(task);
    return;
  }
  const info = SUPPORTED_OPCODES.find(
    (i) => i.op === op && (options === 1 ? i.sa < 0 : options === 2 ? i.sa === sa : i.sa < 0 || i.sa === sa),
  );
  b.fill(0, 0, 4);
  if (!info) {
    b[1] = 0x01; // not supported
    dataIn(task, 4, alloc);
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
  dataIn(task, o, alloc);
}

export function requestSense(lun: LogicalUnit, task: ScsiTask): void {
  const cdb = task.cdb;
  const desc = (cdb[1] & 0x01) !== 0;
  const q = lun.ua.get(task.nexus!.id);
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
  dataIn(task, n, allocationLength(cdb));
}

export function readDefectData(_lun: LogicalUnit, task: ScsiTask): void {
  const b = task.ensureDataIn(8);
  const twelve = task.cdb[0] === Op.ReadDefectData12;
  b.fill(0, 0, 8);
  b[1] = task.cdb[twelve ? 1 : 2] & 0x1f;
  dataIn(task, twelve ? 8 : 4, allocationLength(task.cdb));
}
