/**
 * The send path of one connection: PDU headers built in one reused header buffer, sequence numbers
 * stamped, PDUs encoded into the connection's transmit arena and handed to its sink in order.
 */
import { crc32cRange } from '@storkit/native';
import { TxArena } from './arena.js';
import type { Connection } from './connection.js';
import {
  BHS_LENGTH,
  type EncodeOptions,
  encodePduInto,
  F,
  FLAG_FINAL,
  type Pdu,
  pduLength,
  RESERVED_TAG,
  set32,
  TOp,
} from './pdu.js';

/**
 * Where the engine's output goes: one call per PDU, in order. `flushed` must be called once per
 * write, in write order, when the sink no longer needs the bytes (they are then reused).
 */
export interface PduSink {
  write(pdu: Uint8Array, flushed: () => void): void;
  /** Flush what was written, then close the transport. */
  close(): void;
}

export class PduTx {
  readonly #conn: Connection;
  readonly sink: PduSink;
  readonly #bhs = new Uint8Array(BHS_LENGTH);
  readonly #tx = new TxArena();
  readonly #flushed = () => this.#tx.release();
  statSn = 1;
  /** Digests of what we send: off during login, as negotiated afterwards. */
  readonly opts: EncodeOptions = { headerDigest: false, dataDigest: false, crc32c: crc32cRange };
  /** The peer's MaxRecvDataSegmentLength: largest data segment we may send. */
  maxSend = 8192;
  #nextTtt = 1;

  constructor(conn: Connection, sink: PduSink) {
    this.#conn = conn;
    this.sink = sink;
  }

  /** The header buffer, cleared, with opcode and flags set (valid until the next hdr). */
  hdr(op: number, flags: number): Uint8Array {
    const b = this.#bhs;
    b.fill(0);
    b[0] = op;
    b[1] = flags;
    return b;
  }

  /** StatSN (advanced when `statSn`), ExpCmdSN and MaxCmdSN of the session. */
  sn(b: Uint8Array, statSn: boolean): void {
    const s = this.#conn.session;
    if (statSn) set32(b, F.StatSn, this.statSn++ >>> 0);
    else set32(b, F.StatSn, this.statSn >>> 0);
    set32(b, F.ExpCmdSn, s ? s.expCmdSn : 0);
    set32(b, F.MaxCmdSn, s ? s.maxCmdSn : 0);
  }

  send(b: Uint8Array, data: Uint8Array | null, off = 0, len = data ? data.length : 0): void {
    if (this.#conn.state === 'closed') return;
    this.#conn.stats.pdusOut++;
    const out = this.#tx.alloc(pduLength(len, this.opts));
    encodePduInto(out, b, data, off, len, this.opts);
    this.sink.write(out, this.#flushed);
  }

  reject(p: Pdu, reason: number): void {
    this.#conn.stats.rejects++;
    const b = this.hdr(TOp.Reject, FLAG_FINAL);
    b[2] = reason;
    set32(b, F.Itt, RESERVED_TAG);
    this.sn(b, true);
    // The rejected PDU's header goes back as data; copy it first, the header buffer is being filled.
    this.send(b, p.bhs().slice());
  }

  /** A new Target Transfer Tag (R2T, NOP-In ping, Text continuation). */
  ttt(): number {
    const t = this.#nextTtt;
    this.#nextTtt = this.#nextTtt >= 0x7fffffff ? 1 : this.#nextTtt + 1;
    return t;
  }
}
