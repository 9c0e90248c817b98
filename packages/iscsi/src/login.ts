/**
 * The login phase of one iSCSI connection (RFC 7143 6, 11.12-11.13): the security stage (CHAP),
 * operational negotiation, session creation or joining, and the login responses. The connection
 * hands it every PDU until it reaches full feature phase (or fails and closes).
 */
import { Nexus } from '@storkit/scsi';
import { ChapExchange } from './chap.js';
import type { Connection } from './connection.js';
import {
  encodeText,
  type KeyPairs,
  negotiate,
  parseText,
  SessionParams,
  TEXT_LIMIT,
  TextError,
} from './keys.js';
import { F, IOp, LoginFlag, LoginStatus, type Pdu, Stage, set16, set32, TOp } from './pdu.js';
import { Session } from './session.js';
import type { TargetNode } from './target.js';

/** What the login phase needs of its connection's output side. */
export interface LoginIo {
  /** A response header (BHS) to fill. */
  hdr(op: number, flags: number): Uint8Array;
  send(bhs: Uint8Array, data: Uint8Array | null): void;
  /** The first login request's ExpStatSN starts the connection's StatSN. */
  setStatSn(sn: number): void;
  nextStatSn(): number;
  /** After a login reject: flush and close the connection. */
  close(): void;
  /** Login succeeded: digests and segment limits as negotiated, full feature phase from now. */
  fullFeature(params: SessionParams): void;
}

export class Login {
  readonly #conn: Connection;
  readonly #io: LoginIo;
  first = true;
  identified = false;
  stage: number = Stage.Security;
  isid = '';
  tsih = 0;
  itt = 0;
  cmdSn = 0;
  initiatorName = '';
  discovery = false;
  node: TargetNode | null = null;
  chap: ChapExchange | null = null;
  authDone = false;
  targetDeclared = false;
  mrdslDeclared = false;
  /** TargetAddress of a login redirect (Target Moved Temporarily), or null. */
  redirectTo: string | null = null;
  /** The connection moved elsewhere (`IscsiTarget.handoff`) at its first login request. */
  handedOff = false;
  /** Login PDUs received: a connection can move only while this is its first (nothing answered). */
  #pdus = 0;
  readonly params = new SessionParams();
  readonly settled = new Set<string>();
  text: Uint8Array[] = [];

  constructor(conn: Connection, io: LoginIo) {
    this.#conn = conn;
    this.#io = io;
  }

