/**
 * CDB layouts: every operation code this layer serves and where each field lives (SBC-3, SPC-4).
 * The executor reads CDB fields only through this module.
 */

export const Op = {
  TestUnitReady: 0x00,
  RequestSense: 0x03,
  Read6: 0x08,
  Write6: 0x0a,
  Inquiry: 0x12,
  ModeSelect6: 0x15,
  Reserve6: 0x16,
  Release6: 0x17,
  ModeSense6: 0x1a,
  StartStopUnit: 0x1b,
  PreventAllow: 0x1e,
  ReadCapacity10: 0x25,
  Read10: 0x28,
  Write10: 0x2a,
  WriteVerify10: 0x2e,
  Verify10: 0x2f,
  PreFetch10: 0x34,
  SyncCache10: 0x35,
  ReadDefectData10: 0x37,
  WriteSame10: 0x41,
  Unmap: 0x42,
  ModeSelect10: 0x55,
  Reserve10: 0x56,
  Release10: 0x57,
  ModeSense10: 0x5a,
  PersistentReserveIn: 0x5e,
  PersistentReserveOut: 0x5f,
  Read16: 0x88,
  CompareAndWrite: 0x89,
  Write16: 0x8a,
  OrWrite16: 0x8b,
  WriteVerify16: 0x8e,
  Verify16: 0x8f,
  PreFetch16: 0x90,
  SyncCache16: 0x91,
  WriteAtomic16: 0x9c,
  WriteSame16: 0x93,
  ServiceActionIn16: 0x9e,
  ReportLuns: 0xa0,
  MaintenanceIn: 0xa3,
  Read12: 0xa8,
  Write12: 0xaa,
  WriteVerify12: 0xae,
  Verify12: 0xaf,
  ReadDefectData12: 0xb7,
} as const;

/** Service actions of SERVICE ACTION IN (16). */
export const SaIn16 = { ReadCapacity16: 0x10, GetLbaStatus: 0x12 } as const;
/** Service actions of MAINTENANCE IN. */
export const SaMaintIn = { ReportSupportedOpcodes: 0x0c } as const;

/** CDB length implied by the group code (top three bits of the opcode). */
export function cdbLength(op: number): number {
  switch (op >>> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return 0;
  }
}

export function be16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
export function be24(b: Uint8Array, o: number): number {
  return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2];
}
export function be32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
/** 64-bit big-endian as a double: exact below 2^53, which bounds every LBA this layer accepts. */
export function be64(b: Uint8Array, o: number): number {
  return be32(b, o) * 0x100000000 + be32(b, o + 4);
}
export function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}
export function put24(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 16) & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = v & 0xff;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
export function put64(b: Uint8Array, o: number, v: number): void {
  put32(b, o, Math.floor(v / 0x100000000));
  put32(b, o + 4, v >>> 0);
}

/** Fields of the READ/WRITE/VERIFY/WRITE SAME/PRE-FETCH/SYNC CACHE family, decoded in place. */
export class RwFields {
  lba = 0;
  /** Transfer length in blocks as coded (READ(6)'s 0 already expanded to 256). */
  count = 0;
  /** Byte 1 of the CDB: DPO, FUA, BYTCHK, UNMAP, RDPROTECT/WRPROTECT... per command. */
  flags = 0;
  /** Group number byte (bits 4..0), kept for checks of reserved bits. */
  group = 0;
}

/** Decodes LBA, count and flags of a block command into `out`; false when `cdb` is too short. */
export function decodeRw(cdb: Uint8Array, out: RwFields): boolean {
  const op = cdb[0];
  const len = cdbLength(op);
  if (len === 0 || cdb.length < len) return false;
  switch (len) {
    case 6:
      out.lba = be24(cdb, 1) & 0x1fffff;
      out.count = cdb[4] === 0 && op !== Op.Write6 && op !== Op.Read6 ? 0 : cdb[4] || 256;
      out.flags = 0;
      out.group = 0;
      return true;
    case 10:
      out.lba = be32(cdb, 2);
      out.count = be16(cdb, 7);
      out.flags = cdb[1];
      out.group = cdb[6];
      return true;
    case 12:
      out.lba = be32(cdb, 2);
      out.count = be32(cdb, 6);
      out.flags = cdb[1];
      out.group = cdb[10];
      return true;
    default:
      if (op === Op.WriteAtomic16) {
        // SBC-4: ATOMIC BOUNDARY in bytes 10-11, a 16-bit TRANSFER LENGTH in bytes 12-13.
        out.lba = be64(cdb, 2);
        out.count = be16(cdb, 12);
        out.flags = cdb[1];
        out.group = cdb[14];
        return true;
      }
      if (op === Op.CompareAndWrite) {
        out.lba = be64(cdb, 2);
        out.count = cdb[13];
        out.flags = cdb[1];
        out.group = cdb[14];
        return true;
      }
      out.lba = be64(cdb, 2);
      out.count = be32(cdb, 10);
      out.flags = cdb[1];
      out.group = cdb[14];
      return true;
  }
}

/** Flag bits of byte 1 (SBC-3). */
export const RwFlag = {
  Fua: 0x08,
  Dpo: 0x10,
  /** RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT field (bits 7..5). */
  Protect: 0xe0,
  /** BYTCHK of VERIFY and WRITE AND VERIFY (bits 2..1). */
  ByteCheck: 0x06,
  /** WRITE SAME: UNMAP, ANCHOR, PBDATA, LBDATA, NDOB. */
  WsUnmap: 0x08,
  WsAnchor: 0x10,
  WsPbdata: 0x04,
  WsLbdata: 0x02,
  WsNdob: 0x01,
  /** SYNCHRONIZE CACHE / PRE-FETCH: IMMED. */
  Immed: 0x02,
} as const;

/** Allocation length of a data-in command, from where its CDB keeps it. */
export function allocationLength(cdb: Uint8Array): number {
  switch (cdb[0]) {
    case Op.Inquiry:
      return be16(cdb, 3);
    case Op.RequestSense:
    case Op.ModeSense6:
      return cdb[4];
    case Op.ModeSense10:
    case Op.PersistentReserveIn:
    case Op.ReadDefectData10:
      return be16(cdb, 7);
    case Op.ReportLuns:
    case Op.MaintenanceIn:
    case Op.ReadDefectData12:
      return be32(cdb, 6);
    case Op.ServiceActionIn16:
      return be32(cdb, 10);
    case Op.ReadCapacity10:
      return 8;
    default:
      return 0;
  }
}
