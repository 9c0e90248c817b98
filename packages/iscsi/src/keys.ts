/**
 * Text keys (RFC 7143 section 6 and 13, RFC 7144): parsing key=value data segments and negotiating
 * operational parameters. One table holds each key's type, range and result function.
 */

export type KeyPairs = [string, string][];

/** Largest text gathered from one login or Text request's PDUs (RFC 7143 sets no bound; ours). */
export const TEXT_LIMIT = 65536;

/** Malformed text or a key repeated within one request: the login fails as an initiator error. */
export class TextError extends Error {
  readonly reason: 'malformed' | 'repeated';
  constructor(reason: 'malformed' | 'repeated', message: string) {
    super(message);
    this.reason = reason;
  }
}

const MAX_KEY_NAME = 63;

/** Parses NUL-separated key=value pairs; rejects a key given twice in the same text. */
export function parseText(data: Uint8Array): KeyPairs {
  const out: KeyPairs = [];
  const seen = new Set<string>();
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i < data.length && data[i] !== 0) continue;
    if (i > start) {
      const s = Buffer.from(data.buffer, data.byteOffset + start, i - start).toString('utf8');
      const eq = s.indexOf('=');
      if (eq <= 0 || eq > MAX_KEY_NAME)
        throw new TextError('malformed', `malformed key=value text '${s.slice(0, 80)}'`);
      const k = s.slice(0, eq);
      if (seen.has(k)) throw new TextError('repeated', `key ${k} repeated`);
      seen.add(k);
      out.push([k, s.slice(eq + 1)]);
    }
    start = i + 1;
  }
  return out;
}

export function encodeText(pairs: KeyPairs): Uint8Array {
  let s = '';
  for (const [k, v] of pairs) s += `${k}=${v}\0`;
  return Buffer.from(s, 'utf8');
}

/** Parses an RFC 7143 numeric value (decimal, or 0x hex). NaN when malformed. */
export function parseNumber(v: string): number {
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) return Number.parseInt(v.slice(2), 16);
  if (/^[0-9]+$/.test(v)) return Number.parseInt(v, 10);
  return Number.NaN;
}

/** Negotiated session-wide and connection-wide parameters with their RFC 7143 defaults. */
export class SessionParams {
  headerDigest = false;
  dataDigest = false;
  maxConnections = 1;
  initialR2T = true;
  immediateData = true;
  maxBurstLength = 262144;
  firstBurstLength = 65536;
  defaultTime2Wait = 2;
  defaultTime2Retain = 20;
  maxOutstandingR2T = 1;
  dataPduInOrder = true;
  dataSequenceInOrder = true;
  errorRecoveryLevel = 0;
  /** The initiator's MaxRecvDataSegmentLength: the most we may send in one PDU. */
  maxSendDataSegment = 8192;
}

/** What the target is willing to do (from iscsi_set_options). */
export interface TargetLimits {
  maxConnections: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxBurstLength: number;
  firstBurstLength: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxOutstandingR2T: number;
  errorRecoveryLevel: number;
  maxRecvDataSegmentLength: number;
  /** The target node insists on CRC32C (SPDK's header_digest / data_digest node params). */
  requireHeaderDigest?: boolean;
  requireDataDigest?: boolean;
}

type Kind =
  | 'digest'
  | 'and'
  | 'or'
  | 'min'
  | 'max'
  | 'declare'
  | 'fixedNo'
  | 'irrelevant'
  | 'level'
  | 'report';

interface KeyDef {
  kind: Kind;
  lo?: number;
  hi?: number;
  /** Only in the leading connection's login. */
  sessionWide?: boolean;
  /** "Irrelevant when: SessionType=Discovery" (RFC 7143 13.2-13.19): answered Irrelevant there. */
  normalOnly?: boolean;
}

const MAX_24 = 16777215;