  receive(p: Pdu): void {
    if (p.opcode !== IOp.Login) {
      this.#conn.drop('non-login PDU before login completed');
      return;
    }
    this.#pdus++;
    const flags = p.flags;
    const csg = (flags >>> 2) & 3;
    const nsg = flags & 3;
    const transit = (flags & LoginFlag.Transit) !== 0;
    if (this.first) {
      this.first = false;
      this.isid = Buffer.from(p.buf.subarray(p.off + 8, p.off + 14)).toString('hex');
      this.tsih = p.u16(14);
      this.itt = p.itt;
      this.cmdSn = p.u32(F.CmdSn);
      this.#conn.cid = p.u16(20);
      this.#io.setStatSn((p.u32(F.ExpStatSn) || 1) >>> 0);
      if (p.byte(3) > 0) {
        this.#fail(p, LoginStatus.UnsupportedVersion);
        return;
      }
    } else if (
      Buffer.from(p.buf.subarray(p.off + 8, p.off + 14)).toString('hex') !== this.isid ||
      p.itt !== this.itt
    ) {
      this.#fail(p, LoginStatus.InitiatorError);
      return;
    }
    if ((flags & LoginFlag.Continue) !== 0 && transit) {
      this.#fail(p, LoginStatus.InitiatorError);
      return;
    }
    this.text.push(p.data().slice());
    // Continue PDUs gather one text: bounded as a Text Request's is, or an unauthenticated
    // initiator could grow it without end.
    if (this.text.reduce((a, b) => a + b.length, 0) > TEXT_LIMIT) {
      this.text = [];
      this.#fail(p, LoginStatus.OutOfResources);
      return;
    }
    if (flags & LoginFlag.Continue) {
      this.#respond(p, csg, 0, false, []);
      return;
    }
    let pairs: KeyPairs;
    try {
      pairs = parseText(Buffer.concat(this.text));
    } catch (e) {
      if (e instanceof TextError) {
        this.#fail(p, LoginStatus.InitiatorError);
        return;
      }
      throw e;
    }
    this.text = [];
    const keys = new Map(pairs);
    if (!this.identified) {
      const st = this.#identify(keys);
      if (this.handedOff) return;
      if (st !== LoginStatus.Success) {
        this.#fail(p, st);
        return;
      }
    }
    if (csg !== this.stage && !(this.stage === Stage.Security && csg === Stage.Operational)) {
      this.#fail(p, LoginStatus.InitiatorError);
      return;
    }
    if (transit && (nsg <= csg || nsg === 2)) {
      this.#fail(p, LoginStatus.InitiatorError);
      return;
    }
    const answer: KeyPairs = [];
    if (!this.targetDeclared && this.node) {
      this.targetDeclared = true;
      answer.push(['TargetPortalGroupTag', String(this.#conn.info.portalGroupTag)]);
      if (this.node.params.alias_name) answer.push(['TargetAlias', this.node.params.alias_name]);
    }
    if (csg === Stage.Security) {
      const st = this.#security(keys, answer);
      if (st !== LoginStatus.Success) {
        this.#fail(p, st);
        return;
      }
    } else {
      if (this.stage === Stage.Security && this.#authRequired()) {
        this.#fail(p, LoginStatus.AuthenticationFailure);
        return;
      }
      this.stage = Stage.Operational;
      const st = this.#operational(pairs, answer);
      if (st !== LoginStatus.Success) {
        this.#fail(p, st);
        return;
      }
    }
    // Leaving the security stage needs finished authentication; otherwise stay (T=0).
    const canTransit = transit && (csg !== Stage.Security || this.authDone);
    if (!canTransit) {
      this.#respond(p, csg, nsg, false, answer);
      return;
    }
    if (nsg === Stage.Operational) {
      this.stage = Stage.Operational;
      this.#respond(p, csg, nsg, true, answer);
      return;
    }
    this.#finish(p, csg, answer);
  }

  /** First login request: who is the initiator and which target does it want. */
  #identify(keys: Map<string, string>): number {
    this.identified = true;
    const iname = keys.get('InitiatorName');
    if (!iname) return LoginStatus.MissingParameter;
    this.initiatorName = iname;
    const st = keys.get('SessionType') ?? 'Normal';
    if (st !== 'Normal' && st !== 'Discovery') return LoginStatus.SessionTypeNotSupported;
    this.discovery = st === 'Discovery';
    if (this.discovery) return LoginStatus.Success;
    const tname = keys.get('TargetName');
    if (!tname) return LoginStatus.MissingParameter;
    const node = this.#conn.target.nodes.get(tname);
    if (!node) return LoginStatus.NotFound;
    if (
      !this.#conn.target.permitted(node, this.#conn.info.portalGroupTag, iname, this.#conn.info.remoteAddress)
    ) {
      return LoginStatus.AuthorizationFailure;
    }
    this.node = node;
    if (this.#pdus === 1 && this.#conn.target.handoff?.(node, this.#conn)) {
      // Its socket and the bytes that came so far are another reactor's now: answer nothing.
      this.handedOff = true;
      this.#conn.closed();
      return LoginStatus.Success;
    }
    const to = this.#conn.target.redirect?.(node, this.#conn.info) ?? null;
    if (to !== null) {
      this.redirectTo = to;
      return LoginStatus.TargetMovedTemporarily;
    }
    return LoginStatus.Success;
  }

  #authPolicy() {
    if (this.discovery) return this.#conn.target.discoveryAuth;
    const a = this.node!.auth;
    const o = this.#conn.target.options;
    // A node without its own CHAP settings follows the global ones (SPDK's behaviour).
    if (!a.disable_chap && !a.require_chap) {
      return {
        disable_chap: o.disable_chap,
        require_chap: o.require_chap,
        mutual_chap: o.mutual_chap,
        chap_group: a.chap_group || o.chap_group,
      };
    }
    return a;
  }

  #authRequired(): boolean {
    return this.#authPolicy().require_chap;
  }

  #security(keys: Map<string, string>, answer: KeyPairs): number {
    const pol = this.#authPolicy();
    if (!this.chap && !this.authDone) {
      const offered = keys.get('AuthMethod');
      if (offered === undefined) {
        if (pol.require_chap) return LoginStatus.AuthenticationFailure;
        return LoginStatus.Success;
      }
      const canChap = !pol.disable_chap && this.#conn.target.authGroups.size > 0;
      let choice = '';
      for (const m of offered.split(',')) {
        if (m === 'CHAP' && canChap) choice = 'CHAP';
        else if (m === 'None' && !pol.require_chap) choice = 'None';
        if (choice) break;
      }
      if (!choice) {
        answer.push(['AuthMethod', 'Reject']);
        return LoginStatus.AuthenticationFailure;
      }
      answer.push(['AuthMethod', choice]);
      if (choice === 'None') this.authDone = true;
      else this.chap = new ChapExchange(this.#conn.target.chapLookup(pol.chap_group), pol.mutual_chap);
      if (!this.chap || !keys.has('CHAP_A')) return LoginStatus.Success;
    }
    if (this.chap && !this.authDone) {
      const r = this.chap.step(keys);
      if (!r.ok) return r.reason === 'auth' ? LoginStatus.AuthenticationFailure : LoginStatus.InitiatorError;
      answer.push(...r.answer);
      if (r.done) this.authDone = true;
    }
    return LoginStatus.Success;
  }

