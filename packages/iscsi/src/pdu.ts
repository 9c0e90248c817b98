/**
 * iSCSI PDU wire format (RFC 7143 section 11): opcodes, Basic Header Segment field offsets, and the
 * incremental receive-side parser. Every field offset used by the engine is defined here.
 */
import { crc32cRange } from '@storkit/native';
import { IscsiError } from './errors.js';

export const BHS_LENGTH = 48;
export const DIGEST_LENGTH = 4;
/** The Reserved Tag value (RFC 7143 11.2.1.8). */
export const RESERVED_TAG = 0xffffffff;

/** Initiator opcodes. */
export const IOp = {
  NopOut: 0x00,
  ScsiCommand: 0x01,
  TaskMgmt: 0x02,
  Login: 0x03,
  Text: 0x04,
  DataOut: 0x05,
  Logout: 0x06,
  Snack: 0x10,
} as const;

/** Target opcodes. */
export const TOp = {
  NopIn: 0x20,
  ScsiResponse: 0x21,
  TaskMgmtResponse: 0x22,
  LoginResponse: 0x23,
  TextResponse: 0x24,
  DataIn: 0x25,
  LogoutResponse: 0x26,
  R2t: 0x31,
  AsyncMessage: 0x32,
  Reject: 0x3f,
} as const;

/** BHS byte offsets shared by many PDU types. */
export const F = {
  Opcode: 0,
  Flags: 1,
  TotalAhsLength: 4,
  DataSegmentLength: 5,
  Lun: 8,
  Itt: 16,
  /** SCSI Command: Expected Data Transfer Length. */
  Edtl: 20,
  /** Data-In/Data-Out, NOP, Text, R2T: Target Transfer Tag. */
  Ttt: 20,
  /** Task Management Function Request: Referenced Task Tag. */
  RefTaskTag: 20,
  CmdSn: 24,
  StatSn: 24,
  ExpStatSn: 28,
  ExpCmdSn: 28,
  MaxCmdSn: 32,
  Cdb: 32,
  /** Task Management Function Request: RefCmdSN. */
  RefCmdSn: 32,
  DataSn: 36,
  BufferOffset: 40,
  ResidualCount: 44,
  DesiredLength: 44,
} as const;

export const OP_IMMEDIATE = 0x40;
export const FLAG_FINAL = 0x80;
/** SCSI Command flags. */
export const CmdFlag = { Read: 0x40, Write: 0x20, AttrMask: 0x07 } as const;
/** Data-In / SCSI Response residual flags. */
export const ResFlag = {
  Ack: 0x40,
  BidiOverflow: 0x10,
  BidiUnderflow: 0x08,
  Overflow: 0x04,
  Underflow: 0x02,
  Status: 0x01,
} as const;
/** Login flags. */
export const LoginFlag = { Transit: 0x80, Continue: 0x40 } as const;
export const Stage = { Security: 0, Operational: 1, FullFeature: 3 } as const;

/** Reject reasons (RFC 7143 11.17.1). */
export const RejectReason = {
  DataDigestError: 0x02,
  SnackReject: 0x03,
  ProtocolError: 0x04,
  CommandNotSupported: 0x05,
  ImmediateCommandReject: 0x06,
  TaskInProgress: 0x07,
  InvalidDataAck: 0x08,
  InvalidPduField: 0x09,
  LongOpReject: 0x0a,
  WaitingForLogout: 0x0c,
} as const;

/** Login response status (class << 8 | detail), RFC 7143 11.13.5. */
export const LoginStatus = {
  Success: 0x0000,
  TargetMovedTemporarily: 0x0101,
  InitiatorError: 0x0200,
  AuthenticationFailure: 0x0201,
  AuthorizationFailure: 0x0202,
  NotFound: 0x0203,
  TargetRemoved: 0x0204,
  UnsupportedVersion: 0x0205,
  TooManyConnections: 0x0206,
  MissingParameter: 0x0207,
  CantIncludeInSession: 0x0208,
  SessionTypeNotSupported: 0x0209,
  SessionDoesNotExist: 0x020a,
  InvalidDuringLogin: 0x020b,
  TargetError: 0x0300,
  ServiceUnavailable: 0x0301,
  OutOfResources: 0x0302,
} as const;

export function get32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
export function get16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}
export function set32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
export function set16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * A received PDU: a window into either the receive buffer (when the PDU arrived whole inside one
 * read) or the parser's staging buffer. Valid only during the callback that delivered it.
 */
export class Pdu {
  buf: Uint8Array = new Uint8Array(0);
  /** Offset of the BHS in `buf`. */
  off = 0;
  ahsLength = 0;
  dataLength = 0;
  /** Offset of the data segment in `buf`. */
  dataOff = 0;

