// Incremental NVMe/TCP PDU framer. TCP delivers arbitrary slices of the byte stream: a PDU may
// be split across reads, several may arrive in one. Headers are handed to the handler as a
// DataView over the read buffer when they lie in one piece (staged into a small fixed buffer only
// when split), and data is handed over as ranges of the read buffer, so a payload is copied once,
// by the handler, straight to where it belongs. Shared by the target's qpair and the host's.

import { crc32cRange } from '@storkit/native';

import { NvmeTcpProtocolError } from '../errors.js';
import { CH_SIZE, DIGEST_SIZE, Fes, hlenOf, MAX_HLEN, PduFlag, PduType } from '../tcp-pdu.js';

export interface PduHandler {
  /**
   * A complete, validated header. `dv`/`off` address the common header; valid only during the call.
   * `dataLen` bytes of data follow (delivered by onPduData). Throw NvmeTcpProtocolError to reject.
   */
  onPduHeader(type: number, flags: number, dv: DataView, off: number, dataLen: number): void;
  /** Bytes `[start, end)` of `buf` are data at `dataOffset` within the current PDU's data. */
  onPduData(buf: Uint8Array, start: number, end: number, dataOffset: number): void;
  /** The current PDU is complete; `digestOk` is false only when its data digest did not match. */
  onPduEnd(digestOk: boolean): void;
}

enum State {
  Header,
  Skip,
  Data,
  Digest,
}

const protoErr = (fes: number, fei: number, msg: string) => new NvmeTcpProtocolError(fes, fei, msg);

export class PduReader {
  hdgst = false;
  ddgst = false;
  /** Largest PLEN accepted; longer PDUs end the connection (DataTransferLimitExceeded). */
  maxPlen: number;
  /** Set by the owner to stop parsing the rest of a read (connection closing). */
  stopped = false;
  /**
   * The data digests' CRC32C, as native crc32cRange: the owner may give its accel channel's
   * (`AccelChannel.crc32cRange`) so the framework's assignment does them. Header digests stay here.
   */
  crc32c: typeof crc32cRange = crc32cRange;

  readonly #h: PduHandler;
  // Header staging for headers split across reads: header, digest and padding before PDO.
  readonly #stage = new Uint8Array(MAX_HLEN + DIGEST_SIZE + 256);
  readonly #stageDv = new DataView(this.#stage.buffer);
  #staged = 0;
  #state = State.Header;
  #skip = 0;
  #dataLen = 0;
  #dataDone = 0;
  #hasDigest = false;
  #crc = 0;
  readonly #dig = new Uint8Array(4);
  #digGot = 0;

  constructor(handler: PduHandler, maxPlen: number) {
    this.#h = handler;
    this.maxPlen = maxPlen;
  }

  /** After a header error: the offending header bytes (for the TermReq that reports it). */
  errorHeader: Uint8Array | null = null;

