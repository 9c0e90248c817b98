// The engine copies each command's SQE out of the receive buffer by 32-bit words when the capsule
// starts on a word boundary (the usual case) and byte by byte otherwise. Both paths must give the
// same command: in-capsule writes fed at every byte alignment, alone and split across reads,
// land on the LBA, with the CID and data their SQEs name.

import { writeU64 } from '@storkit/nvme-spec';
import { expect } from 'chai';
import fc from 'fast-check';

import { base, capsule, connected, ramTarget, tick } from './engine-helpers.js';

const BS = 512;
const BLOCKS = 64;

describe('nvmf: SQE copy at any alignment', function () {
  this.timeout(30000);

  it('word and byte copies yield the same commands (fast-check over alignment, batch and read splits)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 7 }),
        fc.array(fc.integer({ min: 0, max: BLOCKS - 1 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 200 }),
        async (align, lbas, split) => {
          const { tgt, ram } = ramTarget(
            { max_queue_depth: 32, in_capsule_data_size: 4096 },
            { blockSize: BS, numBlocks: BLOCKS },
          );
          const { io } = await connected(tgt);
          const seen = io.statuses.length;
          const caps = lbas.map((lba, i) => {
            const c = capsule(
              { ...base, opcode: 0x01, cid: 100 + i, nsid: 1, sglId: 0x01, sglLen: BS, icd: BS },
              (dv, s) => writeU64(dv, s + 40, lba),
            );
            c.fill(0x11 * (i + 1), c.length - BS);
            return c;
          });
          const total = caps.reduce((n, c) => n + c.length, 0);
          // One backing buffer with the stream starting `align` bytes in, fed in `split`-byte reads.
          const backing = new Uint8Array(total + align);
          let o = align;
          for (const c of caps) {
            backing.set(c, o);
            o += c.length;
          }
          const stream = backing.subarray(align);
          for (let p = 0; p < stream.length; p += split)
            io.send(stream.subarray(p, Math.min(p + split, stream.length)));
          await tick();
          expect(io.closed).to.equal(false);
          expect(io.qp.stats.internalErrors).to.equal(0);
          expect(io.statuses.slice(seen)).to.deep.equal(lbas.map(() => 0));
          // The last write to each LBA wins.
          lbas.forEach((lba, i) => {
            if (lbas.lastIndexOf(lba) !== i) return;
            const got = ram.data.subarray(lba * BS, (lba + 1) * BS);
            expect(got.every((b) => b === ((0x11 * (i + 1)) & 0xff))).to.equal(
              true,
              `LBA ${lba} from write ${i}`,
            );
          });
          await tgt.close();
        },
      ),
      { numRuns: 60 },
    );
  });
});
