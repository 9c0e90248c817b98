/**
 * The protocol engine of one iSCSI connection: bytes in (`receive`), PDUs out through a `PduSink`.
 * It knows nothing about sockets, so a reactor poller can drive it as well as `node:net`. It is the
 * coordinator: login (login.ts), the SCSI command path (scsi-io.ts), the other requests
 * (control.ts) and the send path (pdu-tx.ts) are rooms of their own, as in SPDK's iscsi.c.
 */
import { crc32cRange } from '@storkit/native';
import { ControlPath } from './control.js';
import { IscsiError } from './errors.js';
import type { SessionParams } from './keys.js';
import { Login } from './login.js';
import {
  compactPdu,
  DigestResult,
  F,
  IOp,
  type Pdu,
  PduParser,
  pduFromCompact,
  RESERVED_TAG,
  RejectReason,
} from './pdu.js';
import { type PduSink, PduTx } from './pdu-tx.js';
import { ScsiIo } from './scsi-io.js';
import type { Session } from './session.js';
import type { IscsiTarget } from './target.js';

export type { PduSink } from './pdu-tx.js';

export interface ConnectionInfo {
  portalGroupTag: number;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

export type ConnectionState = 'login' | 'full' | 'closing' | 'closed';

/** Largest text accepted during login and for Text requests (RFC 7143: 8192 by default). */
const LOGIN_MAX_SEGMENT = 65536;

export class Connection {
  readonly target: IscsiTarget;
  readonly info: ConnectionInfo;
  state: ConnectionState = 'login';
  session: Session | null = null;
  cid = 0;
  readonly #parser: PduParser;
  readonly #tx: PduTx;
  /** @internal The SCSI command path (task management on another connection reaches it). */
  readonly scsi: ScsiIo;
  readonly #control: ControlPath;
  readonly #onPdu = (p: Pdu, d: number) => this.#handle(p, d);
  /** @internal When bytes last came in (the keepalive pings after a quiet interval). */
  lastRx = Date.now();
  readonly stats = { pdusIn: 0, pdusOut: 0, rejects: 0, bufferWaits: 0 };
  // Login state.
  #login: Login | null = new Login(this, {
    hdr: (op, flags) => this.#tx.hdr(op, flags),
    send: (b, data) => this.#tx.send(b, data),
    setStatSn: (sn) => {
      this.#tx.statSn = sn;
    },
    nextStatSn: () => this.#tx.statSn++ >>> 0,
    close: () => this.endAfterResponse(),
    fullFeature: (params) => this.#enterFullFeature(params),
  });

  constructor(target: IscsiTarget, sink: PduSink, info: ConnectionInfo) {
    this.target = target;
    this.info = info;
    this.#tx = new PduTx(this, sink);
    this.scsi = new ScsiIo(this, this.#tx);
    this.#control = new ControlPath(this, this.#tx);
    this.#parser = new PduParser({
      maxDataSegment: LOGIN_MAX_SEGMENT,
      headerDigest: false,
      dataDigest: false,
      crc32c: crc32cRange,
    });
  }

  /** The first login request has named its initiator and target (or login is over). */
  get identified(): boolean {
    return this.#login === null || this.#login.identified || this.state !== 'login';
  }

  /** Bytes from the transport. Protocol errors end this connection only. */
  receive(chunk: Uint8Array): void {
    if (this.state === 'closed') return;
    this.lastRx = Date.now();
    try {
      this.#parser.push(chunk, this.#onPdu);
    } catch (e) {
      if (!(e instanceof IscsiError)) throw e;
      this.drop(e.message);
    }
  }

  /** The transport went away (or `drop` finished): release everything. */
  closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.#control.stop();
    this.scsi.closed();
    this.target.connections.delete(this);
    this.session?.connectionGone(this);
  }

  /** Ends this connection at once (protocol error, reinstatement, reset). */
  drop(_why: string): void {
    if (this.state === 'closed') return;
    this.#tx.sink.close();
    this.closed();
  }

  /** @internal After the last response of a login or logout: flush what was sent, then close. */
  endAfterResponse(): void {
    this.state = 'closing';
    this.#tx.sink.close();
    this.closed();
  }

  describe() {
    const s = this.session;
    return {
      id: this.cid,
      cid: this.cid,
      tsih: s?.tsih ?? 0,
      initiator_addr: this.info.remoteAddress,
      target_addr: this.info.localAddress,
      target_node_name: s?.node?.name ?? '',
      initiator_name: s?.initiatorName ?? '',
      state: this.state,
    };
  }

  /** Re-runs a PDU stashed by the session until its CmdSN came up. */
  replay(bytes: Uint8Array): void {
    if (this.state !== 'full') return;
    this.#dispatchOrdered(pduFromCompact(bytes), true);
  }

  // ---- receive dispatch

  #handle(p: Pdu, digest: number): void {
    this.stats.pdusIn++;
    if (this.state === 'closed' || this.state === 'closing') return;
    if (digest === DigestResult.DataError) {
      this.#tx.reject(p, RejectReason.DataDigestError);
      this.drop('data digest error');
      return;
    }
    if (this.state === 'login') {
      this.#login?.receive(p);
      return;
    }
    switch (p.opcode) {
      case IOp.DataOut: {
        this.scsi.dataOut(p);
        return;
      }
      case IOp.NopOut:
        if (p.itt === RESERVED_TAG) {
          this.#control.nopReply(p);
          return;
        }
        {
          this.#ordered(p);
          return;
        }
      case IOp.ScsiCommand:
      case IOp.TaskMgmt:
      case IOp.Text:
      case IOp.Logout: {
        this.#ordered(p);
        return;
      }
      case IOp.Snack: {
        this.#tx.reject(p, RejectReason.SnackReject);
        return;
      }
      default:
        this.#tx.reject(p, RejectReason.ProtocolError);
        {
          this.drop(`unknown opcode 0x${p.opcode.toString(16)}`);
          return;
        }
    }
  }

  /** CmdSN ordering for non-immediate requests (RFC 7143 3.2.2.1). */
  #ordered(p: Pdu): void {
    const s = this.session!;
    if (p.immediate) {
      this.#dispatchOrdered(p, false);
      return;
    }
    const cmdSn = p.u32(F.CmdSn);
    const where = s.classify(cmdSn);
    if (where < 0) return;
    if (where > 0) {
      s.stash(cmdSn, this, compactPdu(p));
      // Unsolicited Data-Out for it may arrive before its turn: keep that too (see ScsiIo.dataOut).
      if (p.opcode === IOp.ScsiCommand) this.scsi.waitsForCmdSn(p.itt);
      return;
    }
    s.take();
    this.#dispatchOrdered(p, true);
    s.drain();
  }

  /** `windowed`: the PDU took a CmdSN slot (non-immediate). */
  #dispatchOrdered(p: Pdu, windowed: boolean): void {
    switch (p.opcode) {
      case IOp.ScsiCommand: {
        this.scsi.command(p, windowed);
        return;
      }
      case IOp.NopOut: {
        this.#control.nopOut(p);
        return;
      }
      case IOp.TaskMgmt: {
        this.#control.taskMgmt(p);
        return;
      }
      case IOp.Text: {
        this.#control.text(p);
        return;
      }
      case IOp.Logout: {
        this.#control.logout(p);
        return;
      }
    }
  }

  #enterFullFeature(params: SessionParams): void {
    this.state = 'full';
    this.#tx.opts.headerDigest = params.headerDigest;
    this.#tx.opts.dataDigest = params.dataDigest;
    this.#tx.maxSend = params.maxSendDataSegment;
    this.#parser.limits.headerDigest = params.headerDigest;
    this.#parser.limits.dataDigest = params.dataDigest;
    this.#tx.opts.crc32c = this.#parser.limits.crc32c = this.target.crc32c ?? crc32cRange;
    this.#parser.limits.maxDataSegment = this.target.options.max_recv_data_segment_length;
    this.#login = null;
    this.#control.startKeepalive();
  }

  /** Sends a NOP-In that asks the initiator for a NOP-Out (liveness check). */
  sendPing(): void {
    this.#control.sendPing();
  }

  /** Asks the initiator to log out (Async Message, AsyncEvent 1) within `seconds`. */
  requestLogout(seconds = 5): void {
    this.#control.requestLogout(seconds);
  }

  /** Statistics of the data-out buffer accounting: exposed for tests. */
  get outstanding(): number {
    return this.scsi.outstanding;
  }
}