const KEYS: Record<string, KeyDef> = {
  HeaderDigest: { kind: 'digest' },
  DataDigest: { kind: 'digest' },
  MaxConnections: { kind: 'min', lo: 1, hi: 65535, sessionWide: true, normalOnly: true },
  InitialR2T: { kind: 'or', sessionWide: true, normalOnly: true },
  ImmediateData: { kind: 'and', sessionWide: true, normalOnly: true },
  MaxRecvDataSegmentLength: { kind: 'declare', lo: 512, hi: MAX_24 },
  MaxBurstLength: { kind: 'min', lo: 512, hi: MAX_24, sessionWide: true, normalOnly: true },
  FirstBurstLength: { kind: 'min', lo: 512, hi: MAX_24, sessionWide: true, normalOnly: true },
  DefaultTime2Wait: { kind: 'max', lo: 0, hi: 3600, sessionWide: true },
  DefaultTime2Retain: { kind: 'min', lo: 0, hi: 3600, sessionWide: true },
  MaxOutstandingR2T: { kind: 'min', lo: 1, hi: 65535, sessionWide: true, normalOnly: true },
  DataPDUInOrder: { kind: 'or', sessionWide: true, normalOnly: true },
  DataSequenceInOrder: { kind: 'or', sessionWide: true, normalOnly: true },
  ErrorRecoveryLevel: { kind: 'min', lo: 0, hi: 2, sessionWide: true },
  OFMarker: { kind: 'fixedNo' },
  IFMarker: { kind: 'fixedNo' },
  RDMAExtensions: { kind: 'fixedNo', sessionWide: true },
  OFMarkInt: { kind: 'irrelevant' },
  IFMarkInt: { kind: 'irrelevant' },
  iSCSIProtocolLevel: { kind: 'level', lo: 0, hi: 31, sessionWide: true },
  TaskReporting: { kind: 'report', sessionWide: true },
};

/** Keys that are declarations or login-only identifiers: never answered by negotiation. */
const SILENT = new Set(['InitiatorName', 'InitiatorAlias', 'TargetName', 'SessionType', 'AuthMethod']);

/**
 * Keys only a target sends (RFC 7143 13.7, 13.8, 13.9: "Senders: Target"). The target declares
 * them itself in the same response, so any answer to an initiator's copy would name the key twice.
 */
const TARGET_ONLY = new Set(['TargetAlias', 'TargetAddress', 'TargetPortalGroupTag']);

function bool(v: string): boolean | null {
  return v === 'Yes' ? true : v === 'No' ? false : null;
}

function yn(b: boolean): string {
  return b ? 'Yes' : 'No';
}

/**
 * Negotiates one batch of operational keys into `p` and returns the answers. Returns null when the
 * initiator broke the negotiation and the login must fail (Initiator Error): a key already settled
 * in this login (`settled`), a key only targets send, or a MaxRecvDataSegmentLength declaration
 * out of range. The last two cannot be answered: the target declares those keys itself in the same
 * response, and a response may not name a key twice.
 */
export function negotiate(
  pairs: KeyPairs,
  p: SessionParams,
  ours: TargetLimits,
  settled: Set<string>,
  leading: boolean,
  discovery: boolean,
): KeyPairs | null {
  const out: KeyPairs = [];
  for (const [k, v] of pairs) {
    if (SILENT.has(k) || k.startsWith('CHAP_')) continue;
    if (settled.has(k) || TARGET_ONLY.has(k)) return null;
    settled.add(k);
    const def = KEYS[k];
    if (!def) {
      out.push([k, 'NotUnderstood']);
      continue;
    }
    // ErrorRecoveryLevel, DefaultTime2Wait/Retain and the digests stay negotiated in a discovery
    // session (open-iscsi refuses ErrorRecoveryLevel=Irrelevant there and stops discovery).
    if ((def.sessionWide && !leading) || (discovery && def.normalOnly)) {
      out.push([k, 'Irrelevant']);
      continue;
    }
    const a = answer(k, v, def, p, ours);
    if (a === 'Reject' && def.kind === 'declare') return null;
    if (a !== null) out.push([k, a]);
  }
  // FirstBurstLength must not exceed MaxBurstLength (RFC 7143 13.14).
  if (p.firstBurstLength > p.maxBurstLength) p.firstBurstLength = p.maxBurstLength;
  return out;
}

