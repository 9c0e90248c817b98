/**
 * CHAP for iSCSI login (RFC 7143 section 12.1.3, RFC 1994) with MD5: one-way (the initiator proves
 * it knows the secret) and mutual (the target proves it too).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyPairs } from './keys.js';

export const CHAP_MD5 = 5;
const CHALLENGE_LENGTH = 16;

export interface ChapSecret {
  user: string;
  secret: string;
  /** Mutual CHAP: the name and secret the target answers with. */
  muser?: string;
  msecret?: string;
}

/** Decodes a CHAP binary value: 0x-prefixed hex or 0b-prefixed base64 (RFC 7143 6.1). */
export function decodeBinary(v: string): Uint8Array | null {
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) {
    const hex = v.slice(2);
    return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  }
  if (/^0[bB][A-Za-z0-9+/=]+$/.test(v)) return Buffer.from(v.slice(2), 'base64');
  return null;
}

export function chapResponse(id: number, secret: string, challenge: Uint8Array): Uint8Array {
  return createHash('md5')
    .update(Buffer.from([id & 0xff]))
    .update(secret)
    .update(challenge)
    .digest();
}

export const ChapState = { Start: 0, ChallengeSent: 1, Done: 2 } as const;

export type ChapResult =
  | { ok: true; answer: KeyPairs; done: boolean }
  | { ok: false; reason: 'auth' | 'initiator' };

/** One CHAP exchange on one login. */
export class ChapExchange {
  state: number = ChapState.Start;
  #id = 0;
  #challenge = new Uint8Array(0);
  readonly #lookup: (user: string) => ChapSecret | undefined;
  readonly #mutual: boolean;
  /** The authenticated initiator user name, once done. */
  user = '';

  constructor(lookup: (user: string) => ChapSecret | undefined, mutual: boolean) {
    this.#lookup = lookup;
    this.#mutual = mutual;
  }

  step(keys: Map<string, string>): ChapResult {
    if (this.state === ChapState.Start) {
      const algs = keys.get('CHAP_A');
      if (algs === undefined) return { ok: true, answer: [], done: false };
      if (!algs.split(',').includes(String(CHAP_MD5))) return { ok: false, reason: 'auth' };
      this.#id = randomBytes(1)[0];
      this.#challenge = randomBytes(CHALLENGE_LENGTH);
      this.state = ChapState.ChallengeSent;
      return {
        ok: true,
        done: false,
        answer: [
          ['CHAP_A', String(CHAP_MD5)],
          ['CHAP_I', String(this.#id)],
          ['CHAP_C', `0x${Buffer.from(this.#challenge).toString('hex')}`],
        ],
      };
    }
    if (this.state !== ChapState.ChallengeSent) return { ok: false, reason: 'initiator' };
    const name = keys.get('CHAP_N');
    const resp = keys.get('CHAP_R');
    if (name === undefined || resp === undefined) return { ok: false, reason: 'initiator' };
    const got = decodeBinary(resp);
    const sec = this.#lookup(name);
    if (!got || !sec) return { ok: false, reason: 'auth' };
    const want = chapResponse(this.#id, sec.secret, this.#challenge);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: 'auth' };
    this.user = name;
    const ci = keys.get('CHAP_I');
    const cc = keys.get('CHAP_C');
    if (ci === undefined && cc === undefined) {
      if (this.#mutual) return { ok: false, reason: 'auth' };
      this.state = ChapState.Done;
      return { ok: true, answer: [], done: true };
    }
    // Mutual CHAP: answer the initiator's challenge, which must differ from ours (RFC 7143 12.1.3).
    const id = Number(ci);
    const ch = cc === undefined ? null : decodeBinary(cc);
    if (!Number.isInteger(id) || id < 0 || id > 255 || !ch || ch.length === 0)
      return { ok: false, reason: 'initiator' };
    if (Buffer.from(ch).equals(Buffer.from(this.#challenge)) || !sec.msecret || !sec.muser) {
      return { ok: false, reason: 'auth' };
    }
    this.state = ChapState.Done;
    const r = chapResponse(id, sec.msecret, ch);
    return {
      ok: true,
      done: true,
      answer: [
        ['CHAP_N', sec.muser],
        ['CHAP_R', `0x${Buffer.from(r).toString('hex')}`],
      ],
    };
  }
}
