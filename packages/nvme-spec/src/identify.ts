// Identify data structures (NVMe Base 2.0 §5.17.2): controller, namespace, active namespace list
// and namespace identification descriptors. Encoders fill a caller's 4096-byte buffer (the target
// answers into a request buffer); decoders build plain objects (the host's admin path).

import { NidType } from './constants.js';
import { readU64, writeU64 } from './sqe.js';

export const IDENTIFY_SIZE = 4096;

/** Identify Controller byte offsets. */
export const IdCtrlOff = {
  vid: 0,
  ssvid: 2,
  sn: 4,
  mn: 24,
  fr: 64,
  rab: 72,
  ieee: 73,
  cmic: 76,
  mdts: 77,
  cntlid: 78,
  ver: 80,
  oaes: 92,
  ctratt: 96,
  cntrltype: 111,
  oacs: 256,
  acl: 258,
  aerl: 259,
  frmw: 260,
  lpa: 261,
  elpe: 262,
  npss: 263,
  kas: 320,
  sqes: 512,
  cqes: 513,
  maxcmd: 514,
  nn: 516,
  oncs: 520,
  fuses: 522,
  fna: 524,
  vwc: 525,
  awun: 526,
  awupf: 528,
  acwu: 532,
  sgls: 536,
  mnan: 540,
  subnqn: 768,
  ioccsz: 1792,
  iorcsz: 1796,
  icdoff: 1800,
  fcatt: 1802,
  msdbd: 1803,
  ofcs: 1804,
  psd0: 2048,
} as const;

/** Optional NVM command support bits (ONCS). */
export const Oncs = { Compare: 1, WriteUncorrectable: 2, Dsm: 4, WriteZeroes: 8, SaveSelect: 16 } as const;
/** Optional admin command support bits (OACS). */
export const Oacs = {
  SecuritySendReceive: 1,
  FormatNvm: 2,
  FirmwareCommit: 4,
  NamespaceManagement: 8,
  DoorbellBufferConfig: 1 << 8,
} as const;
/** Controller type (CNTRLTYPE). */
export const CntrlType = { Io: 1, Discovery: 2, Admin: 3 } as const;

export interface IdentifyController {
  vid: number;
  ssvid: number;
  serialNumber: string;
  modelNumber: string;
  firmwareRevision: string;
  ieee: number;
  cmic: number;
  /** Maximum data transfer size as a power of two of the minimum page size (0 = no limit). */
  mdts: number;
  cntlid: number;
  version: number;
  oaes: number;
  ctratt: number;
  cntrltype: number;
  /** Optional Admin Command Support (bit 8: Doorbell Buffer Config). */
  oacs?: number;
  /** Abort command limit, 1-based. */
  abortLimit: number;
  /** Async event request limit, 1-based. */
  aerLimit: number;
  frmw: number;
  lpa: number;
  /** Error log page entries, 1-based. */
  errorLogEntries: number;
  /** Keep alive granularity in 100 ms units (0 = keep alive not supported). */
  kas: number;
  maxcmd: number;
  nn: number;
  oncs: number;
  fuses: number;
  vwc: number;
  acwu: number;
  sgls: number;
  subnqn: string;
  /** I/O command capsule size in 16-byte units (64 bytes of SQE + in-capsule data). */
  ioccsz: number;
  iorcsz: number;
  icdoff: number;
  msdbd: number;
  /** Fields decoded for tools (identify): absent when encoding for a target. */
  details?: IdentifyControllerDetails;
}

/** Identify Controller fields only tools show (SPDK's identify), decoded from the raw structure. */
export interface IdentifyControllerDetails {
  /** Recommended Arbitration Burst (2^rab commands). */
  rab: number;
  /** IEEE OUI as the three bytes in structure order. */
  ieeeBytes: [number, number, number];
  /** Number of power states supported, 0-based. */
  npss: number;
  /** SQES / CQES: required (bits 3:0) and maximum (7:4) entry sizes as powers of two. */
  sqes: number;
  cqes: number;
  /** Format NVM Attributes. */
  fna: number;
  /** Atomic Write Unit Normal / Power Fail, 0-based. */
  awun: number;
  awupf: number;
  /** Power state 0 descriptor. */
  ps0: {
    maxPowerCw: number;
    mps: number;
    nops: boolean;
    enlat: number;
    exlat: number;
    rrt: number;
    rrl: number;
    rwt: number;
    rwl: number;
  };
}

function putString(b: Uint8Array, off: number, len: number, s: string, pad: number): void {
  b.fill(pad, off, off + len);
  for (let i = 0; i < s.length && i < len; i++) b[off + i] = s.charCodeAt(i) & 0x7f;
}