  #operational(pairs: KeyPairs, answer: KeyPairs): number {
    const leading = this.tsih === 0;
    const limits = {
      ...this.#conn.target.limits,
      requireHeaderDigest: this.node?.params.header_digest === true,
      requireDataDigest: this.node?.params.data_digest === true,
    };
    const r = negotiate(pairs, this.params, limits, this.settled, leading, this.discovery);
    if (r === null) return LoginStatus.InitiatorError;
    answer.push(...r);
    if (!this.mrdslDeclared) {
      this.mrdslDeclared = true;
      answer.push(['MaxRecvDataSegmentLength', String(limits.maxRecvDataSegmentLength)]);
    }
    return LoginStatus.Success;
  }

  #finish(p: Pdu, csg: number, answer: KeyPairs): void {
    const t = this.#conn.target;
    // A node that requires digests admits no connection that did not agree to CRC32C.
    const np = this.node?.params;
    if ((np?.header_digest && !this.params.headerDigest) || (np?.data_digest && !this.params.dataDigest)) {
      this.#fail(p, LoginStatus.MissingParameter);
      return;
    }
    let session: Session;
    if (this.tsih === 0) {
      // Session reinstatement: same initiator port to the same target replaces the old session,
      // and the new one takes over its place in the session count. Otherwise a place is claimed in
      // the count shared by every copy of the target (max_sessions is target-wide); when none is
      // left, the login fails with Target Error / Out of resources (RFC 7143 11.13.5, 0x0302).
      let counted = false;
      for (const old of [...t.sessions.values()]) {
        if (old.isid !== this.isid || old.initiatorName !== this.initiatorName || old.node !== this.node)
          continue;
        if (old.handOverCount()) {
          if (counted) t.sessionCount.release(); // two old sessions (not expected): keep one place
          counted = true;
        }
        old.drop();
      }
      if (!counted && !t.sessionCount.claim(t.options.max_sessions)) {
        this.#fail(p, LoginStatus.OutOfResources);
        return;
      }
      const tsih = t.allocTsih();
      if (tsih === 0) {
        t.sessionCount.release();
        this.#fail(p, LoginStatus.OutOfResources);
        return;
      }
      const nexus = this.node
        ? new Nexus(
            this.initiatorName,
            `${this.initiatorName},i,0x${this.isid}`,
            this.node.name,
            this.#conn.info.portalGroupTag,
          )
        : null;
      session = new Session(
        t,
        tsih,
        this.isid,
        this.initiatorName,
        this.node,
        this.params,
        nexus,
        this.#conn.info.portalGroupTag,
        this.cmdSn,
      );
      t.sessions.set(tsih, session);
    } else {
      const s = t.sessions.get(this.tsih);
      if (!s || s.discovery !== this.discovery) {
        this.#fail(p, LoginStatus.SessionDoesNotExist);
        return;
      }
      if (s.isid !== this.isid || s.initiatorName !== this.initiatorName || s.node !== this.node) {
        this.#fail(p, LoginStatus.InitiatorError);
        return;
      }
      // Connection reinstatement: a login with a CID in use replaces that connection.
      for (const c of [...s.conns]) if (c.cid === this.#conn.cid) c.drop('connection reinstated');
      if (s.conns.size >= s.params.maxConnections) {
        this.#fail(p, LoginStatus.TooManyConnections);
        return;
      }
      session = s;
      // Connection-wide keys of this login apply to this connection only.
      s.params.maxSendDataSegment = this.params.maxSendDataSegment;
    }
    session.conns.add(this.#conn);
    this.#conn.session = session;
    this.#respond(p, csg, Stage.FullFeature, true, answer, session.tsih);
    this.#io.fullFeature(this.params);
  }

  #respond(p: Pdu, csg: number, nsg: number, transit: boolean, answer: KeyPairs, tsih = 0): void {
    const b = this.#io.hdr(
      TOp.LoginResponse,
      (transit ? LoginFlag.Transit : 0) | (csg << 2) | (transit ? nsg : 0),
    );
    b.set(p.buf.subarray(p.off + 8, p.off + 14), 8);
    set16(b, 14, tsih);
    set32(b, F.Itt, this.itt);
    set32(b, F.StatSn, this.#io.nextStatSn());
    set32(b, F.ExpCmdSn, this.cmdSn);
    set32(b, F.MaxCmdSn, (this.cmdSn + (this.node ? this.node.params.queue_depth : 1) - 1) >>> 0);
    this.#io.send(b, encodeText(answer));
  }

  #fail(p: Pdu, status: number): void {
    const b = this.#io.hdr(TOp.LoginResponse, 0);
    b.set(p.buf.subarray(p.off + 8, p.off + 14), 8);
    set32(b, F.Itt, p.itt);
    set32(b, F.StatSn, this.#io.nextStatSn());
    set32(b, F.ExpCmdSn, this.cmdSn);
    set32(b, F.MaxCmdSn, this.cmdSn);
    b[36] = status >>> 8;
    b[37] = status & 0xff;
    const to = status === LoginStatus.TargetMovedTemporarily ? this.redirectTo : null;
    this.#io.send(b, to === null ? null : encodeText([['TargetAddress', to]]));
    this.#io.close();
  }
}
