// Structured fuzzing of the qpair engine without sockets: after a valid connect, random but
// well-framed capsules (any opcode, fuse bits, nsid, CDWs, SGL type and length, in-capsule data)
// and H2CData PDUs (any tag, offset, length) must only ever produce NVMe statuses, R2Ts, data or
// a TermReq and close, never an exception, and must not corrupt the engine: a clean command
// afterwards still works on a fresh connection.

import {
  CH_SIZE,
  CONNECT_DATA_SIZE,
  ConnectDataOff,
  cqeStatus,
  encodeDataHeader,
  encodeIcReq,
  HLEN,
  PduType,
  sqeInit,
  sqeSetSgl,
  writeCh,
} from '@storkit/nvme/spec';
import { expect } from 'chai';
import fc from 'fast-check';

import { RamBackend } from '../src/ram-backend.js';
import { NvmfTarget } from '../src/target.js';
import { TcpQpair } from '../src/tcp-qpair.js';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const local = { traddr: '127.0.0.1', trsvcid: '4420' };

interface Capsule {
  opcode: number;
  flags: number;
  cid: number;
  nsid: number;
  fctype: number;
  cdws: number[];
  sglId: number;
  sglLen: number;
  icd: number;
}

function capsule(c: Capsule, fill?: (dv: DataView, s: number) => void): Uint8Array {
  const b = new Uint8Array(HLEN.CapsuleCmd + c.icd);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.CapsuleCmd, 0, HLEN.CapsuleCmd, c.icd ? HLEN.CapsuleCmd : 0, b.length);
  sqeInit(dv, CH_SIZE, c.opcode, c.flags, c.cid, c.nsid);
  if (c.opcode === 0x7f) dv.setUint8(CH_SIZE + 4, c.fctype);
  c.cdws.forEach((v, i) => {
    dv.setUint32(CH_SIZE + 40 + 4 * i, v, true);
  });
  sqeSetSgl(dv, CH_SIZE, 0, c.sglLen, c.sglId);
  fill?.(dv, CH_SIZE);
  for (let i = 0; i < c.icd; i++) b[HLEN.CapsuleCmd + i] = i & 0xff;
  return b;
}

function h2c(ttag: number, cccid: number, datao: number, datal: number, len: number): Uint8Array {
  const b = new Uint8Array(HLEN.H2CData + len);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.H2CData, 0, HLEN.H2CData, len ? HLEN.H2CData : 0, b.length);
  encodeDataHeader(dv, 0, cccid, ttag, datao, datal);
  return b;
}

function connectData(cntlid: number): Uint8Array {
  const d = new Uint8Array(CONNECT_DATA_SIZE);
  new DataView(d.buffer).setUint16(ConnectDataOff.cntlid, cntlid, true);
  d.set(Buffer.from(NQN), ConnectDataOff.subnqn);
  d.set(Buffer.from('nqn.2024-01.io.example:fuzz'), ConnectDataOff.hostnqn);
  return d;
}

const tick = () => new Promise((r) => setImmediate(r));

class Peer {
  readonly out: number[] = [];
  closed = false;
  readonly statuses: number[] = [];
  readonly qp: TcpQpair;
  constructor(tgt: NvmfTarget) {
    this.qp = new TcpQpair(
      tgt,
      (b, release) => {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let o = 0; o < b.length; o += dv.getUint32(o + 4, true)) {
          this.out.push(b[o]);
          if (b[o] === PduType.CapsuleResp) this.statuses.push(cqeStatus(dv, o + CH_SIZE));
        }
        release();
      },
      () => {
        this.closed = true;
      },
      'fuzz:1',
      local,
    );
    tgt.qpairOpened(this.qp);
  }
  send(b: Uint8Array): void {
    this.qp.receive(b);
  }
}

const ic = new Uint8Array(HLEN.ICReq);
encodeIcReq(new DataView(ic.buffer), 0, { hpda: 0, hdgst: false, ddgst: false, maxr2t: 1 });
const base: Capsule = {
  opcode: 0,
  flags: 0x40,
  cid: 0,
  nsid: 0,
  fctype: 0,
  cdws: [],
  sglId: 0x5a,
  sglLen: 0,
  icd: 0,
};

