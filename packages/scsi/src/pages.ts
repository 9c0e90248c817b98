import type { BlockBackendInfo } from '@storkit/block';
import { Op, put16, put32, put64, SaIn16, SaMaintIn } from './cdb.js';
import type { Nexus } from './task.js';

/** Limits advertised in the Block Limits VPD page and enforced by the executor. */
export const Limits = {
  /** MAXIMUM COMPARE AND WRITE LENGTH (blocks). */
  maxCompareAndWrite: 255,
  /**
   * MAXIMUM TRANSFER LENGTH (advertised in blocks) for reads and writes: 65536 blocks of 512
   * bytes, the largest single READ(16)/WRITE(16) libiscsi's conformance suite sends.
   */
  maxTransferBytes: 32 * 1024 * 1024,
  maxUnmapBlocks: 0x100000,
  maxUnmapDescriptors: 256,
  maxWriteSameBlocks: 0x400000,
} as const;

export const VENDOR = 'STORKIT ';
export const PRODUCT = 'storkit disk    ';
export const REVISION = '0001';

function ascii(buf: Uint8Array, off: number, s: string, len: number): void {
  for (let i = 0; i < len; i++) buf[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

/** Standard INQUIRY data (SPC-4 6.6.2): 96 bytes with version descriptors. */
export function standardInquiry(buf: Uint8Array): number {
  buf.fill(0, 0, 96);
  buf[0] = 0x00; // connected, direct access block device
  buf[2] = 0x06; // SPC-4
  buf[3] = 0x12; // HISUP, response data format 2
  buf[4] = 96 - 5;
  buf[7] = 0x02; // CMDQUE
  ascii(buf, 8, VENDOR, 8);
  ascii(buf, 16, PRODUCT, 16);
  ascii(buf, 32, REVISION, 4);
  // Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
  put16(buf, 58, 0x00a0);
  put16(buf, 60, 0x0960);
  put16(buf, 62, 0x0460);
  put16(buf, 64, 0x04c0);
  return 96;
}

/** INQUIRY data for a LUN that does not exist (SPC-4: qualifier 011b, type 1Fh). */
export function absentLunInquiry(buf: Uint8Array): number {
  const n = standardInquiry(buf);
  buf[0] = 0x7f;
  return n;
}

export const VPD_PAGES = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2] as const;

export function serialNumber(info: BlockBackendInfo): string {
  return info.uuid.replace(/-/g, '').toUpperCase();
}

/** A VPD page into `buf`; -1 when the page is not supported. */
export function vpdPage(page: number, info: BlockBackendInfo, nexus: Nexus | null, buf: Uint8Array): number {
  buf[0] = 0x00;
  buf[1] = page;
  switch (page) {
    case 0x00:
      for (let i = 0; i < VPD_PAGES.length; i++) buf[4 + i] = VPD_PAGES[i];
      put16(buf, 2, VPD_PAGES.length);
      return 4 + VPD_PAGES.length;
    case 0x80: {
      const sn = serialNumber(info);
      ascii(buf, 4, sn, sn.length);
      put16(buf, 2, sn.length);
      return 4 + sn.length;
    }
    case 0x83:
      return deviceIdentification(info, nexus, buf);
    case 0xb0:
      return blockLimits(info, buf);
    case 0xb1:
      buf.fill(0, 2, 64);
      put16(buf, 2, 0x3c);
      put16(buf, 4, 0x0001); // non-rotating medium
      return 64;
    case 0xb2:
      buf.fill(0, 2, 8);
      put16(buf, 2, 4);
      if (info.unmapSupported) {
        // LBPU, LBPWS, LBPWS10, LBPRZ (deallocated blocks read as zero); thin provisioned.
        buf[5] = 0x80 | 0x40 | 0x20 | 0x04;
        buf[6] = 0x02;
      }
      return 8;
    default:
      return -1;
  }
}

function blockLimits(info: BlockBackendInfo, buf: Uint8Array): number {
  buf.fill(0, 2, 64);
  put16(buf, 2, 0x3c);
  buf[5] = Limits.maxCompareAndWrite;
  put16(buf, 6, Math.min(info.optimalIoBoundary, 0xffff));
  put32(buf, 8, Limits.maxTransferBytes / info.blockSize);
  put32(buf, 12, info.optimalIoBoundary);
  put32(buf, 16, 0); // MAXIMUM PRE-FETCH LENGTH: no limit beyond the medium
  if (info.unmapSupported) {
    put32(buf, 20, Limits.maxUnmapBlocks);
    put32(buf, 24, Limits.maxUnmapDescriptors);
    put32(buf, 28, 1); // OPTIMAL UNMAP GRANULARITY
  }
  put64(buf, 36, Limits.maxWriteSameBlocks);
  const atomic = Math.min(info.atomicWriteBlocks ?? 0, Limits.maxTransferBytes / info.blockSize);
  put32(buf, 44, atomic); // MAXIMUM ATOMIC TRANSFER LENGTH (alignment and granularity: none)
  return 64;
}

function designator(
  buf: Uint8Array,
  off: number,
  hdr0: number,
  hdr1: number,
  body: Uint8Array | string,
): number {
  buf[off] = hdr0;
  buf[off + 1] = hdr1;
  buf[off + 2] = 0;
  let len: number;
  if (typeof body === 'string') {
    // SCSI name strings are NUL terminated and padded to a multiple of four bytes.
    len = (body.length + 4) & ~3;
    buf.fill(0, off + 4, off + 4 + len);
    ascii(buf, off + 4, body, body.length);
  } else {
    len = body.length;
    buf.set(body, off + 4);
  }
  buf[off + 3] = len;
  return 4 + len;
}

function deviceIdentification(info: BlockBackendInfo, nexus: Nexus | null, buf: Uint8Array): number {
  let o = 4;
  // NAA IEEE Registered Extended (6h) built from the backend's UUID: stable per LUN.
  const naa = new Uint8Array(16);
  const hex = serialNumber(info);
  for (let i = 0; i < 16; i++) naa[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16) || 0;
  naa[0] = 0x60 | (naa[0] & 0x0f);
  o += designator(buf, o, 0x01, 0x03, naa);
  // T10 vendor ID: vendor + serial number.
  const t10 = new TextEncoder().encode(`${VENDOR}${hex}`);
  o += designator(buf, o, 0x02, 0x01, t10);
  if (nexus) {
    const rtp = new Uint8Array(4);
    put32(rtp, 0, nexus.targetPortId);
    // Relative target port (association: target port, protocol iSCSI, PIV).
    o += designator(buf, o, 0x51, 0x94, rtp);
    o += designator(buf, o, 0x53, 0x98, nexus.targetPort);
    // SCSI name string of the target device.
    o += designator(buf, o, 0x53, 0xa8, nexus.targetName);
  }
  put16(buf, 2, o - 4);
  return o;
}

/** Mode page codes this LUN serves. */
export const ModePage = {
  ReadWriteErrorRecovery: 0x01,
  Caching: 0x08,
  Control: 0x0a,
  InformationalExceptions: 0x1c,
  All: 0x3f,
} as const;

export const PageControl = { Current: 0, Changeable: 1, Default: 2, Saved: 3 } as const;

/** Writes one mode page; returns its length or -1 when the page is unknown. */
export function modePage(page: number, pc: number, wce: boolean, buf: Uint8Array, off: number): number {
  const changeable = pc === PageControl.Changeable;
  switch (page) {
    case ModePage.ReadWriteErrorRecovery:
      buf.fill(0, off, off + 12);
      buf[off] = page;
      buf[off + 1] = 0x0a;
      return 12;
    case ModePage.Caching:
      buf.fill(0, off, off + 20);
      buf[off] = page;
      buf[off + 1] = 0x12;
      if (changeable) buf[off + 2] = 0x04;
      else if (pc === PageControl.Default ? true : wce) buf[off + 2] = 0x04;
      return 20;
    case ModePage.Control:
      buf.fill(0, off, off + 12);
      buf[off] = page;
      buf[off + 1] = 0x0a;
      if (!changeable) {
        buf[off + 3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
        put16(buf, off + 8, 0xffff); // BUSY TIMEOUT PERIOD: unlimited
      }
      return 12;
    case ModePage.InformationalExceptions:
      buf.fill(0, off, off + 12);
      buf[off] = page;
      buf[off + 1] = 0x0a;
      return 12;
    default:
      return -1;
  }
}

export const MODE_PAGES = [
  ModePage.ReadWriteErrorRecovery,
  ModePage.Caching,
  ModePage.Control,
  ModePage.InformationalExceptions,
] as const;

/** One row of REPORT SUPPORTED OPERATION CODES: opcode, service action (-1: none), CDB length. */
export interface OpcodeInfo {
  readonly op: number;
  readonly sa: number;
  readonly len: number;
}

const SIX = 6;
const TEN = 10;
const TWELVE = 12;
const SIXTEEN = 16;

export const SUPPORTED_OPCODES: readonly OpcodeInfo[] = [
  { op: Op.TestUnitReady, sa: -1, len: SIX },
  { op: Op.RequestSense, sa: -1, len: SIX },
  { op: Op.Read6, sa: -1, len: SIX },
  { op: Op.Write6, sa: -1, len: SIX },
  { op: Op.Inquiry, sa: -1, len: SIX },
  { op: Op.ModeSelect6, sa: -1, len: SIX },
  { op: Op.Reserve6, sa: -1, len: SIX },
  { op: Op.Release6, sa: -1, len: SIX },
  { op: Op.ModeSense6, sa: -1, len: SIX },
  { op: Op.StartStopUnit, sa: -1, len: SIX },
  { op: Op.ReadCapacity10, sa: -1, len: TEN },
  { op: Op.Read10, sa: -1, len: TEN },
  { op: Op.Write10, sa: -1, len: TEN },
  { op: Op.WriteVerify10, sa: -1, len: TEN },
  { op: Op.Verify10, sa: -1, len: TEN },
  { op: Op.PreFetch10, sa: -1, len: TEN },
  { op: Op.SyncCache10, sa: -1, len: TEN },
  { op: Op.WriteSame10, sa: -1, len: TEN },
  { op: Op.Unmap, sa: -1, len: TEN },
  { op: Op.ModeSelect10, sa: -1, len: TEN },
  { op: Op.Reserve10, sa: -1, len: TEN },
  { op: Op.Release10, sa: -1, len: TEN },
  { op: Op.ModeSense10, sa: -1, len: TEN },
  { op: Op.PersistentReserveIn, sa: 0, len: TEN },
  { op: Op.PersistentReserveIn, sa: 1, len: TEN },
  { op: Op.PersistentReserveIn, sa: 2, len: TEN },
  { op: Op.PersistentReserveIn, sa: 3, len: TEN },
  { op: Op.PersistentReserveOut, sa: 0, len: TEN },
  { op: Op.PersistentReserveOut, sa: 1, len: TEN },
  { op: Op.PersistentReserveOut, sa: 2, len: TEN },
  { op: Op.PersistentReserveOut, sa: 3, len: TEN },
  { op: Op.PersistentReserveOut, sa: 4, len: TEN },
  { op: Op.PersistentReserveOut, sa: 5, len: TEN },
  { op: Op.PersistentReserveOut, sa: 6, len: TEN },
  { op: Op.Read16, sa: -1, len: SIXTEEN },
  { op: Op.CompareAndWrite, sa: -1, len: SIXTEEN },
  { op: Op.Write16, sa: -1, len: SIXTEEN },
  { op: Op.WriteAtomic16, sa: -1, len: SIXTEEN },
  { op: Op.OrWrite16, sa: -1, len: SIXTEEN },
  { op: Op.WriteVerify16, sa: -1, len: SIXTEEN },
  { op: Op.Verify16, sa: -1, len: SIXTEEN },
  { op: Op.PreFetch16, sa: -1, len: SIXTEEN },
  { op: Op.SyncCache16, sa: -1, len: SIXTEEN },
  { op: Op.WriteSame16, sa: -1, len: SIXTEEN },
  { op: Op.ServiceActionIn16, sa: SaIn16.ReadCapacity16, len: SIXTEEN },
  { op: Op.ServiceActionIn16, sa: SaIn16.GetLbaStatus, len: SIXTEEN },
  { op: Op.ReportLuns, sa: -1, len: TWELVE },
  { op: Op.MaintenanceIn, sa: SaMaintIn.ReportSupportedOpcodes, len: TWELVE },
  { op: Op.Read12, sa: -1, len: TWELVE },
  { op: Op.Write12, sa: -1, len: TWELVE },
  { op: Op.WriteVerify12, sa: -1, len: TWELVE },
  { op: Op.Verify12, sa: -1, len: TWELVE },
  { op: Op.ReadDefectData10, sa: -1, len: TEN },
  { op: Op.ReadDefectData12, sa: -1, len: TWELVE },
];

/**
 * CDB usage data (SPC-4 6.35.3): which bits of each CDB byte the command looks at. Byte 0 is the
 * opcode, a service action byte carries the service action, and the last byte is CONTROL (NACA
 * not supported: 0).
 */
export function cdbUsage(info: OpcodeInfo, buf: Uint8Array, off: number): void {
  buf[off] = info.op;
  for (let i = 1; i < info.len - 1; i++) buf[off + i] = 0xff;
  buf[off + info.len - 1] = 0x00;
  if (info.sa >= 0) buf[off + 1] = 0x1f;
}
