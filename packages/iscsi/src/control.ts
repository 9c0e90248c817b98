/**
 * The requests of one connection beside SCSI commands (SPDK's iscsi.c nopout / text / logout /
 * task management part): NOP-Out and the NOP-In keepalive, Text (SendTargets), Logout, the
 * Async Message asking for one, and task management. None of them is on the per-I/O path.
 */
import type { ScsiTask } from '@storkit/scsi';
import type { Connection } from './connection.js';
import { encodeText, type KeyPairs, parseText, TEXT_LIMIT } from './keys.js';
import { F, FLAG_FINAL, LoginFlag, type Pdu, RESERVED_TAG, RejectReason, set16, set32, TOp } from './pdu.js';
import type { PduTx } from './pdu-tx.js';
import type { TargetNode } from './target.js';

export class ControlPath {
  readonly #conn: Connection;
  readonly #tx: PduTx;
  // Text request continuation: pending request text and pending response text.
  #textIn: Uint8Array[] = [];
  #textOut: Uint8Array | null = null;
  #textOutTtt = 0;
  // NOP-In keepalive.
  #timer: ReturnType<typeof setInterval> | null = null;
  #pingTtt = 0;
  #pingAt = 0;

  constructor(conn: Connection, tx: PduTx) {
    this.#conn = conn;
    this.#tx = tx;
  }

  /** The connection is gone: no more pings. */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  nopOut(p: Pdu): void {
    const b = this.#tx.hdr(TOp.NopIn, FLAG_FINAL);
    b.set(p.buf.subarray(p.off + F.Lun, p.off + F.Lun + 8), F.Lun);
    set32(b, F.Itt, p.itt);
    set32(b, F.Ttt, RESERVED_TAG);
    this.#tx.sn(b, true);
    this.#tx.send(b, p.data().slice());
  }