function answer(k: string, v: string, def: KeyDef, p: SessionParams, ours: TargetLimits): string | null {
  switch (def.kind) {
    case 'digest': {
      const required = k === 'HeaderDigest' ? ours.requireHeaderDigest : ours.requireDataDigest;
      const choice = v.split(',').find((x) => x === 'CRC32C' || (x === 'None' && !required));
      if (!choice) return 'Reject';
      if (k === 'HeaderDigest') p.headerDigest = choice === 'CRC32C';
      else p.dataDigest = choice === 'CRC32C';
      return choice;
    }
    case 'and':
    case 'or': {
      const b = bool(v);
      if (b === null) return 'Reject';
      const mine = k === 'ImmediateData' ? ours.immediateData : k === 'InitialR2T' ? ours.initialR2T : true;
      const r = def.kind === 'and' ? b && mine : b || mine;
      setBool(p, k, r);
      return yn(r);
    }
    case 'fixedNo': {
      if (bool(v) === null) return 'Reject';
      return 'No';
    }
    case 'irrelevant':
      return 'Irrelevant';
    case 'report':
      return 'RFC3720';
    case 'declare': {
      const n = parseNumber(v);
      if (!(n >= def.lo! && n <= def.hi!)) return 'Reject';
      p.maxSendDataSegment = n;
      return null;
    }
    case 'level': {
      const n = parseNumber(v);
      if (!(n >= def.lo! && n <= def.hi!)) return 'Reject';
      return String(Math.min(n, 1));
    }
    default: {
      const n = parseNumber(v);
      if (!(n >= def.lo! && n <= def.hi!)) return 'Reject';
      const r = def.kind === 'min' ? Math.min(n, numOurs(k, ours)) : Math.max(n, numOurs(k, ours));
      setNum(p, k, r);
      return String(r);
    }
  }
}

function numOurs(k: string, o: TargetLimits): number {
  switch (k) {
    case 'MaxConnections':
      return o.maxConnections;
    case 'MaxBurstLength':
      return o.maxBurstLength;
    case 'FirstBurstLength':
      return o.firstBurstLength;
    case 'DefaultTime2Wait':
      return o.defaultTime2Wait;
    case 'DefaultTime2Retain':
      return o.defaultTime2Retain;
    case 'MaxOutstandingR2T':
      return o.maxOutstandingR2T;
    default:
      return o.errorRecoveryLevel;
  }
}

function setNum(p: SessionParams, k: string, v: number): void {
  switch (k) {
    case 'MaxConnections':
      p.maxConnections = v;
      break;
    case 'MaxBurstLength':
      p.maxBurstLength = v;
      break;
    case 'FirstBurstLength':
      p.firstBurstLength = v;
      break;
    case 'DefaultTime2Wait':
      p.defaultTime2Wait = v;
      break;
    case 'DefaultTime2Retain':
      p.defaultTime2Retain = v;
      break;
    case 'MaxOutstandingR2T':
      p.maxOutstandingR2T = v;
      break;
    default:
      p.errorRecoveryLevel = v;
  }
}

function setBool(p: SessionParams, k: string, v: boolean): void {
  switch (k) {
    case 'InitialR2T':
      p.initialR2T = v;
      break;
    case 'ImmediateData':
      p.immediateData = v;
      break;
    case 'DataPDUInOrder':
      p.dataPduInOrder = v;
      break;
    case 'DataSequenceInOrder':
      p.dataSequenceInOrder = v;
  }
}
