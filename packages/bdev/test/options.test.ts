// bdev_set_options as one worker applies it: bdev_io_cache_size per channel, bdev_io_pool_size over
// all of the worker's channels, bdev_auto_examine.
import { expect } from 'chai';
import { bdevExamine, bdevGetAll, getBdevOptions, setBdevOptions } from '../src/index.js';
import {
  bdevMallocCreate,
  bdevMallocDelete,
  bdevSplitCreate,
  bdevSplitDelete,
} from '../src/modules/index.js';
import { harness, open, until } from './helpers.js';

describe('bdev options', () => {
  const saved = getBdevOptions();
  afterEach(() => {
    setBdevOptions({
      bdev_io_cache_size: saved.bdev_io_cache_size,
      bdev_auto_examine: saved.bdev_auto_examine,
    });
    setBdevOptions({ bdev_io_pool_size: Number.MAX_SAFE_INTEGER });
  });

  it("channels make bdev_io_cache_size bdev_ios each while the worker's bdev_io_pool_size share lasts, then at least one", () => {
    const h = harness();
    setBdevOptions({ bdev_io_cache_size: 100, bdev_io_pool_size: 250 });
    for (const n of ['P0', 'P1', 'P2', 'P3']) bdevMallocCreate({ name: n, num_blocks: 64, block_size: 512 });
    h.pollThreads();
    const o = ['P0', 'P1', 'P2', 'P3'].map((n) => open(n));
    expect(o.map((x) => x.ch.ctx.poolSize)).to.deep.equal([100, 100, 50, 1]);
    // A channel let go gives its share back.
    o[0].close();
    h.pollThreads();
    const again = open('P0');
    expect(again.ch.ctx.poolSize).to.equal(99);
    again.close();
    for (const x of o.slice(1)) x.close();
    h.pollThreads();
    for (const n of ['P0', 'P1', 'P2', 'P3']) bdevMallocDelete({ name: n });
    h.pollThreads();
    expect(() => setBdevOptions({ bdev_io_pool_size: 0 }))
      .to.throw()
      .with.property('code', 'EINVAL');
  });

  it('with bdev_auto_examine false, modules examine a bdev only once bdev_examine names it', () => {
    const h = harness();
    expect(() => bdevExamine('X'))
      .to.throw()
      .with.property('code', 'EINVAL');
    setBdevOptions({ bdev_auto_examine: false });
    bdevSplitCreate({ base_bdev: 'E0', split_count: 2 });
    bdevMallocCreate({ name: 'E0', num_blocks: 64, block_size: 512 });
    h.pollThreads();
    expect(getNames()).to.not.include('E0p0');
    bdevExamine('E0');
    until(h, () => getNames().includes('E0p0'));
    expect(getNames()).to.include.members(['E0p0', 'E0p1']);
    let gone = false;
    bdevSplitDelete({ base_bdev: 'E0' }, () => {
      bdevMallocDelete({ name: 'E0' }, () => {
        gone = true;
      });
    });
    until(h, () => gone);
  });
});

function getNames(): string[] {
  return bdevGetAll().map((b) => b.name);
}
