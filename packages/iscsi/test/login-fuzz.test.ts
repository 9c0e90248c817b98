// Fuzzing the login phase: the key=value parser, the negotiation table, CHAP and the login state
// machine. Seeds: the login streams libiscsi sent (discovery, normal, header digests, one-way and
// mutual CHAP; test/corpus/login-streams.json, recorded by corpus-capture.ts). Each seed is split
// into its PDUs and its keys; mutations drop, repeat, reorder and rewrite keys (empty, huge,
// malformed, non-UTF-8 values; names past 63 bytes; unknown keys), split the text over
// Continue PDUs, change the stage bits, ISID, TSIH, CID and version, and flip raw bytes. Whatever
// arrives: no exception leaves the connection, every answer is a Login Response or Reject whose
// text parses with no key answered twice, a failed login closes the connection, and once every
// connection is gone no session is left; a clean login still works after each run.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';
import fc from 'fast-check';

import { BHS_LENGTH, encodePdu, IscsiTarget, parseText, TOp } from '../src/index.js';
import { type Got, TestInitiator } from './initiator.js';

interface Seed {
  keys: string;
  hex: string;
}
const CORPUS = fileURLToPath(new URL('../../test/corpus/login-streams.json', import.meta.url));
const recorded: Seed[] = JSON.parse(readFileSync(CORPUS, 'utf8')).logins;

interface LoginPdu {
  bhs: Uint8Array;
  pairs: string[];
}

/** A recorded stream cut into its PDUs (no digests during login), each text split at its NULs. */
function split(hex: string): LoginPdu[] {
  const b = Buffer.from(hex, 'hex');
  const out: LoginPdu[] = [];
  let o = 0;
  while (o + BHS_LENGTH <= b.length) {
    const ahs = b[o + 4] * 4;
    const dlen = (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7];
    const data = b.subarray(o + BHS_LENGTH + ahs, o + BHS_LENGTH + ahs + dlen);
    out.push({
      bhs: Uint8Array.from(b.subarray(o, o + BHS_LENGTH)),
      pairs: data.toString('latin1').split('\0').filter(Boolean),
    });
    o += BHS_LENGTH + ahs + ((dlen + 3) & ~3);
  }
  return out;
}
const seeds = recorded.map((r) => split(r.hex));

const IQN = 'iqn.2016-06.io.storkit:disk1';
const CHAP_IQN = 'iqn.2016-06.io.storkit:chap';

function target(): IscsiTarget {
  const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 256 });
  const t = new IscsiTarget((n) => (n === 'Malloc0' ? ram : undefined), {
    node_base: 'iqn.2016-06.io.storkit',
    nop_in_interval: 0,
  });
  t.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '3260' }] });
  t.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
  t.createAuthGroup({
    tag: 1,
    secrets: [{ user: 'alice', secret: 'alice-secret-1', muser: 'target1', msecret: 'target-secret-1' }],
  });
  const luns = [{ bdev_name: 'Malloc0', lun_id: 0 }];
  t.createTargetNode({ name: 'disk1', pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }], luns, queue_depth: 16 });
  t.createTargetNode({
    name: 'chap',
    pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
    luns,
    queue_depth: 16,
    require_chap: true,
    mutual_chap: true,
    chap_group: 1,
  });
  return t;
}