  /**
   * Feed one read: the first `len` bytes of `buf` (all of it by default, so a transport that reads
   * into one fixed buffer passes it with the byte count and nothing is allocated per read).
   * Throws NvmeTcpProtocolError (and only that) on a protocol violation.
   */
  push(buf: Uint8Array, len = buf.length): void {
    let pos = 0;
    try {
      pos = this.#push(buf, len);
    } catch (e) {
      if (this.#state === State.Header) {
        const hlen = Math.min(hlenOf(this.#staged ? this.#stage[0] : buf[this.#errPos]) || 8, 128);
        this.errorHeader = this.#staged
          ? this.#stage.slice(0, Math.min(this.#staged, hlen))
          : buf.slice(this.#errPos, Math.min(len, this.#errPos + hlen));
      }
      this.stopped = true;
      throw e;
    }
    return void pos;
  }

  #errPos = 0;

  // DataView of the last buffer read from: reused while a transport reads into the same buffer.
  #dvBuf: Uint8Array | null = null;
  #dv: DataView | null = null;

  #viewOf(buf: Uint8Array): DataView {
    if (this.#dvBuf !== buf) {
      this.#dvBuf = buf;
      this.#dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    return this.#dv!;
  }

  #push(buf: Uint8Array, len: number): number {
    let dv: DataView | undefined;
    let pos = 0;
    while (pos < len && !this.stopped) {
      switch (this.#state) {
        case State.Header: {
          if (this.#staged === 0 && len - pos >= CH_SIZE) {
            const need = this.#headerSpan(buf, pos);
            this.#errPos = pos;
            if (len - pos >= need) {
              dv ??= this.#viewOf(buf);
              this.#header(buf, dv, pos);
              pos += need;
              break;
            }
          }
          // Stage: first the common header, then the rest once HLEN/PDO are known.
          const want = this.#staged < CH_SIZE ? CH_SIZE : this.#headerSpan(this.#stage, 0);
          const n = Math.min(want - this.#staged, len - pos);
          for (let i = 0; i < n; i++) this.#stage[this.#staged + i] = buf[pos + i];
          this.#staged += n;
          pos += n;
          if (this.#staged === CH_SIZE) this.#headerSpan(this.#stage, 0);
          if (this.#staged >= CH_SIZE && this.#staged === this.#headerSpan(this.#stage, 0)) {
            this.#header(this.#stage, this.#stageDv, 0);
            this.#staged = 0;
          }
          break;
        }
        case State.Skip: {
          const n = Math.min(this.#skip, len - pos);
          this.#skip -= n;
          pos += n;
          if (this.#skip === 0) this.#afterSkip();
          break;
        }
        case State.Data: {
          const n = Math.min(this.#dataLen - this.#dataDone, len - pos);
          if (this.#hasDigest) this.#crc = this.crc32c(buf, pos, pos + n, this.#crc);
          this.#h.onPduData(buf, pos, pos + n, this.#dataDone);
          this.#dataDone += n;
          pos += n;
          if (this.#dataDone === this.#dataLen) this.#afterData();
          break;
        }
        case State.Digest: {
          const n = Math.min(DIGEST_SIZE - this.#digGot, len - pos);
          for (let i = 0; i < n; i++) this.#dig[this.#digGot + i] = buf[pos + i];
          this.#digGot += n;
          pos += n;
          if (this.#digGot === DIGEST_SIZE) {
            const got =
              (this.#dig[0] | (this.#dig[1] << 8) | (this.#dig[2] << 16) | (this.#dig[3] << 24)) >>> 0;
            this.#end(got === this.#crc);
          }
          break;
        }
      }
    }
    return pos;
  }

  // Bytes from the PDU start through its header digest (the part parsed as header), after
  // validating the common header fields that decide it.
  #headerSpan(b: Uint8Array, p: number): number {
    const type = b[p];
    const hlen = hlenOf(type);
    if (hlen === 0) throw protoErr(Fes.InvalidHeaderField, 0, `unknown PDU type 0x${type.toString(16)}`);
    if (b[p + 2] !== hlen)
      throw protoErr(Fes.InvalidHeaderField, 2, `HLEN ${b[p + 2]} for PDU type ${type}, want ${hlen}`);
    const plen = (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0;
    const hd = this.#digestsApply(type) && (b[p + 1] & PduFlag.HDGSTF) !== 0 ? DIGEST_SIZE : 0;
    if (plen < hlen + hd) throw protoErr(Fes.InvalidHeaderField, 4, `PLEN ${plen} shorter than header`);
    if (plen > this.maxPlen)
      throw protoErr(Fes.DataTransferLimitExceeded, 4, `PLEN ${plen} exceeds ${this.maxPlen}`);
    return hlen + hd;
  }

  #digestsApply(type: number): boolean {
    return (
      type !== PduType.ICReq &&
      type !== PduType.ICResp &&
      type !== PduType.H2CTermReq &&
      type !== PduType.C2HTermReq
    );
  }

  #header(b: Uint8Array, dv: DataView, p: number): void {
    const type = b[p];
    const flags = b[p + 1];
    const hlen = b[p + 2];
    const pdo = b[p + 3];
    const plen = dv.getUint32(p + 4, true);
    const digests = this.#digestsApply(type);
    const hasH = digests && (flags & PduFlag.HDGSTF) !== 0;
    if (digests && hasH !== this.hdgst)
      throw protoErr(Fes.InvalidHeaderField, 1, 'HDGSTF does not match the negotiated header digest');
    if (hasH) {
      const want = crc32cRange(b, p, p + hlen);
      if (dv.getUint32(p + hlen, true) !== want)
        throw new NvmeTcpProtocolError(Fes.HeaderDigestError, 0, 'header digest mismatch');
    }
    const hasD = digests && (flags & PduFlag.DDGSTF) !== 0;
    if (hasD && !this.ddgst)
      throw protoErr(Fes.InvalidHeaderField, 1, 'DDGSTF set without a negotiated data digest');
    const hEnd = hlen + (hasH ? DIGEST_SIZE : 0);
    let dataStart = hEnd;
    if (type === PduType.CapsuleCmd || type === PduType.H2CData || type === PduType.C2HData) {
      if (plen > hEnd) {
        if (pdo < hEnd || pdo > plen || pdo - hEnd > 256 - DIGEST_SIZE)
          throw protoErr(Fes.InvalidHeaderField, 3, `PDO ${pdo} outside the PDU`);
        dataStart = pdo;
      } else if (pdo !== 0 && pdo !== hEnd) {
        throw protoErr(Fes.InvalidHeaderField, 3, `PDO ${pdo} in a PDU without data`);
      }
    } else if (!digests) {
      // IC and TermReq PDUs carry no digests and (TermReq) data right after the header.
    } else if (plen !== hEnd) {
      throw protoErr(Fes.InvalidHeaderField, 4, `PLEN ${plen} for a PDU without data`);
    }
    let dataLen = plen - dataStart;
    if (hasD && dataLen > 0) {
      if (dataLen < DIGEST_SIZE)
        throw protoErr(Fes.InvalidHeaderField, 4, 'PLEN leaves no room for the data digest');
      dataLen -= DIGEST_SIZE;
    }
    if (this.ddgst && digests && dataLen > 0 && !hasD)
      throw protoErr(Fes.InvalidHeaderField, 1, 'data without the negotiated data digest');
    this.#hasDigest = hasD && dataLen > 0;
    this.#dataLen = dataLen;
    this.#dataDone = 0;
    this.#crc = 0;
    this.#h.onPduHeader(type, flags, dv, p, dataLen);
    this.#skip = dataStart - hEnd;
    if (this.#skip > 0) this.#state = State.Skip;
    else this.#afterSkip();
  }

  #afterSkip(): void {
    if (this.#dataLen > 0) this.#state = State.Data;
    else this.#afterData();
  }

  #afterData(): void {
    if (this.#hasDigest) {
      this.#state = State.Digest;
      this.#digGot = 0;
    } else {
      this.#end(true);
    }
  }

  #end(ok: boolean): void {
    this.#state = State.Header;
    this.#h.onPduEnd(ok);
  }

  /** Whether the reader sits exactly between PDUs (nothing partial buffered). */
  get idle(): boolean {
    return this.#state === State.Header && this.#staged === 0;
  }
}