  get opcode(): number {
    return this.buf[this.off] & 0x3f;
  }
  get immediate(): boolean {
    return (this.buf[this.off] & OP_IMMEDIATE) !== 0;
  }
  get flags(): number {
    return this.buf[this.off + 1];
  }
  byte(i: number): number {
    return this.buf[this.off + i];
  }
  u16(i: number): number {
    return get16(this.buf, this.off + i);
  }
  u32(i: number): number {
    return get32(this.buf, this.off + i);
  }
  get itt(): number {
    return this.u32(F.Itt);
  }
  /** LUN field decoded for single-level (peripheral and flat) addressing. */
  get lun(): number {
    const b0 = this.buf[this.off + F.Lun];
    const b1 = this.buf[this.off + F.Lun + 1];
    return ((b0 & 0x3f) << 8) | b1;
  }
  /** The data segment (a view: no copy). */
  data(): Uint8Array {
    return this.buf.subarray(this.dataOff, this.dataOff + this.dataLength);
  }
  /** The BHS (a view: no copy). */
  bhs(): Uint8Array {
    return this.buf.subarray(this.off, this.off + BHS_LENGTH);
  }
  /** The CDB, extended by an Extended CDB AHS when present (RFC 7143 11.3.4). */
  cdb(): Uint8Array {
    if (this.ahsLength === 0) return this.buf.subarray(this.off + F.Cdb, this.off + F.Cdb + 16);
    const a = this.off + BHS_LENGTH;
    const ahsLen = get16(this.buf, a);
    if (this.buf[a + 2] !== 1 || ahsLen < 1)
      return this.buf.subarray(this.off + F.Cdb, this.off + F.Cdb + 16);
    const out = new Uint8Array(16 + ahsLen - 1);
    out.set(this.buf.subarray(this.off + F.Cdb, this.off + F.Cdb + 16));
    out.set(this.buf.subarray(a + 4, a + 4 + ahsLen - 1), 16);
    return out;
  }
}

/**
 * The data digests' CRC32C, as native crc32cRange: an accel channel's (`AccelChannel.crc32cRange`)
 * has them done by the module assigned crc32c. Header digests (48 bytes) stay on the CPU's.
 */
export type DigestCrc = (buf: Uint8Array, start: number, end: number, seed?: number) => number;

export interface ParserLimits {
  /** Largest data segment accepted (our MaxRecvDataSegmentLength, or the login limit). */
  maxDataSegment: number;
  headerDigest: boolean;
  dataDigest: boolean;
  /** Data digests' CRC32C (default crc32cRange). */
  crc32c?: DigestCrc;
}

/** Outcome of a digest check, reported with the PDU. */
export const DigestResult = { Ok: 0, HeaderError: 1, DataError: 2 } as const;

export type PduHandler = (pdu: Pdu, digest: number) => void;

/**
 * Incremental PDU parser: `push` any slicing of the byte stream (PDUs split across reads or packed
 * several per read). Whole PDUs inside one read are delivered as views of that read; only PDUs that
 * straddle reads are assembled in a staging buffer that is reused.
 */
export class PduParser {
  readonly limits: ParserLimits;
  readonly #pdu = new Pdu();
  #stage = new Uint8Array(BHS_LENGTH + 8192);
  #have = 0;
  /** Total length of the PDU being staged, 0 until its BHS is complete. */
  #need = 0;
  #failed: IscsiError | null = null;

  constructor(limits: ParserLimits) {
    this.limits = limits;
  }

