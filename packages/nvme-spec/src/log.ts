// Log pages (NVMe Base 2.0 §5.16.1 and NVMe-oF discovery log): layouts, encoders for the target
// and decoders for the host.

import { readU64, writeU64 } from './sqe.js';

const dvOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Get Log Page command fields (CDW10-13). */
export function getLogPageFields(cdw10: number, cdw11: number, cdw12: number, cdw13: number) {
  const numd = ((cdw10 >>> 16) | ((cdw11 & 0xffff) << 16)) + 1;
  return {
    lid: cdw10 & 0xff,
    lsp: (cdw10 >>> 8) & 0x7f,
    rae: (cdw10 & (1 << 15)) !== 0,
    /** Bytes requested. */
    length: numd * 4,
    /** Byte offset into the log page. */
    offset: cdw12 + cdw13 * 0x1_0000_0000,
  };
}

/** CDW10/CDW11 for a Get Log Page reading `length` bytes (a multiple of 4) of `lid`. */
export function getLogPageCdws(lid: number, length: number, rae = false): { cdw10: number; cdw11: number } {
  const numd = length / 4 - 1;
  return { cdw10: (lid | (rae ? 1 << 15 : 0) | ((numd & 0xffff) << 16)) >>> 0, cdw11: numd >>> 16 };
}

export const ERROR_LOG_ENTRY_SIZE = 64;
export interface ErrorLogEntry {
  errorCount: number;
  sqid: number;
  cid: number;
  status: number;
  lba: number;
  nsid: number;
}

export function encodeErrorLogEntry(e: ErrorLogEntry, out: Uint8Array, off: number): void {
  out.fill(0, off, off + ERROR_LOG_ENTRY_SIZE);
  const dv = dvOf(out);
  writeU64(dv, off, e.errorCount);
  dv.setUint16(off + 8, e.sqid, true);
  dv.setUint16(off + 10, e.cid, true);
  dv.setUint16(off + 12, (e.status << 1) & 0xfffe, true);
  dv.setUint16(off + 14, 0xffff, true); // parameter error location: not specific to a field
  writeU64(dv, off + 16, e.lba);
  dv.setUint32(off + 24, e.nsid, true);
  dv.setUint8(off + 29, 3); // transport type: TCP
}

export function decodeErrorLogEntry(b: Uint8Array, off: number): ErrorLogEntry {
  const dv = dvOf(b);
  return {
    errorCount: readU64(dv, off),
    sqid: dv.getUint16(off + 8, true),
    cid: dv.getUint16(off + 10, true),
    status: dv.getUint16(off + 12, true) >>> 1,
    lba: readU64(dv, off + 16),
    nsid: dv.getUint32(off + 24, true),
  };
}

export const HEALTH_LOG_SIZE = 512;
export interface HealthLog {
  criticalWarning: number;
  /** Composite temperature, kelvin. */
  temperature: number;
  availableSpare: number;
  availableSpareThreshold: number;
  percentageUsed: number;
  /** In units of 1000 512-byte blocks, as the spec counts them. */
  dataUnitsRead: number;
  dataUnitsWritten: number;
  hostReadCommands: number;
  hostWriteCommands: number;
  powerCycles: number;
  powerOnHours: number;
  unsafeShutdowns: number;
  mediaErrors: number;
  errorLogEntries: number;
}

const HEALTH_U128 = {
  dataUnitsRead: 32,
  dataUnitsWritten: 48,
  hostReadCommands: 64,
  hostWriteCommands: 80,
  powerCycles: 112,
  powerOnHours: 128,
  unsafeShutdowns: 144,
  mediaErrors: 160,
  errorLogEntries: 176,
} as const;

export function encodeHealthLog(h: HealthLog, out: Uint8Array): void {
  out.fill(0, 0, HEALTH_LOG_SIZE);
  const dv = dvOf(out);
  dv.setUint8(0, h.criticalWarning);
  dv.setUint16(1, h.temperature, true);
  dv.setUint8(3, h.availableSpare);
  dv.setUint8(4, h.availableSpareThreshold);
  dv.setUint8(5, h.percentageUsed);
  for (const [k, o] of Object.entries(HEALTH_U128)) writeU64(dv, o, h[k as keyof typeof HEALTH_U128]);
}

export function decodeHealthLog(b: Uint8Array): HealthLog {
  const dv = dvOf(b);
  const h = {
    criticalWarning: b[0],
    temperature: dv.getUint16(1, true),
    availableSpare: b[3],
    availableSpareThreshold: b[4],
    percentageUsed: b[5],
  } as HealthLog;
  for (const [k, o] of Object.entries(HEALTH_U128)) h[k as keyof typeof HEALTH_U128] = readU64(dv, o);
  return h;
}