function getString(b: Uint8Array, off: number, len: number, trimNul: boolean): string {
  let end = off + len;
  if (trimNul) {
    const z = b.indexOf(0, off);
    if (z >= 0 && z < end) end = z;
  }
  let s = '';
  for (let i = off; i < end; i++) s += String.fromCharCode(b[i]);
  return trimNul ? s : s.trimEnd();
}

const dvOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Fill `out` (≥ 4096 bytes) with an Identify Controller structure. */
export function encodeIdentifyController(c: IdentifyController, out: Uint8Array): void {
  out.fill(0, 0, IDENTIFY_SIZE);
  const dv = dvOf(out);
  dv.setUint16(IdCtrlOff.vid, c.vid, true);
  dv.setUint16(IdCtrlOff.ssvid, c.ssvid, true);
  putString(out, IdCtrlOff.sn, 20, c.serialNumber, 0x20);
  putString(out, IdCtrlOff.mn, 40, c.modelNumber, 0x20);
  putString(out, IdCtrlOff.fr, 8, c.firmwareRevision, 0x20);
  dv.setUint8(IdCtrlOff.rab, 6);
  out[IdCtrlOff.ieee] = c.ieee & 0xff;
  out[IdCtrlOff.ieee + 1] = (c.ieee >> 8) & 0xff;
  out[IdCtrlOff.ieee + 2] = (c.ieee >> 16) & 0xff;
  dv.setUint8(IdCtrlOff.cmic, c.cmic);
  dv.setUint8(IdCtrlOff.mdts, c.mdts);
  dv.setUint16(IdCtrlOff.cntlid, c.cntlid, true);
  dv.setUint32(IdCtrlOff.ver, c.version, true);
  dv.setUint32(IdCtrlOff.oaes, c.oaes >>> 0, true);
  dv.setUint32(IdCtrlOff.ctratt, c.ctratt, true);
  dv.setUint8(IdCtrlOff.cntrltype, c.cntrltype);
  dv.setUint16(IdCtrlOff.oacs, c.oacs ?? 0, true);
  dv.setUint8(IdCtrlOff.acl, Math.max(0, c.abortLimit - 1));
  dv.setUint8(IdCtrlOff.aerl, Math.max(0, c.aerLimit - 1));
  dv.setUint8(IdCtrlOff.frmw, c.frmw);
  dv.setUint8(IdCtrlOff.lpa, c.lpa);
  dv.setUint8(IdCtrlOff.elpe, Math.max(0, c.errorLogEntries - 1));
  dv.setUint16(IdCtrlOff.kas, c.kas, true);
  dv.setUint8(IdCtrlOff.sqes, 0x66);
  dv.setUint8(IdCtrlOff.cqes, 0x44);
  dv.setUint16(IdCtrlOff.maxcmd, c.maxcmd, true);
  dv.setUint32(IdCtrlOff.nn, c.nn, true);
  dv.setUint16(IdCtrlOff.oncs, c.oncs, true);
  dv.setUint16(IdCtrlOff.fuses, c.fuses, true);
  dv.setUint8(IdCtrlOff.vwc, c.vwc);
  dv.setUint16(IdCtrlOff.acwu, c.acwu, true);
  dv.setUint32(IdCtrlOff.sgls, c.sgls >>> 0, true);
  putString(out, IdCtrlOff.subnqn, 256, c.subnqn, 0);
  dv.setUint32(IdCtrlOff.ioccsz, c.ioccsz, true);
  dv.setUint32(IdCtrlOff.iorcsz, c.iorcsz, true);
  dv.setUint16(IdCtrlOff.icdoff, c.icdoff, true);
  dv.setUint8(IdCtrlOff.msdbd, c.msdbd);
  // Power state 0: max power in centiwatts, so tools have something sensible to print.
  dv.setUint16(IdCtrlOff.psd0, 2500, true);
}