  /** Feeds bytes; calls `onPdu` for each complete PDU. Throws IscsiError on a malformed stream. */
  push(chunk: Uint8Array, onPdu: PduHandler): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#push(chunk, onPdu);
    } catch (e) {
      if (e instanceof IscsiError) this.#failed = e;
      throw e;
    }
  }

  #push(chunk: Uint8Array, onPdu: PduHandler): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.#have === 0) {
        // Fast path: whole PDUs inside this read are parsed in place.
        if (end - pos >= BHS_LENGTH) {
          const total = this.#totalLength(chunk, pos);
          if (end - pos >= total) {
            this.#deliver(chunk, pos, onPdu);
            pos += total;
            continue;
          }
        }
      }
      pos = this.#stageBytes(chunk, pos, end, onPdu);
    }
  }

  #stageBytes(chunk: Uint8Array, pos: number, end: number, onPdu: PduHandler): number {
    if (this.#need === 0) {
      const n = Math.min(BHS_LENGTH - this.#have, end - pos);
      this.#stage.set(chunk.subarray(pos, pos + n), this.#have);
      this.#have += n;
      pos += n;
      if (this.#have < BHS_LENGTH) return pos;
      this.#need = this.#totalLength(this.#stage, 0);
      if (this.#stage.length < this.#need) {
        const grown = new Uint8Array(this.#need);
        grown.set(this.#stage.subarray(0, this.#have));
        this.#stage = grown;
      }
    }
    const n = Math.min(this.#need - this.#have, end - pos);
    this.#stage.set(chunk.subarray(pos, pos + n), this.#have);
    this.#have += n;
    pos += n;
    if (this.#have === this.#need) {
      this.#have = 0;
      this.#need = 0;
      this.#deliver(this.#stage, 0, onPdu);
    }
    return pos;
  }

  /** Full on-wire length of the PDU whose BHS starts at `off`; validates lengths first. */
  #totalLength(b: Uint8Array, off: number): number {
    const ahs = b[off + F.TotalAhsLength] * 4;
    const dlen = (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7];
    if (dlen > this.limits.maxDataSegment) {
      throw new IscsiError(
        'EPROTO',
        `DataSegmentLength ${dlen} exceeds MaxRecvDataSegmentLength ${this.limits.maxDataSegment}`,
      );
    }
    const hd = this.limits.headerDigest ? DIGEST_LENGTH : 0;
    const dd = this.limits.dataDigest && dlen > 0 ? DIGEST_LENGTH : 0;
    return BHS_LENGTH + ahs + hd + pad4(dlen) + dd;
  }

  #deliver(b: Uint8Array, off: number, onPdu: PduHandler): void {
    const p = this.#pdu;
    p.buf = b;
    p.off = off;
    p.ahsLength = b[off + F.TotalAhsLength] * 4;
    p.dataLength = (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7];
    let o = off + BHS_LENGTH + p.ahsLength;
    let digest: number = DigestResult.Ok;
    if (this.limits.headerDigest) {
      const want = crc32cRange(b, off, o);
      if (readLe32(b, o) !== want) throw new IscsiError('EPROTO', 'header digest mismatch');
      o += DIGEST_LENGTH;
    }
    p.dataOff = o;
    if (this.limits.dataDigest && p.dataLength > 0) {
      const padded = pad4(p.dataLength);
      const want = (this.limits.crc32c ?? crc32cRange)(b, o, o + padded);
      if (readLe32(b, o + padded) !== want) digest = DigestResult.DataError;
    }
    onPdu(p, digest);
  }
}

/** Digests travel least significant byte first (RFC 7143 11.1 note on CRC32C). */
export function readLe32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

export function writeLe32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

export interface EncodeOptions {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Data digests' CRC32C (default crc32cRange). */
  crc32c?: DigestCrc;
}

/** On-wire size of a PDU with `dataLen` bytes of data. */
export function pduLength(dataLen: number, opts: EncodeOptions): number {
  const hd = opts.headerDigest ? DIGEST_LENGTH : 0;
  const dd = opts.dataDigest && dataLen > 0 ? DIGEST_LENGTH : 0;
  return BHS_LENGTH + hd + pad4(dataLen) + dd;
}

/**
 * Serialises a PDU into `out` (exactly `pduLength` bytes): `bhs` (48 bytes, DataSegmentLength
 * filled in here) plus `data` (a sub-range), padding and digests.
 */
export function encodePduInto(
  out: Uint8Array,
  bhs: Uint8Array,
  data: Uint8Array | null,
  dataOff: number,
  dataLen: number,
  opts: EncodeOptions,
): void {
  const padded = pad4(dataLen);
  bhs[4] = 0;
  bhs[5] = (dataLen >>> 16) & 0xff;
  bhs[6] = (dataLen >>> 8) & 0xff;
  bhs[7] = dataLen & 0xff;
  // Whole arrays go through TypedArray#set with no view made (a view per PDU is garbage per I/O).
  out.set(bhs.length === BHS_LENGTH ? bhs : bhs.subarray(0, BHS_LENGTH), 0);
  let o = BHS_LENGTH;
  if (opts.headerDigest) {
    writeLe32(out, o, crc32cRange(out, 0, BHS_LENGTH));
    o += DIGEST_LENGTH;
  }
  if (dataLen > 0 && data) {
    out.set(dataOff === 0 && dataLen === data.length ? data : data.subarray(dataOff, dataOff + dataLen), o);
    out.fill(0, o + dataLen, o + padded);
    if (opts.dataDigest) writeLe32(out, o + padded, (opts.crc32c ?? crc32cRange)(out, o, o + padded));
  }
}

/** `encodePduInto` a freshly allocated buffer (control path and tests). */
export function encodePdu(
  bhs: Uint8Array,
  data: Uint8Array | null,
  dataOff: number,
  dataLen: number,
  opts: EncodeOptions,
): Uint8Array {
  const out = Buffer.allocUnsafe(pduLength(dataLen, opts));
  encodePduInto(out, bhs, data, dataOff, dataLen, opts);
  return out;
}

/** A PDU's header segments and data, without digests or padding, as one buffer. */
export function compactPdu(p: Pdu): Uint8Array {
  const hdr = BHS_LENGTH + p.ahsLength;
  const out = new Uint8Array(hdr + p.dataLength);
  out.set(p.buf.subarray(p.off, p.off + hdr), 0);
  out.set(p.data(), hdr);
  return out;
}

/** The Pdu over a compactPdu buffer (its header and data, as received). */
export function pduFromCompact(bytes: Uint8Array): Pdu {
  const p = new Pdu();
  p.buf = bytes;
  p.off = 0;
  p.ahsLength = bytes[F.TotalAhsLength] * 4;
  p.dataLength = (bytes[5] << 16) | (bytes[6] << 8) | bytes[7];
  p.dataOff = BHS_LENGTH + p.ahsLength;
  return p;
}
