// Structured fuzzing of the qpair engine without sockets: after a valid connect, random but
// well-framed capsules (any opcode, fuse bits, nsid, CDWs, SGL type and length, in-capsule data)
// and H2CData PDUs (any tag, offset, length) must only ever produce NVMe statuses, R2Ts, data or
// a TermReq and close, never an exception, and must not corrupt the engine: a clean command
// afterwards still works on a fresh connection.

import { PduType } from '@storkit/nvme-spec';
import { expect } from 'chai';
import fc from 'fast-check';

import { base, capsule, connected, h2c, NQN, ramTarget, tick } from './engine-helpers.js';

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
    const { tgt } = ramTarget({ max_queue_depth: 32 }, { blockSize: 512, numBlocks: 256 });
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