export function decodeIdentifyController(b: Uint8Array): IdentifyController {
  if (b.length < IDENTIFY_SIZE) throw new RangeError('identify controller data is 4096 bytes');
  const dv = dvOf(b);
  return {
    vid: dv.getUint16(IdCtrlOff.vid, true),
    ssvid: dv.getUint16(IdCtrlOff.ssvid, true),
    serialNumber: getString(b, IdCtrlOff.sn, 20, false),
    modelNumber: getString(b, IdCtrlOff.mn, 40, false),
    firmwareRevision: getString(b, IdCtrlOff.fr, 8, false),
    ieee: b[IdCtrlOff.ieee] | (b[IdCtrlOff.ieee + 1] << 8) | (b[IdCtrlOff.ieee + 2] << 16),
    cmic: b[IdCtrlOff.cmic],
    mdts: b[IdCtrlOff.mdts],
    cntlid: dv.getUint16(IdCtrlOff.cntlid, true),
    version: dv.getUint32(IdCtrlOff.ver, true),
    oaes: dv.getUint32(IdCtrlOff.oaes, true),
    ctratt: dv.getUint32(IdCtrlOff.ctratt, true),
    cntrltype: b[IdCtrlOff.cntrltype],
    oacs: dv.getUint16(IdCtrlOff.oacs, true),
    abortLimit: b[IdCtrlOff.acl] + 1,
    aerLimit: b[IdCtrlOff.aerl] + 1,
    frmw: b[IdCtrlOff.frmw],
    lpa: b[IdCtrlOff.lpa],
    errorLogEntries: b[IdCtrlOff.elpe] + 1,
    kas: dv.getUint16(IdCtrlOff.kas, true),
    maxcmd: dv.getUint16(IdCtrlOff.maxcmd, true),
    nn: dv.getUint32(IdCtrlOff.nn, true),
    oncs: dv.getUint16(IdCtrlOff.oncs, true),
    fuses: dv.getUint16(IdCtrlOff.fuses, true),
    vwc: b[IdCtrlOff.vwc],
    acwu: dv.getUint16(IdCtrlOff.acwu, true),
    sgls: dv.getUint32(IdCtrlOff.sgls, true),
    subnqn: getString(b, IdCtrlOff.subnqn, 256, true),
    ioccsz: dv.getUint32(IdCtrlOff.ioccsz, true),
    iorcsz: dv.getUint32(IdCtrlOff.iorcsz, true),
    icdoff: dv.getUint16(IdCtrlOff.icdoff, true),
    msdbd: b[IdCtrlOff.msdbd],
    details: {
      rab: b[IdCtrlOff.rab],
      ieeeBytes: [b[IdCtrlOff.ieee], b[IdCtrlOff.ieee + 1], b[IdCtrlOff.ieee + 2]],
      npss: b[IdCtrlOff.npss],
      sqes: b[IdCtrlOff.sqes],
      cqes: b[IdCtrlOff.cqes],
      fna: b[IdCtrlOff.fna],
      awun: dv.getUint16(IdCtrlOff.awun, true),
      awupf: dv.getUint16(IdCtrlOff.awupf, true),
      ps0: {
        maxPowerCw: dv.getUint16(IdCtrlOff.psd0, true),
        mps: b[IdCtrlOff.psd0 + 3] & 1,
        nops: (b[IdCtrlOff.psd0 + 3] & 2) !== 0,
        enlat: dv.getUint32(IdCtrlOff.psd0 + 4, true),
        exlat: dv.getUint32(IdCtrlOff.psd0 + 8, true),
        rrt: b[IdCtrlOff.psd0 + 12] & 0x1f,
        rrl: b[IdCtrlOff.psd0 + 13] & 0x1f,
        rwt: b[IdCtrlOff.psd0 + 14] & 0x1f,
        rwl: b[IdCtrlOff.psd0 + 15] & 0x1f,
      },
    },
  };
}

/** Identify Namespace byte offsets. */
export const IdNsOff = {
  nsze: 0,
  ncap: 8,
  nuse: 16,
  nsfeat: 24,
  nlbaf: 25,
  flbas: 26,
  nmic: 30,
  dlfeat: 33,
  noiob: 102,
  nguid: 104,
  eui64: 120,
  lbaf0: 128,
} as const;

export interface IdentifyNamespace {
  /** Size, capacity and utilization in logical blocks. */
  nsze: number;
  ncap: number;
  nuse: number;
  nsfeat: number;
  /** Logical block size in bytes (from the one LBA format in use). */
  blockSize: number;
  nmic: number;
  dlfeat: number;
  /** Namespace Optimal I/O Boundary in logical blocks (0: none). */
  noiob?: number;
  /** Every LBA format (NLBAF + 1 of them) and the one in use (FLBAS bits 3:0), for tools. */
  lbaFormats?: { dataSize: number; metadataSize: number; relativePerformance: number }[];
  currentLbaFormat?: number;
  /** Namespace attributes (bit 0: write protected). */
  nsattr?: number;
  nguid: Uint8Array;
  eui64: Uint8Array;
}

export function encodeIdentifyNamespace(n: IdentifyNamespace, out: Uint8Array): void {
  out.fill(0, 0, IDENTIFY_SIZE);
  const dv = dvOf(out);
  writeU64(dv, IdNsOff.nsze, n.nsze);
  writeU64(dv, IdNsOff.ncap, n.ncap);
  writeU64(dv, IdNsOff.nuse, n.nuse);
  dv.setUint8(IdNsOff.nsfeat, n.nsfeat);
  dv.setUint8(IdNsOff.nlbaf, 0);
  dv.setUint8(IdNsOff.flbas, 0);
  dv.setUint8(IdNsOff.nmic, n.nmic);
  dv.setUint8(IdNsOff.dlfeat, n.dlfeat);
  dv.setUint16(IdNsOff.noiob, n.noiob ?? 0, true);
  out.set(n.nguid.subarray(0, 16), IdNsOff.nguid);
  out.set(n.eui64.subarray(0, 8), IdNsOff.eui64);
  // LBA format 0: no metadata, LBADS = log2(block size), relative performance "best".
  dv.setUint8(IdNsOff.lbaf0 + 2, Math.log2(n.blockSize));
}

