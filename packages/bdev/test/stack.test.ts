import { expect } from 'chai';
import fc from 'fast-check';
import { bdevGetByName, bdevReadv, bdevWritev, IoStatus } from '../src/index.js';
import {
  bdevDelayCreate,
  bdevDelayDelete,
  bdevErrorCreate,
  bdevErrorDelete,
  bdevMallocCreate,
  bdevMallocDelete,
  bdevPassthruCreate,
  bdevPassthruDelete,
  bdevRaidCreate,
  bdevRaidDelete,
  bdevSplitCreate,
  bdevSplitDelete,
} from '../src/modules/index.js';
import { harness, open, pattern, run, until } from './helpers.js';

describe('a stack of every virtual module', () => {
  it('reads back what it wrote through raid0(passthru(split), delay(error(split))) over raid1 over malloc (property)', () => {
    const h = harness(2);
    // Two mallocs mirrored, split in four; two parts under two different chains, striped.
    bdevMallocCreate({ name: 'SkA', num_blocks: 512, block_size: 512 });
    bdevMallocCreate({ name: 'SkB', num_blocks: 512, block_size: 512 });
    bdevRaidCreate({ name: 'SkM', raid_level: 'raid1', base_bdevs: ['SkA', 'SkB'] });
    bdevSplitCreate({ base_bdev: 'SkM', split_count: 4 });
    bdevPassthruCreate({ base_bdev_name: 'SkMp0', name: 'SkP' });
    bdevErrorCreate({ base_name: 'SkMp1' });
    bdevDelayCreate({
      base_bdev_name: 'EE_SkMp1',
      name: 'SkD',
      avg_read_latency: 20,
      p99_read_latency: 50,
      avg_write_latency: 30,
      p99_write_latency: 60,
    });
    bdevRaidCreate({ name: 'SkTop', raid_level: 'raid0', strip_size_kb: 2, base_bdevs: ['SkP', 'SkD'] });
    expect(bdevGetByName('SkTop')?.numBlocks).to.equal(256);
    const model = new Uint8Array(256 * 512);
    const users = [0, 1].map((t) => {
      h.setThread(t);
      return open('SkTop');
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer(),
        (t, off, len, seed) => {
          const n = Math.min(len, 256 - off);
          const data = pattern(n * 512, seed);
          h.setThread(t);
          const o = users[t];
          const iovs = [data.subarray(0, 700), data.subarray(700)].filter((v) => v.length > 0);
          expect(run(h, (cb, d) => bdevWritev(o.desc, o.ch, iovs, off, n, cb, d), 10)).to.equal(
            IoStatus.SUCCESS,
          );
          model.set(data, off * 512);
          const back = new Uint8Array(256 * 512);
          const other = users[1 - t];
          h.setThread(1 - t);
          expect(run(h, (cb, d) => bdevReadv(other.desc, other.ch, [back], 0, 256, cb, d), 10)).to.equal(
            IoStatus.SUCCESS,
          );
          expect(Buffer.from(back).equals(Buffer.from(model))).to.equal(true);
        },
      ),
      { numRuns: 40 },
    );
    users.forEach((o, t) => {
      h.setThread(t);
      o.close();
    });
    h.setThread(0);
    const steps: ((cb: () => void) => void)[] = [
      (cb) => bdevRaidDelete({ name: 'SkTop' }, cb),
      (cb) => bdevDelayDelete({ name: 'SkD' }, cb),
      (cb) => bdevErrorDelete({ name: 'EE_SkMp1' }, cb),
      (cb) => bdevPassthruDelete({ name: 'SkP' }, cb),
      (cb) => bdevSplitDelete({ base_bdev: 'SkM' }, cb),
      (cb) => bdevRaidDelete({ name: 'SkM' }, cb),
      (cb) => bdevMallocDelete({ name: 'SkA' }, cb),
      (cb) => bdevMallocDelete({ name: 'SkB' }, cb),
    ];
    for (const s of steps) {
      let ok = false;
      s(() => {
        ok = true;
      });
      until(h, () => ok);
    }
    h.close();
  });
});
