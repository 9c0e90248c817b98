import type { Nexus } from '@storkit/scsi';
import type { Connection } from './connection.js';
import type { SessionParams } from './keys.js';
import type { IscsiTarget, TargetNode } from './target.js';

/** A command PDU that arrived ahead of ExpCmdSN on another connection: a copy, run in order. */
interface Stashed {
  conn: Connection;
  bytes: Uint8Array;
}

/**
 * An iSCSI session: one I_T nexus, one CmdSN space shared by its connections (RFC 7143 4.2.2.1),
 * negotiated session-wide parameters.
 */
export class Session {
  readonly target: IscsiTarget;
  readonly tsih: number;
  /** ISID as 12 hex digits. */
  readonly isid: string;
  readonly initiatorName: string;
  readonly node: TargetNode | null;
  readonly params: SessionParams;
  readonly nexus: Nexus | null;
  readonly portalGroupTag: number;
  readonly conns = new Set<Connection>();
  readonly queueDepth: number;
  expCmdSn: number;
  readonly #stash = new Map<number, Stashed>();
  #ended = false;
  /** Holds a place in the target's session count (taken before construction, given back once). */
  #counted = true;

  constructor(
    target: IscsiTarget,
    tsih: number,
    isid: string,
    initiatorName: string,
    node: TargetNode | null,
    params: SessionParams,
    nexus: Nexus | null,
    portalGroupTag: number,
    expCmdSn: number,
  ) {
    this.target = target;
    this.tsih = tsih;
    this.isid = isid;
    this.initiatorName = initiatorName;
    this.node = node;
    this.params = params;
    this.nexus = nexus;
    this.portalGroupTag = portalGroupTag;
    this.expCmdSn = expCmdSn >>> 0;
    this.queueDepth = node ? node.params.queue_depth : 1;
  }

  get discovery(): boolean {
    return this.node === null;
  }

  /**
   * SCSI commands taken from the CmdSN window and not yet finished. The window only reopens as they
   * finish, which bounds the work (and memory) an initiator can queue (RFC 7143 3.2.2.1).
   */
  inFlight = 0;

  get maxCmdSn(): number {
    return (this.expCmdSn + this.queueDepth - 1 - this.inFlight) >>> 0;
  }

  /**
   * Where a non-immediate CmdSN falls: 0 = next in order, 1 = ahead but inside the window
   * (stashed until its turn), -1 = outside the window (RFC 7143 3.2.2.1: silently ignored).
   */
  classify(cmdSn: number): -1 | 0 | 1 {
    const d = (cmdSn - this.expCmdSn) >>> 0;
    if (d >= this.queueDepth - this.inFlight) return -1;
    return d === 0 ? 0 : 1;
  }

  /** The command with the expected CmdSN was taken: the window moves on. */
  take(): void {
    this.expCmdSn = (this.expCmdSn + 1) >>> 0;
  }

  /** Runs stashed commands whose turn has come, in CmdSN order. */
  drain(): void {
    let next = this.#stash.get(this.expCmdSn);
    while (next) {
      this.#stash.delete(this.expCmdSn);
      this.take();
      next.conn.replay(next.bytes);
      next = this.#stash.get(this.expCmdSn);
    }
  }

  stash(cmdSn: number, conn: Connection, pdu: Uint8Array): void {
    if (!this.#stash.has(cmdSn)) this.#stash.set(cmdSn, { conn, bytes: pdu.slice() });
  }

  /**
   * Session reinstatement: the new session takes this one's place in the session count, so
   * replacing a session never needs a free place (nor frees one another login could take first).
   * True if there was a place to hand over.
   */
  handOverCount(): boolean {
    const had = this.#counted;
    this.#counted = false;
    return had;
  }

  /** Drops every connection of the session (reinstatement, target removal, cold reset). */
  drop(): void {
    for (const c of [...this.conns]) c.drop('session dropped');
  }

  connectionGone(c: Connection): void {
    this.conns.delete(c);
    for (const [sn, s] of this.#stash) if (s.conn === c) this.#stash.delete(sn);
    if (this.conns.size > 0 || this.#ended) return;
    this.#ended = true;
    if (this.#counted) {
      this.#counted = false;
      this.target.sessionCount.release();
    }
    if (this.nexus && this.node) this.node.device.nexusLost(this.nexus);
    if (this.target.sessions.get(this.tsih) === this) this.target.sessions.delete(this.tsih);
  }
}