export function decodeIdentifyNamespace(b: Uint8Array): IdentifyNamespace {
  if (b.length < IDENTIFY_SIZE) throw new RangeError('identify namespace data is 4096 bytes');
  const dv = dvOf(b);
  const flbas = b[IdNsOff.flbas] & 0xf;
  const lbads = b[IdNsOff.lbaf0 + 4 * flbas + 2];
  return {
    nsze: readU64(dv, IdNsOff.nsze),
    ncap: readU64(dv, IdNsOff.ncap),
    nuse: readU64(dv, IdNsOff.nuse),
    nsfeat: b[IdNsOff.nsfeat],
    blockSize: lbads ? 2 ** lbads : 0,
    nmic: b[IdNsOff.nmic],
    dlfeat: b[IdNsOff.dlfeat],
    noiob: dv.getUint16(IdNsOff.noiob, true),
    lbaFormats: Array.from({ length: Math.min(b[IdNsOff.nlbaf] + 1, 64) }, (_, i) => ({
      dataSize: b[IdNsOff.lbaf0 + 4 * i + 2] ? 2 ** b[IdNsOff.lbaf0 + 4 * i + 2] : 0,
      metadataSize: dv.getUint16(IdNsOff.lbaf0 + 4 * i, true),
      relativePerformance: b[IdNsOff.lbaf0 + 4 * i + 3] & 3,
    })),
    currentLbaFormat: flbas,
    nsattr: b[99],
    nguid: b.slice(IdNsOff.nguid, IdNsOff.nguid + 16),
    eui64: b.slice(IdNsOff.eui64, IdNsOff.eui64 + 8),
  };
}

/** Active namespace list: the nsids greater than `after`, ascending, up to 1024, zero-terminated. */
export function encodeNamespaceList(nsids: readonly number[], after: number, out: Uint8Array): void {
  out.fill(0, 0, IDENTIFY_SIZE);
  const dv = dvOf(out);
  let n = 0;
  for (const id of [...nsids].sort((a, b) => a - b)) {
    if (id <= after) continue;
    if (n === 1024) break;
    dv.setUint32(4 * n++, id, true);
  }
}

export function decodeNamespaceList(b: Uint8Array): number[] {
  const dv = dvOf(b);
  const out: number[] = [];
  for (let i = 0; i + 4 <= Math.min(b.length, IDENTIFY_SIZE); i += 4) {
    const id = dv.getUint32(i, true);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

export interface NamespaceDescriptors {
  eui64?: Uint8Array;
  nguid?: Uint8Array;
  uuid?: Uint8Array;
  csi?: number;
}

export function encodeNamespaceDescriptors(d: NamespaceDescriptors, out: Uint8Array): void {
  out.fill(0, 0, IDENTIFY_SIZE);
  let o = 0;
  const put = (type: number, v: Uint8Array): void => {
    out[o] = type;
    out[o + 1] = v.length;
    out.set(v, o + 4);
    o += 4 + v.length;
  };
  if (d.eui64?.some((x) => x !== 0)) put(NidType.Eui64, d.eui64);
  if (d.nguid?.some((x) => x !== 0)) put(NidType.Nguid, d.nguid);
  if (d.uuid?.some((x) => x !== 0)) put(NidType.Uuid, d.uuid);
  if (d.csi !== undefined) put(NidType.Csi, Uint8Array.of(d.csi));
}

export function decodeNamespaceDescriptors(b: Uint8Array): NamespaceDescriptors {
  const d: NamespaceDescriptors = {};
  let o = 0;
  while (o + 4 <= b.length) {
    const type = b[o];
    const len = b[o + 1];
    if (type === 0 || o + 4 + len > b.length) break;
    const v = b.slice(o + 4, o + 4 + len);
    if (type === NidType.Eui64) d.eui64 = v;
    else if (type === NidType.Nguid) d.nguid = v;
    else if (type === NidType.Uuid) d.uuid = v;
    else if (type === NidType.Csi) d.csi = v[0];
    o += 4 + len;
  }
  return d;
}

/** UUID text (8-4-4-4-12 hex) to its 16 bytes; throws RangeError on anything else. */
export function uuidToBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: '${uuid}'`);
  return Uint8Array.from({ length: 16 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

export function bytesToUuid(b: Uint8Array): string {
  const h = Array.from(b.subarray(0, 16), (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
