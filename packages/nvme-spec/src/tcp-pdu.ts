// NVMe/TCP PDU formats (NVMe/TCP Transport Specification, TP 8000): the common header, every PDU
// type's header layout, and encoders that write a header in place into a send buffer.

import { crc32cRange } from '@storkit/native';

export const PduType = {
  ICReq: 0x00,
  ICResp: 0x01,
  H2CTermReq: 0x02,
  C2HTermReq: 0x03,
  CapsuleCmd: 0x04,
  CapsuleResp: 0x05,
  H2CData: 0x06,
  C2HData: 0x07,
  R2T: 0x09,
} as const;

export const PduFlag = { HDGSTF: 0x01, DDGSTF: 0x02, LAST_PDU: 0x04, SUCCESS: 0x08 } as const;

/** Common header: PDU-type, FLAGS, HLEN, PDO, PLEN (u32). */
export const CH_SIZE = 8;
export const ChOff = { type: 0, flags: 1, hlen: 2, pdo: 3, plen: 4 } as const;

/** Header length (HLEN) of each PDU type. */
export const HLEN = {
  ICReq: 128,
  ICResp: 128,
  TermReq: 24,
  CapsuleCmd: 72,
  CapsuleResp: 24,
  H2CData: 24,
  C2HData: 24,
  R2T: 24,
} as const;

/** The HLEN a PDU type must carry, or 0 for an unknown type. */
export function hlenOf(type: number): number {
  switch (type) {
    case PduType.ICReq:
    case PduType.ICResp:
      return 128;
    case PduType.CapsuleCmd:
      return 72;
    case PduType.H2CTermReq:
    case PduType.C2HTermReq:
    case PduType.CapsuleResp:
    case PduType.H2CData:
    case PduType.C2HData:
    case PduType.R2T:
      return 24;
    default:
      return 0;
  }
}

export const DIGEST_SIZE = 4;
/** PDU format version 0 is the only one defined. */
export const PFV_1_0 = 0;
/** Largest header: ICReq/ICResp. */
export const MAX_HLEN = 128;
/** A TermReq carries at most this many bytes of the offending PDU's header. */
export const TERM_REQ_MAX_DATA = 152;

/** ICReq / ICResp fields. DGST bit 0 = header digest, bit 1 = data digest. */
export const IcOff = { pfv: 8, hpda: 10, cpda: 10, dgst: 11, maxr2t: 12, maxh2cdata: 12 } as const;
export const IcDigest = { Header: 1, Data: 2 } as const;

/** H2CData, C2HData and R2T fields. */
export const DataOff = { cccid: 8, ttag: 10, datao: 12, datal: 16, r2to: 12, r2tl: 16 } as const;

/** TermReq fields: fatal error status and information. */
export const TermOff = { fes: 8, fei: 10 } as const;

/** Fatal error status of H2C/C2HTermReq. */
export const Fes = {
  InvalidHeaderField: 0x01,
  PduSequenceError: 0x02,
  HeaderDigestError: 0x03,
  DataTransferOutOfRange: 0x04,
  DataTransferLimitExceeded: 0x05,
  UnsupportedParameter: 0x06,
} as const;

/** Write a common header. */
export function writeCh(
  dv: DataView,
  off: number,
  type: number,
  flags: number,
  hlen: number,
  pdo: number,
  plen: number,
) {
  dv.setUint8(off, type);
  dv.setUint8(off + 1, flags);
  dv.setUint8(off + 2, hlen);
  dv.setUint8(off + 3, pdo);
  dv.setUint32(off + 4, plen >>> 0, true);
}

/** Sizes of a PDU laid out with the negotiated digests and no padding (CPDA = 0). */
export function pduLayout(hlen: number, dataLen: number, hdgst: boolean, ddgst: boolean) {
  const pdo = dataLen > 0 ? hlen + (hdgst ? DIGEST_SIZE : 0) : 0;
  const plen = hlen + (hdgst ? DIGEST_SIZE : 0) + dataLen + (dataLen > 0 && ddgst ? DIGEST_SIZE : 0);
  return { pdo, plen };
}

/** Header digest of `hlen` bytes at `off`, stored after them; `bytes` is the buffer behind `dv`. */
export function putHeaderDigest(bytes: Uint8Array, dv: DataView, off: number, hlen: number): void {
  dv.setUint32(off + hlen, crc32cRange(bytes, off, off + hlen), true);
}

export function encodeIcReq(
  dv: DataView,
  off: number,
  o: { hpda: number; hdgst: boolean; ddgst: boolean; maxr2t: number },
) {
  for (let i = 0; i < HLEN.ICReq; i += 4) dv.setUint32(off + i, 0);
  writeCh(dv, off, PduType.ICReq, 0, HLEN.ICReq, 0, HLEN.ICReq);
  dv.setUint16(off + IcOff.pfv, PFV_1_0, true);
  dv.setUint8(off + IcOff.hpda, o.hpda);
  dv.setUint8(off + IcOff.dgst, (o.hdgst ? IcDigest.Header : 0) | (o.ddgst ? IcDigest.Data : 0));
  // MAXR2T is 0's based.
  dv.setUint32(off + IcOff.maxr2t, Math.max(0, o.maxr2t - 1), true);
}

export function encodeIcResp(
  dv: DataView,
  off: number,
  o: { cpda: number; hdgst: boolean; ddgst: boolean; maxh2cdata: number },
) {
  for (let i = 0; i < HLEN.ICResp; i += 4) dv.setUint32(off + i, 0);
  writeCh(dv, off, PduType.ICResp, 0, HLEN.ICResp, 0, HLEN.ICResp);
  dv.setUint16(off + IcOff.pfv, PFV_1_0, true);
  dv.setUint8(off + IcOff.cpda, o.cpda);
  dv.setUint8(off + IcOff.dgst, (o.hdgst ? IcDigest.Header : 0) | (o.ddgst ? IcDigest.Data : 0));
  dv.setUint32(off + IcOff.maxh2cdata, o.maxh2cdata, true);
}

/** Encode a TermReq header; the caller appends `dataLen` bytes of the offending header after it. */
export function encodeTermReq(
  dv: DataView,
  off: number,
  type: number,
  fes: number,
  fei: number,
  dataLen: number,
) {
  for (let i = 0; i < HLEN.TermReq; i += 4) dv.setUint32(off + i, 0);
  writeCh(dv, off, type, 0, HLEN.TermReq, 0, HLEN.TermReq + dataLen);
  dv.setUint16(off + TermOff.fes, fes, true);
  dv.setUint32(off + TermOff.fei, fei >>> 0, true);
}

/** Encode the 24-byte header of an H2CData, C2HData or R2T PDU (after its common header). */
export function encodeDataHeader(
  dv: DataView,
  off: number,
  cccid: number,
  ttag: number,
  offset: number,
  length: number,
): void {
  dv.setUint16(off + DataOff.cccid, cccid, true);
  dv.setUint16(off + DataOff.ttag, ttag, true);
  dv.setUint32(off + DataOff.datao, offset >>> 0, true);
  dv.setUint32(off + DataOff.datal, length >>> 0, true);
  dv.setUint32(off + 20, 0);
}
