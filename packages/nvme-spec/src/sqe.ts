// Submission and completion queue entry layouts. Functions read and write an entry in place at
// `off` of a DataView, so a receive buffer is decoded where it lies and a send buffer is
// encoded where it will leave from: no intermediate objects on the I/O path.

export const SQE_SIZE = 64;
export const CQE_SIZE = 16;

/** Byte offsets inside a 64-byte submission queue entry. */
export const SqeOff = {
  opcode: 0,
  flags: 1,
  cid: 2,
  nsid: 4,
  cdw2: 8,
  cdw3: 12,
  mptr: 16,
  /** Data pointer: one SGL descriptor on fabrics. */
  sgl: 24,
  sglAddress: 24,
  sglLength: 32,
  sglId: 39,
  /** Fabrics command type (fabrics commands only). */
  fctype: 4,
  cdw10: 40,
  cdw11: 44,
  cdw12: 48,
  cdw13: 52,
  cdw14: 56,
  cdw15: 60,
} as const;

/** Byte offsets inside a 16-byte completion queue entry. */
export const CqeOff = { dw0: 0, dw1: 4, sqhd: 8, sqid: 10, cid: 12, status: 14 } as const;

export const sqeOpcode = (dv: DataView, off: number): number => dv.getUint8(off);
export const sqeFuse = (dv: DataView, off: number): number => dv.getUint8(off + 1) & 3;
export const sqeCid = (dv: DataView, off: number): number => dv.getUint16(off + 2, true);
export const sqeNsid = (dv: DataView, off: number): number => dv.getUint32(off + 4, true);
export const sqeFctype = (dv: DataView, off: number): number => dv.getUint8(off + 4);
export const sqeCdw = (dv: DataView, off: number, n: number): number => dv.getUint32(off + 4 * n, true);
export const sqeSglAddress = (dv: DataView, off: number): number => readU64(dv, off + SqeOff.sglAddress);
export const sqeSglLength = (dv: DataView, off: number): number => dv.getUint32(off + SqeOff.sglLength, true);
export const sqeSglId = (dv: DataView, off: number): number => dv.getUint8(off + SqeOff.sglId);

/** Starting LBA of a Read/Write/Compare/Write Zeroes (CDW10-11), as a double (exact below 2^53). */
export const sqeSlba = (dv: DataView, off: number): number => readU64(dv, off + SqeOff.cdw10);
/** Number of logical blocks (CDW12 bits 15:0 are 0's based). */
export const sqeNlb = (dv: DataView, off: number): number =>
  (dv.getUint16(off + SqeOff.cdw12, true) & 0xffff) + 1;

/** A 64-bit little-endian field as a number. Above 2^53 it loses precision, which only matters for
 * values no namespace can reach, so range checks still reject them. */
export function readU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
}

export function writeU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x1_0000_0000) >>> 0, true);
}

/** Zero `len` bytes of a DataView without allocating. */
export function zero(dv: DataView, off: number, len: number): void {
  let i = 0;
  for (; i + 4 <= len; i += 4) dv.setUint32(off + i, 0);
  for (; i < len; i++) dv.setUint8(off + i, 0);
}

/** Encode the common SQE header: opcode, flags (fuse | PSDT), CID and NSID; the rest is zeroed. */
export function sqeInit(
  dv: DataView,
  off: number,
  opcode: number,
  flags: number,
  cid: number,
  nsid: number,
): void {
  zero(dv, off, SQE_SIZE);
  dv.setUint8(off, opcode);
  dv.setUint8(off + 1, flags);
  dv.setUint16(off + 2, cid, true);
  dv.setUint32(off + 4, nsid >>> 0, true);
}

export function sqeSetCdw(dv: DataView, off: number, n: number, v: number): void {
  dv.setUint32(off + 4 * n, v >>> 0, true);
}

/** Set the single SGL data descriptor (address, length, identifier). */
export function sqeSetSgl(dv: DataView, off: number, address: number, length: number, id: number): void {
  writeU64(dv, off + SqeOff.sglAddress, address);
  dv.setUint32(off + SqeOff.sglLength, length >>> 0, true);
  dv.setUint8(off + 36, 0);
  dv.setUint16(off + 37, 0, true);
  dv.setUint8(off + SqeOff.sglId, id);
}

/** The 15-bit status field of a CQE (without the phase bit): SC | SCT << 8 | CRD << 11 | M << 13 | DNR << 14. */
export function makeStatus(sct: number, sc: number, dnr = false): number {
  return (sc & 0xff) | ((sct & 7) << 8) | (dnr ? 1 << 14 : 0);
}
export const statusSc = (status: number): number => status & 0xff;
export const statusSct = (status: number): number => (status >> 8) & 7;
export const statusDnr = (status: number): boolean => (status & (1 << 14)) !== 0;
export const STATUS_SUCCESS = 0;

export function cqeWrite(
  dv: DataView,
  off: number,
  dw0: number,
  dw1: number,
  sqhd: number,
  sqid: number,
  cid: number,
  status: number,
): void {
  dv.setUint32(off, dw0 >>> 0, true);
  dv.setUint32(off + 4, dw1 >>> 0, true);
  dv.setUint16(off + 8, sqhd, true);
  dv.setUint16(off + 10, sqid, true);
  dv.setUint16(off + 12, cid, true);
  // Phase is meaningless on fabrics; the status field sits above it.
  dv.setUint16(off + 14, (status << 1) & 0xfffe, true);
}

export const cqeDw0 = (dv: DataView, off: number): number => dv.getUint32(off, true);
export const cqeDw1 = (dv: DataView, off: number): number => dv.getUint32(off + 4, true);
export const cqeSqhd = (dv: DataView, off: number): number => dv.getUint16(off + 8, true);
export const cqeSqid = (dv: DataView, off: number): number => dv.getUint16(off + 10, true);
export const cqeCid = (dv: DataView, off: number): number => dv.getUint16(off + 12, true);
export const cqeStatus = (dv: DataView, off: number): number => dv.getUint16(off + 14, true) >>> 1;

/** Human-readable status, e.g. `Generic/LbaOutOfRange (0x0/0x80)`, for errors and tool output. */
export function describeStatus(status: number, tables: Record<number, Record<string, number>>): string {
  const sct = statusSct(status);
  const sc = statusSc(status);
  const t = tables[sct];
  const name = t ? Object.entries(t).find(([, v]) => v === sc)?.[0] : undefined;
  return `${['Generic', 'CommandSpecific', 'Media', 'Path'][sct] ?? `SCT${sct}`}/${name ?? 'Unknown'} (0x${sct.toString(16)}/0x${sc.toString(16)})`;
}