const nasty = fc.oneof(
  fc.constantFrom(
    '',
    'Yes',
    'No',
    'None',
    'CRC32C',
    'CRC32C,None',
    'CHAP,None',
    '5',
    '0',
    '512',
    '16777216',
    '4294967296',
    '-1',
    '0x',
    '0xffffffffffffffffffff',
    '0b',
    '0bAAAA',
    'Discovery',
    'Normal',
    'All',
    IQN,
    CHAP_IQN,
    'alice',
    '=',
    'a=b',
    'x'.repeat(300),
    'y'.repeat(9000),
  ),
  fc.string({ maxLength: 40 }),
  fc.integer({ min: -5, max: 1 << 25 }).map(String),
);
const keyName = fc.oneof(
  fc.constantFrom(
    'InitiatorName',
    'TargetName',
    'SessionType',
    'AuthMethod',
    'CHAP_A',
    'CHAP_N',
    'CHAP_R',
    'CHAP_I',
    'CHAP_C',
    'HeaderDigest',
    'DataDigest',
    'MaxRecvDataSegmentLength',
    'MaxBurstLength',
    'FirstBurstLength',
    'MaxConnections',
    'ErrorRecoveryLevel',
    'InitialR2T',
    'ImmediateData',
    'SendTargets',
    'TargetAlias',
    'TargetPortalGroupTag',
    'X-com.example.Unknown',
    'K'.repeat(64),
  ),
  fc.string({ minLength: 1, maxLength: 20 }),
);

const keyEdit = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), v: nasty }),
  fc.record({ kind: fc.constant('add' as const), at: fc.nat(), k: keyName, v: nasty }),
  fc.record({ kind: fc.constant('raw' as const), at: fc.nat(), s: fc.string({ maxLength: 30 }) }),
);
const bhsEdit = fc.oneof(
  fc.record({
    at: fc.constantFrom(0, 1, 2, 3, 8, 13, 14, 15, 16, 20, 21, 24, 28),
    v: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ at: fc.nat(BHS_LENGTH - 1), v: fc.integer({ min: 0, max: 255 }) }),
);
const pduPlan = fc.record({
  keyEdits: fc.array(keyEdit, { maxLength: 5 }),
  bhsEdits: fc.array(bhsEdit, { maxLength: 2 }),
  // Spread the text over this many PDUs with the Continue bit on all but the last.
  pieces: fc.constantFrom(1, 1, 1, 2, 3),
  target: fc.constantFrom('keep', 'keep', 'plain', 'chap'),
});
const plan = fc.record({
  seed: fc.nat(seeds.length - 1),
  pdus: fc.array(pduPlan, { minLength: 1, maxLength: 4 }),
  flips: fc.array(fc.record({ at: fc.nat(), bit: fc.nat(7) }), { maxLength: 2 }),
  chunk: fc.constantFrom(0, 1, 7, 48, 100),
});

type PduPlan = typeof pduPlan extends fc.Arbitrary<infer T> ? T : never;
type Plan = typeof plan extends fc.Arbitrary<infer T> ? T : never;

function applyKeys(pairs: string[], p: PduPlan, tgt: string): string[] {
  const out = pairs.map((s) => {
    if (tgt !== 'keep' && s.startsWith('TargetName=')) return `TargetName=${tgt === 'chap' ? CHAP_IQN : IQN}`;
    return s;
  });
  for (const e of p.keyEdits) {
    const i = out.length ? e.at % out.length : 0;
    if (e.kind === 'drop') out.splice(i, 1);
    else if (e.kind === 'repeat' && out.length) out.splice(i, 0, out[i]);
    else if (e.kind === 'swap' && out.length)
      [out[i], out[e.with % out.length]] = [out[e.with % out.length], out[i]];
    else if (e.kind === 'value' && out.length) out[i] = `${out[i].split('=')[0]}=${e.v}`;
    else if (e.kind === 'add') out.splice(i, 0, `${e.k}=${e.v}`);
    else if (e.kind === 'raw') out.splice(i, 0, e.s);
  }
  return out;
}