export const FIRMWARE_LOG_SIZE = 512;
/** Firmware slot information: active slot 1 holding `revision`. */
export function encodeFirmwareSlotLog(revision: string, out: Uint8Array): void {
  out.fill(0, 0, FIRMWARE_LOG_SIZE);
  out[0] = 1;
  out.fill(0x20, 8, 16);
  for (let i = 0; i < revision.length && i < 8; i++) out[8 + i] = revision.charCodeAt(i) & 0x7f;
}

export function decodeFirmwareSlotLog(b: Uint8Array): { activeSlot: number; slots: string[] } {
  const slots: string[] = [];
  for (let s = 0; s < 7; s++) {
    let r = '';
    for (let i = 0; i < 8; i++) r += String.fromCharCode(b[8 + 8 * s + i]);
    slots.push(r.replace(/\0/g, '').trimEnd());
  }
  return { activeSlot: b[0] & 7, slots };
}

export const CHANGED_NS_LOG_SIZE = 4096;
/** Changed namespace list: up to 1024 nsids; more than that is reported as one 0xFFFFFFFF. */
export function encodeChangedNamespaceLog(nsids: readonly number[], out: Uint8Array): void {
  out.fill(0, 0, CHANGED_NS_LOG_SIZE);
  const dv = dvOf(out);
  if (nsids.length > 1024) {
    dv.setUint32(0, 0xffffffff, true);
    return;
  }
  nsids.forEach((id, i) => {
    dv.setUint32(4 * i, id, true);
  });
}

export function decodeChangedNamespaceLog(b: Uint8Array): number[] {
  const dv = dvOf(b);
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i += 4) {
    const id = dv.getUint32(i, true);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

export const DISCOVERY_HEADER_SIZE = 1024;
export const DISCOVERY_ENTRY_SIZE = 1024;

export interface DiscoveryEntry {
  trtype: number;
  adrfam: number;
  subtype: number;
  treq: number;
  portid: number;
  cntlid: number;
  asqsz: number;
  trsvcid: string;
  subnqn: string;
  traddr: string;
  /** TCP security type (TSAS byte 0): 0 = none. */
  sectype: number;
}

function putAscii(b: Uint8Array, off: number, len: number, s: string, pad: number): void {
  b.fill(pad, off, off + len);
  for (let i = 0; i < s.length && i < len; i++) b[off + i] = s.charCodeAt(i) & 0x7f;
}

function getAscii(b: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let i = off; i < off + len && b[i] !== 0; i++) s += String.fromCharCode(b[i]);
  return s.trimEnd();
}

/** The whole discovery log page (header and entries); the target slices the requested window. */
export function encodeDiscoveryLog(genctr: number, entries: readonly DiscoveryEntry[]): Uint8Array {
  const out = new Uint8Array(DISCOVERY_HEADER_SIZE + DISCOVERY_ENTRY_SIZE * entries.length);
  const dv = dvOf(out);
  writeU64(dv, 0, genctr);
  writeU64(dv, 8, entries.length);
  dv.setUint16(16, 0, true);
  entries.forEach((e, i) => {
    const o = DISCOVERY_HEADER_SIZE + i * DISCOVERY_ENTRY_SIZE;
    out[o] = e.trtype;
    out[o + 1] = e.adrfam;
    out[o + 2] = e.subtype;
    out[o + 3] = e.treq;
    dv.setUint16(o + 4, e.portid, true);
    dv.setUint16(o + 6, e.cntlid, true);
    dv.setUint16(o + 8, e.asqsz, true);
    putAscii(out, o + 32, 32, e.trsvcid, 0x20);
    putAscii(out, o + 256, 256, e.subnqn, 0);
    putAscii(out, o + 512, 256, e.traddr, 0x20);
    out[o + 768] = e.sectype;
  });
  return out;
}

export function decodeDiscoveryLogHeader(b: Uint8Array): { genctr: number; numrec: number; recfmt: number } {
  const dv = dvOf(b);
  return { genctr: readU64(dv, 0), numrec: readU64(dv, 8), recfmt: dv.getUint16(16, true) };
}

export function decodeDiscoveryEntry(b: Uint8Array, off: number): DiscoveryEntry {
  const dv = dvOf(b);
  return {
    trtype: b[off],
    adrfam: b[off + 1],
    subtype: b[off + 2],
    treq: b[off + 3],
    portid: dv.getUint16(off + 4, true),
    cntlid: dv.getUint16(off + 6, true),
    asqsz: dv.getUint16(off + 8, true),
    trsvcid: getAscii(b, off + 32, 32),
    subnqn: getAscii(b, off + 256, 256),
    traddr: getAscii(b, off + 512, 256),
    sectype: b[off + 768],
  };
}