  /** NOP-Out answering our NOP-In ping (ITT reserved): no response, just clears the ping. */
  nopReply(p: Pdu): void {
    if (p.u32(F.Ttt) === this.#pingTtt) this.#pingTtt = 0;
  }

  /** From full feature phase on: NOP-In pings when the initiator is quiet (nop_in_interval). */
  startKeepalive(): void {
    const o = this.#conn.target.options;
    if (o.nop_in_interval <= 0) return;
    const periodMs = Math.min(o.nop_in_interval * 1000, 1000);
    this.#timer = setInterval(() => this.#keepalive(), periodMs);
    this.#timer.unref?.();
  }

  #keepalive(): void {
    const o = this.#conn.target.options;
    const now = Date.now();
    if (this.#pingTtt !== 0) {
      if (now - this.#pingAt > o.nop_timeout * 1000) this.#conn.drop('NOP-In ping timed out');
      return;
    }
    if (now - this.#conn.lastRx < o.nop_in_interval * 1000) return;
    this.sendPing();
  }

  /** Sends a NOP-In that asks the initiator for a NOP-Out (liveness check). */
  sendPing(): void {
    this.#pingTtt = this.#tx.ttt();
    this.#pingAt = Date.now();
    const b = this.#tx.hdr(TOp.NopIn, FLAG_FINAL);
    set32(b, F.Itt, RESERVED_TAG);
    set32(b, F.Ttt, this.#pingTtt);
    this.#tx.sn(b, false);
    this.#tx.send(b, null);
  }

  /** Asks the initiator to log out (Async Message, AsyncEvent 1) within `seconds`. */
  requestLogout(seconds = 5): void {
    const b = this.#tx.hdr(TOp.AsyncMessage, FLAG_FINAL);
    set32(b, F.Itt, RESERVED_TAG);
    this.#tx.sn(b, false);
    b[36] = 1;
    set16(b, 40, 0);
    set16(b, 42, 0);
    set16(b, 44, seconds);
    this.#tx.send(b, null);
  }

  text(p: Pdu): void {
    const ttt = p.u32(F.Ttt);
    const flags = p.flags;
    if (ttt !== RESERVED_TAG && this.#textOut && ttt === this.#textOutTtt) {
      this.#sendTextChunk(p.itt);
      return;
    }
    this.#textOut = null;
    this.#textIn.push(p.data().slice());
    const size = this.#textIn.reduce((a, b) => a + b.length, 0);
    if (size > TEXT_LIMIT) {
      this.#textIn = [];
      this.#tx.reject(p, RejectReason.ProtocolError);
      return;
    }
    if (flags & LoginFlag.Continue) {
      const b = this.#tx.hdr(TOp.TextResponse, 0);
      set32(b, F.Itt, p.itt);
      set32(b, F.Ttt, this.#tx.ttt());
      this.#tx.sn(b, true);
      this.#tx.send(b, null);
      return;
    }
    let pairs: KeyPairs;
    try {
      pairs = parseText(Buffer.concat(this.#textIn));
    } catch {
      this.#textIn = [];
      this.#tx.reject(p, RejectReason.ProtocolError);
      return;
    }
    this.#textIn = [];
    const answer: KeyPairs = [];
    for (const [k, v] of pairs) {
      if (k === 'SendTargets') answer.push(...this.#sendTargets(v));
      else answer.push([k, 'NotUnderstood']);
    }
    this.#textOut = encodeText(answer);
    this.#textOutTtt = this.#tx.ttt();
    this.#sendTextChunk(p.itt);
  }

  #sendTextChunk(itt: number): void {
    const out = this.#textOut!;
    const n = Math.min(out.length, this.#tx.maxSend);
    const last = n === out.length;
    const b = this.#tx.hdr(TOp.TextResponse, last ? FLAG_FINAL : LoginFlag.Continue);
    set32(b, F.Itt, itt);
    set32(b, F.Ttt, last ? RESERVED_TAG : this.#textOutTtt);
    this.#tx.sn(b, true);
    this.#tx.send(b, out, 0, n);
    this.#textOut = last ? null : out.subarray(n);
  }

  #sendTargets(v: string): KeyPairs {
    const s = this.#conn.session!;
    const out: KeyPairs = [];
    const t = this.#conn.target;
    let nodes: TargetNode[];
    if (v === 'All') nodes = s.discovery ? [...t.nodes.values()] : s.node ? [s.node] : [];
    else if (v === '') nodes = s.node ? [s.node] : [];
    else nodes = [...t.nodes.values()].filter((n) => n.name === v);
    for (const n of nodes) {
      const maps = n.params.pg_ig_maps.filter((m) => {
        const g = t.initiatorGroups.get(m.ig_tag);
        return g !== undefined && t.permitted(n, m.pg_tag, s.initiatorName, this.#conn.info.remoteAddress);
      });
      if (maps.length === 0) continue;
      out.push(['TargetName', n.name]);
      for (const m of maps) {
        for (const portal of t.portalGroups.get(m.pg_tag)?.portals ?? []) {
          const any = portal.host === '0.0.0.0' || portal.host === '::' || portal.host === '[::]';
          const host = any ? this.#conn.info.localAddress : portal.host;
          const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
          out.push(['TargetAddress', `${h}:${portal.port},${m.pg_tag}`]);
        }
      }
    }
    return out;
  }

  logout(p: Pdu): void {
    const reason = p.flags & 0x7f;
    const cid = p.u16(20);
    let response = 0;
    const s = this.#conn.session!;
    if (reason === 2) response = 2;
    else if (reason === 1 && cid !== this.#conn.cid) {
      const other = [...s.conns].find((c) => c.cid === cid);
      if (other) other.drop('logged out by another connection');
      else response = 1;
    } else if (reason > 2) {
      this.#tx.reject(p, RejectReason.ProtocolError);
      return;
    }
    const b = this.#tx.hdr(TOp.LogoutResponse, FLAG_FINAL);
    b[2] = response;
    set32(b, F.Itt, p.itt);
    this.#tx.sn(b, true);
    set16(b, 40, s.params.defaultTime2Wait);
    set16(b, 42, s.params.defaultTime2Retain);
    this.#tx.send(b, null);
    if (response !== 0 || (reason === 1 && cid !== this.#conn.cid)) return;
    if (reason === 0) {
      for (const c of [...s.conns]) if (c !== this.#conn) c.drop('session logged out');
    }
    this.#conn.endAfterResponse();
  }

  taskMgmt(p: Pdu): void {
    const s = this.#conn.session!;
    const fn = p.flags & 0x7f;
    let response = 0;
    let cold = false;
    if (s.discovery || !s.node) response = 5;
    else {
      const dev = s.node.device;
      const lun = p.lun;
      switch (fn) {
        case 1:
          response = this.#abortTask(p.u32(F.RefTaskTag), p.u32(F.RefCmdSn), p.u32(F.CmdSn));
          break;
        case 2:
        case 4:
          if (!dev.lun(lun)) response = 2;
          else this.#abortWhere((c) => c.lun === lun, fn === 4);
          break;
        case 5: {
          const l = dev.lun(lun);
          if (!l) response = 2;
          else {
            this.#abortWhere((c) => c.lun === lun, true);
            l.resetLun();
          }
          break;
        }
        case 6:
        case 7:
          this.#abortWhere(() => true, true);
          dev.resetTarget();
          cold = fn === 7;
          break;
        case 8:
          response = 4;
          break;
        default:
          response = 5;
      }
    }
    const b = this.#tx.hdr(TOp.TaskMgmtResponse, FLAG_FINAL);
    b[2] = response;
    set32(b, F.Itt, p.itt);
    this.#tx.sn(b, true);
    this.#tx.send(b, null);
    if (cold) {
      // TARGET COLD RESET ends every session of the target node after the response.
      for (const other of [...this.#conn.target.sessions.values()]) if (other.node === s.node) other.drop();
    }
  }

  #abortTask(rtt: number, refCmdSn: number, tmfCmdSn: number): number {
    for (const conn of this.#conn.session!.conns) if (conn.scsi.abortTask(rtt)) return 0;
    // Not found (RFC 7143 11.5.1, ABORT TASK): a RefCmdSN inside the CmdSN window and before the
    // TMF's own CmdSN names a command not received yet: Function complete. Below ExpCmdSN the task
    // already completed and its response went out (or it never existed): Task does not exist,
    // never Function complete, or the initiator sees a task both answered and aborted.
    const s = this.#conn.session!;
    const ref = (refCmdSn - s.expCmdSn) >>> 0;
    const own = (tmfCmdSn - s.expCmdSn) >>> 0;
    return ref < own && ref < 0x80000000 ? 0 : 1;
  }

  /** Aborts this session's matching tasks; `allSessions` extends to other sessions on the node. */
  #abortWhere(match: (c: ScsiTask) => boolean, allSessions: boolean): void {
    const s = this.#conn.session!;
    const sessions = allSessions
      ? [...this.#conn.target.sessions.values()].filter((x) => x.node === s.node)
      : [s];
    for (const sess of sessions) for (const conn of sess.conns) conn.scsi.abortWhere(match);
  }
}