/** The bytes of one mutated login exchange (one initiator's stream). */
function build(pl: Plan): Uint8Array {
  const seed = seeds[pl.seed];
  const parts: Uint8Array[] = [];
  pl.pdus.forEach((p, n) => {
    const src = seed[n % seed.length];
    const text = Buffer.from(
      applyKeys(src.pairs, p, p.target)
        .map((s) => `${s}\0`)
        .join(''),
      'latin1',
    );
    const bhs = src.bhs.slice();
    for (const e of p.bhsEdits) bhs[e.at] = e.v;
    const step = Math.ceil(text.length / p.pieces) || 1;
    for (let off = 0, k = 0; off < text.length || k === 0; off += step, k++) {
      const piece = text.subarray(off, Math.min(text.length, off + step));
      const b = bhs.slice();
      const last = off + step >= text.length;
      if (!last) b[1] = (b[1] & ~0x80) | 0x40; // C=1, T=0 on every piece but the last
      parts.push(encodePdu(b, piece, 0, piece.length, { headerDigest: false, dataDigest: false }));
    }
  });
  const all = Buffer.concat(parts);
  for (const f of pl.flips) if (all.length) all[f.at % all.length] ^= 1 << f.bit;
  return all;
}

/** Target opcodes (RFC 7143 11.1): NOP-In, SCSI/TMF/Login/Text Response, Data-In, Logout Response, R2T, Async, Reject. */
const TARGET_OPCODES = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3f];

function checkAnswers(got: Got[]): void {
  for (const g of got) {
    // Once a login completes the connection is in full feature phase, where a mutated PDU may be
    // any request: every target opcode may answer.
    expect(TARGET_OPCODES, `opcode 0x${g.opcode.toString(16)}`).to.include(g.opcode);
    if (g.opcode === TOp.TextResponse) {
      // SendTargets answers repeat TargetName and TargetAddress per target: only the form is checked.
      for (const kv of Buffer.from(g.data).toString('utf8').split('\0').filter(Boolean))
        expect(kv, 'key=value').to.match(/^[^=]{1,63}=/);
      continue;
    }
    if (g.opcode !== TOp.LoginResponse) continue;
    const keys = parseText(g.data).map(([k]) => k);
    expect(new Set(keys).size, `answered twice: ${keys.join(',')}`).to.equal(keys.length);
  }
}

describe('iscsi: login phase fuzzing (libiscsi corpus)', function () {
  this.timeout(120_000);

  it(`the corpus: ${seeds.length} login streams libiscsi sent, and each replays to a full login or a clean refusal`, () => {
    expect(seeds.length).to.be.greaterThan(3);
    expect(recorded.some((r) => r.keys.includes('CHAP_R'))).to.equal(true);
    const t = target();
    for (const s of recorded) {
      const i = new TestInitiator(t);
      i.conn.receive(Buffer.from(s.hex, 'hex'));
      const got = i.take();
      expect(got.length).to.be.greaterThan(0);
      checkAnswers(got);
      i.conn.closed();
    }
    expect(t.sessions.size).to.equal(0);
  });

  it('mutated logins: no exception, well-formed answers, failures close, no session left behind', () => {
    const t = target();
    let logins = 0;
    let refused = 0;
    fc.assert(
      fc.property(plan, (pl) => {
        const bytes = build(pl);
        const i = new TestInitiator(t);
        if (pl.chunk === 0) i.conn.receive(bytes);
        else for (let o = 0; o < bytes.length; o += pl.chunk) i.conn.receive(bytes.subarray(o, o + pl.chunk));
        const got = i.take();
        checkAnswers(got);
        for (const g of got) {
          if (g.opcode !== TOp.LoginResponse) continue;
          if (g.bhs[36] !== 0) {
            refused++;
            expect(i.closed, 'a failed login closes the connection').to.equal(true);
          } else if (g.flags & 0x80 && (g.flags & 3) === 3) logins++;
        }
        i.conn.closed();
        expect(t.connections.has(i.conn)).to.equal(false);
      }),
      { numRuns: 1500 },
    );
    expect(t.sessions.size, 'sessions left once every connection is gone').to.equal(0);
    // The fuzzer reached both ends: full logins and refusals.
    expect(logins).to.be.greaterThan(15);
    expect(refused).to.be.greaterThan(150);
    // And the target still logs a clean initiator in.
    const ok = new TestInitiator(t);
    expect(ok.loginNormal(IQN).bhs[36]).to.equal(0);
  });
});