async function connected(tgt: NvmfTarget): Promise<{ admin: Peer; io: Peer }> {
  const admin = new Peer(tgt);
  admin.send(ic);
  const conn = capsule(
    { ...base, opcode: 0x7f, fctype: 1, sglId: 0x01, sglLen: CONNECT_DATA_SIZE, icd: CONNECT_DATA_SIZE },
    (dv, s) => dv.setUint16(s + 44, 31, true),
  );
  conn.set(connectData(0xffff), HLEN.CapsuleCmd);
  admin.send(conn);
  admin.send(capsule({ ...base, opcode: 0x7f, fctype: 0, cid: 1, cdws: [0, 0x14, 0x460001] }));
  await tick();
  expect(admin.statuses).to.deep.equal([0, 0]);
  const cntlid = admin.qp.ctrlr!.cntlid;
  const io = new Peer(tgt);
  io.send(ic);
  const b = capsule(
    { ...base, opcode: 0x7f, fctype: 1, sglId: 0x01, sglLen: CONNECT_DATA_SIZE, icd: CONNECT_DATA_SIZE },
    (dv, s) => {
      dv.setUint16(s + 42, 1, true);
      dv.setUint16(s + 44, 31, true);
    },
  );
  b.set(connectData(cntlid), HLEN.CapsuleCmd);
  io.send(b);
  await tick();
  expect(io.statuses).to.deep.equal([0]);
  return { admin, io };
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const capsuleArb = fc.record({
  opcode: fc.oneof(
    fc.constantFrom(0x00, 0x01, 0x02, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x18, 0x02, 0x7f),
    fc.integer({ min: 0, max: 255 }),
  ),
  flags: fc.oneof(fc.constant(0x40), fc.constant(0x41), fc.constant(0x42), fc.integer({ min: 0, max: 255 })),
  cid: fc.integer({ min: 0, max: 40 }),
  nsid: fc.oneof(fc.constantFrom(0, 1, 2, 0xffffffff), u32),
  fctype: fc.oneof(fc.constantFrom(0, 1, 4, 5, 6, 8), fc.integer({ min: 0, max: 255 })),
  cdws: fc.array(fc.oneof(fc.integer({ min: 0, max: 64 }), u32), { minLength: 6, maxLength: 6 }),
  sglId: fc.oneof(fc.constantFrom(0x01, 0x5a, 0x00, 0x40), fc.integer({ min: 0, max: 255 })),
  sglLen: fc.oneof(fc.constantFrom(0, 512, 1024, 4096, 8192, 131072, 131073), u32),
  icd: fc.constantFrom(0, 0, 512, 1024, 4096, 5000),
});
const opArb = fc.oneof(
  { weight: 4, arbitrary: capsuleArb.map((c) => ({ kind: 'capsule' as const, c })) },
  {
    weight: 1,
    arbitrary: fc
      .record({
        ttag: fc.integer({ min: 0, max: 140 }),
        cccid: fc.integer({ min: 0, max: 40 }),
        datao: fc.oneof(fc.constantFrom(0, 512, 4096), u32),
        datal: fc.oneof(fc.constantFrom(0, 512, 4096), u32),
        len: fc.constantFrom(0, 512, 4096),
      })
      .map((h) => ({ kind: 'h2c' as const, h })),
  },
);

describe('nvmf: structured fuzzing of the qpair engine', function () {
  this.timeout(60000);

  it('random capsules and H2CData after Connect: statuses or TermReq, never an exception', async () => {
    const tgt = new NvmfTarget();
    tgt.nvmf_create_transport({ trtype: 'TCP', max_queue_depth: 32 });
    tgt.registerBackend(new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 256 }));
    tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
    tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
    tgt.subsystems.get(NQN)!.listeners.push({ trtype: 'TCP', adrfam: 'IPv4', ...local });
    let internal = 0;
    let terms = 0;
    let statuses = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        async (ops, onAdmin) => {
          const { admin, io } = await connected(tgt);
          const p = onAdmin ? admin : io;
          for (const op of ops) {
            p.send(
              op.kind === 'capsule'
                ? capsule(op.c)
                : h2c(op.h.ttag, op.h.cccid, op.h.datao, op.h.datal, op.h.len),
            );
            if (p.closed) break;
          }
          for (let i = 0; i < 3; i++) await tick();
          internal += admin.qp.stats.internalErrors + io.qp.stats.internalErrors;
          if (p.out.includes(PduType.C2HTermReq)) terms++;
          statuses += p.statuses.length;
          admin.qp.close();
          io.qp.close();
          expect(admin.qp.lastInternalError ?? io.qp.lastInternalError).to.equal(undefined);
        },
      ),
      { numRuns: 300 },
    );
    expect(internal).to.equal(0);
    // The fuzzer reached both outcomes.
    expect(terms).to.be.greaterThan(10);
    expect(statuses).to.be.greaterThan(300);
    // And the target still serves a clean session.
    const { io } = await connected(tgt);
    io.send(capsule({ ...base, opcode: 0x02, cid: 7, nsid: 1, sglLen: 512, cdws: [0, 0, 0] }));
    await tick();
    expect(io.out).to.include(PduType.C2HData);
    expect(tgt.subsystems.get(NQN)!.controllers.size).to.equal(1);
    await tgt.close();
  });
});
