import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  bdevGetByName,
  bdevRead,
  bdevReadv,
  bdevUnmap,
  bdevWrite,
  bdevWritev,
  IoStatus,
} from '../src/index.js';
import { bdevUnregister } from '../src/module.js';
import {
  bdevErrorCreate,
  bdevErrorDelete,
  bdevErrorInjectError,
  bdevMallocCreate,
  bdevMallocDelete,
  bdevRaidAddBaseBdev,
  bdevRaidCreate,
  bdevRaidDelete,
  bdevRaidGetBdevs,
  bdevRaidRemoveBaseBdev,
  bdevSplitCreate,
  bdevSplitDelete,
} from '../src/modules/index.js';
import { harness, open, pattern, run, until } from './helpers.js';

function read(h: TestHarness, name: string, offset: number, blocks: number): Uint8Array {
  const o = open(name, false);
  const back = new Uint8Array(blocks * o.desc.bdev.blockSize);
  const st = run(h, (cb, d) => bdevRead(o.desc, o.ch, back, offset, blocks, cb, d));
  o.close();
  expect(st).to.equal(IoStatus.SUCCESS);
  return back;
}

function write(h: TestHarness, name: string, offset: number, data: Uint8Array): IoStatus {
  const o = open(name);
  const st = run(h, (cb, d) =>
    bdevWrite(o.desc, o.ch, data, offset, data.length / o.desc.bdev.blockSize, cb, d),
  );
  o.close();
  return st;
}

function waitDone(h: TestHarness, f: (cb: () => void) => void): void {
  let ok = false;
  f(() => {
    ok = true;
  });
  until(h, () => ok);
}

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('raid and error modules', () => {
  it('error: injected failures reach the caller by type and count, then clear', () => {
    const h = harness();
    bdevMallocCreate({ name: 'EB', num_blocks: 32, block_size: 512 });
    const { name } = bdevErrorCreate({ base_name: 'EB' });
    expect(name).to.equal('EE_EB');
    bdevErrorInjectError({ name, io_type: 'read', error_type: 'failure', num: 2 });
    const o = open(name);
    const buf = new Uint8Array(512);
    const st = [0, 1, 2].map(() => run(h, (cb, d) => bdevRead(o.desc, o.ch, buf, 0, 1, cb, d)));
    expect(st).to.deep.equal([IoStatus.FAILED, IoStatus.FAILED, IoStatus.SUCCESS]);
    // Writes were not hit; nomem is retried by the bdev layer and succeeds.
    bdevErrorInjectError({ name, io_type: 'write', error_type: 'nomem', num: 3 });
    expect(run(h, (cb, d) => bdevWrite(o.desc, o.ch, pattern(512, 1), 3, 1, cb, d), 50)).to.equal(
      IoStatus.SUCCESS,
    );
    bdevErrorInjectError({
      name,
      io_type: 'read',
      error_type: 'corrupt_data',
      num: 1,
      corrupt_offset: 7,
      corrupt_value: 0x10,
    });
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, buf, 3, 1, cb, d))).to.equal(IoStatus.SUCCESS);
    const want = pattern(512, 1);
    want[7] ^= 0x10;
    expect(eq(buf, want)).to.equal(true);
    bdevErrorInjectError({ name, io_type: 'all', error_type: 'failure', num: 5 });
    bdevErrorInjectError({ name, io_type: 'clear', error_type: 'failure' });
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, buf, 3, 1, cb, d))).to.equal(IoStatus.SUCCESS);
    expect(() => bdevErrorInjectError({ name, io_type: 'bogus' as never, error_type: 'failure' })).to.throw(
      /io_type must be one of/,
    );
    o.close();
    waitDone(h, (cb) => bdevErrorDelete({ name }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'EB' }, cb));
    h.close();
  });

  it('splitting: a failed child fails the parent; children past the failure are not sent', () => {
    const h = harness();
    bdevMallocCreate({ name: 'SPB', num_blocks: 64, block_size: 512, optimal_io_boundary: 8 });
    // error bdev inherits the split boundary; its second child fails.
    bdevErrorCreate({ base_name: 'SPB' });
    const o = open('EE_SPB');
    const data = pattern(24 * 512, 5);
    expect(run(h, (cb, d) => bdevWrite(o.desc, o.ch, data, 4, 24, cb, d))).to.equal(IoStatus.SUCCESS);
    expect(o.ch.ctx.stat.numWriteOps).to.equal(1);
    bdevErrorInjectError({ name: 'EE_SPB', io_type: 'read', error_type: 'failure', num: 1 });
    const back = new Uint8Array(24 * 512);
    // Children: [4,8) [8,16) [16,24) [24,28): the first fails, so the read fails.
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, 4, 24, cb, d))).to.equal(IoStatus.FAILED);
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, 4, 24, cb, d))).to.equal(IoStatus.SUCCESS);
    expect(eq(back, data)).to.equal(true);
    o.close();
    waitDone(h, (cb) => bdevErrorDelete({ name: 'EE_SPB' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'SPB' }, cb));
    h.close();
  });

  it('splitting: any offset, length and iovec layout reads back what was written (property)', () => {
    const h = harness();
    bdevMallocCreate({ name: 'PRB', num_blocks: 256, block_size: 512, optimal_io_boundary: 16 });
    const o = open('PRB');
    const model = new Uint8Array(256 * 512);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 6 }),
        fc.integer(),
        (off, len, cuts, seed) => {
          const n = Math.min(len, 256 - off);
          const data = pattern(n * 512, seed);
          const iovs: Uint8Array[] = [];
          let pos = 0;
          for (const c of cuts) {
            if (pos >= data.length) break;
            iovs.push(data.subarray(pos, Math.min(data.length, pos + c)));
            pos += c;
          }
          if (pos < data.length) iovs.push(data.subarray(pos));
          expect(run(h, (cb, d) => bdevWritev(o.desc, o.ch, iovs, off, n, cb, d))).to.equal(IoStatus.SUCCESS);
          model.set(data, off * 512);
          const back = new Uint8Array(256 * 512);
          const rv = [back.subarray(0, 100 * 512 + 17), back.subarray(100 * 512 + 17)];
          expect(run(h, (cb, d) => bdevReadv(o.desc, o.ch, rv, 0, 256, cb, d))).to.equal(IoStatus.SUCCESS);
          expect(eq(back, model)).to.equal(true);
        },
      ),
      { numRuns: 60 },
    );
    o.close();
    waitDone(h, (cb) => bdevMallocDelete({ name: 'PRB' }, cb));
    h.close();
  });

  it('raid0 stripes across bases; unmap spans strips', () => {
    const h = harness();
    bdevMallocCreate({ name: 'R0a', num_blocks: 64, block_size: 512 });
    bdevMallocCreate({ name: 'R0b', num_blocks: 64, block_size: 512 });
    bdevRaidCreate({ name: 'R0', raid_level: 'raid0', strip_size_kb: 4, base_bdevs: ['R0a', 'R0b'] });
    expect(bdevGetByName('R0')?.numBlocks).to.equal(128);
    const data = pattern(24 * 512, 9); // blocks 4..27: strips 0,1,2,3
    expect(write(h, 'R0', 4, data)).to.equal(IoStatus.SUCCESS);
    expect(eq(read(h, 'R0', 4, 24), data)).to.equal(true);
    // strip 1 (raid blocks 8..15) is base b blocks 0..7; strip 2 (16..23) is base a blocks 8..15.
    expect(eq(read(h, 'R0b', 0, 8), data.subarray(4 * 512, 12 * 512))).to.equal(true);
    expect(eq(read(h, 'R0a', 8, 8), data.subarray(12 * 512, 20 * 512))).to.equal(true);
    const o = open('R0');
    expect(run(h, (cb, d) => bdevUnmap(o.desc, o.ch, 6, 12, cb, d))).to.equal(IoStatus.SUCCESS);
    o.close();
    const after = read(h, 'R0', 4, 24);
    expect(after.subarray(2 * 512, 14 * 512).every((x) => x === 0)).to.equal(true);
    expect(eq(after.subarray(0, 2 * 512), data.subarray(0, 2 * 512))).to.equal(true);
    expect(eq(after.subarray(14 * 512), data.subarray(14 * 512))).to.equal(true);
    expect(() =>
      bdevRaidCreate({ name: 'Rx', raid_level: 'raid5', strip_size_kb: 4, base_bdevs: ['R0a'] }),
    ).to.throw(/raid_level must be/);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'R0' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'R0a' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'R0b' }, cb));
    h.close();
  });

  it('concat lays bases end to end; waits in configuring for a missing base', () => {
    const h = harness();
    bdevMallocCreate({ name: 'Ca', num_blocks: 40, block_size: 512 });
    bdevRaidCreate({ name: 'CC', raid_level: 'concat', strip_size_kb: 4, base_bdevs: 'Ca Cb' });
    expect(bdevRaidGetBdevs({ category: 'configuring' }).map((r) => r.name)).to.deep.equal(['CC']);
    bdevMallocCreate({ name: 'Cb', num_blocks: 24, block_size: 512 });
    h.pollThreads();
    expect(bdevGetByName('CC')?.numBlocks).to.equal(40 + 24);
    const data = pattern(8 * 512, 4);
    expect(write(h, 'CC', 40, data)).to.equal(IoStatus.SUCCESS);
    expect(eq(read(h, 'Cb', 0, 8), data)).to.equal(true);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'CC' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'Ca' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'Cb' }, cb));
    h.close();
  });

  it('raid1 over split over malloc: degraded reads after a mirror is removed, rebuild onto a new base', () => {
    const h = harness(2);
    bdevMallocCreate({ name: 'MM', num_blocks: 256, block_size: 512 });
    expect(bdevSplitCreate({ base_bdev: 'MM', split_count: 4 })).to.deep.equal([
      'MMp0',
      'MMp1',
      'MMp2',
      'MMp3',
    ]);
    bdevRaidCreate({ name: 'R1', raid_level: 'raid1', base_bdevs: ['MMp0', 'MMp1'] });
    const data = pattern(64 * 512, 21);
    expect(write(h, 'R1', 0, data)).to.equal(IoStatus.SUCCESS);
    expect(eq(read(h, 'MMp1', 0, 64), data)).to.equal(true);
    // Reads from another reactor too.
    h.setThread(1);
    expect(eq(read(h, 'R1', 0, 64), data)).to.equal(true);
    h.setThread(0);
    // A mirror fails (error bdev in front would also do); take MMp0 out.
    bdevRaidRemoveBaseBdev({ name: 'MMp0' });
    h.pollThreads();
    expect(bdevRaidGetBdevs()[0].num_base_bdevs_operational).to.equal(1);
    const more = pattern(8 * 512, 22);
    expect(write(h, 'R1', 8, more)).to.equal(IoStatus.SUCCESS);
    data.set(more, 8 * 512);
    for (let i = 0; i < 4; i++) expect(eq(read(h, 'R1', 0, 64), data)).to.equal(true);
    // Rebuild onto MMp2 while a writer keeps writing through reactor 1.
    let rebuilt: unknown = 'pending';
    bdevRaidAddBaseBdev({ raid_bdev: 'R1', base_bdev: 'MMp2' }, (e) => {
      rebuilt = e;
    });
    h.setThread(1);
    const w = open('R1');
    const late = pattern(512, 23);
    let writes = 0;
    const again = () => {
      bdevWrite(
        w.desc,
        w.ch,
        late,
        33,
        1,
        () => {
          writes++;
          if (rebuilt === 'pending') again();
        },
        null,
      );
    };
    again();
    h.setThread(0);
    until(h, () => rebuilt !== 'pending');
    until(h, () => true);
    h.pollThreads();
    expect(rebuilt).to.equal(null);
    expect(writes).to.be.greaterThan(0);
    h.setThread(1);
    w.close();
    h.setThread(0);
    h.pollThreads();
    data.set(late, 33 * 512);
    expect(eq(read(h, 'MMp2', 0, 64), data)).to.equal(true);
    // Now lose the original mirror: the rebuilt one serves everything.
    bdevRaidRemoveBaseBdev({ name: 'MMp1' });
    h.pollThreads();
    expect(eq(read(h, 'R1', 0, 64), data)).to.equal(true);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'R1' }, cb));
    waitDone(h, (cb) => bdevSplitDelete({ base_bdev: 'MM' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'MM' }, cb));
    h.close();
  });

  it('raid1 rebuild under writes from two reactors: windows locked everywhere, the new base written only where copied', () => {
    const h = harness(2);
    const BLOCKS = 4096; // 16 copy windows of 256 blocks
    const BS = 512;
    for (const n of ['RA', 'RB', 'RC']) bdevMallocCreate({ name: n, num_blocks: BLOCKS, block_size: BS });
    bdevRaidCreate({ name: 'R2', raid_level: 'raid1', base_bdevs: ['RA', 'RB'] });
    const shadow = pattern(BLOCKS * BS, 31);
    expect(write(h, 'R2', 0, shadow)).to.equal(IoStatus.SUCCESS);
    bdevRaidRemoveBaseBdev({ name: 'RB' });
    h.pollThreads();
    // The new base starts as garbage: only the copy and writes into the copied part may change it.
    expect(write(h, 'RC', 0, new Uint8Array(BLOCKS * BS).fill(0xee))).to.equal(IoStatus.SUCCESS);
    const progress = () =>
      (bdevRaidGetBdevs()[0].rebuild as { progress_blocks: number } | undefined)?.progress_blocks ?? -1;

    // Writers: 4 lanes per reactor, each lane one write at a time into its own 16-block stripes of
    // blocks [256, BLOCKS - 256), so the expected content is exact whatever the interleaving.
    let rebuilt: unknown = 'pending';
    let outstanding = 0;
    let writes = 0;
    const opened = [0, 1].map((t) => {
      h.setThread(t);
      return open('R2');
    });
    let seed = 100;
    const lane = (t: number, k: number) => {
      const o = opened[t];
      const stripes = (BLOCKS - 512) / 16;
      const mine = Math.floor((seed * 7919) % (stripes / 8));
      const stripe = mine * 8 + t * 4 + k;
      const off = 256 + stripe * 16 + (seed % 8);
      const n = 1 + (seed % 8);
      const data = pattern(n * BS, seed++);
      shadow.set(data, off * BS);
      outstanding++;
      const rc = bdevWrite(
        o.desc,
        o.ch,
        data,
        off,
        n,
        (st) => {
          expect(st).to.equal(IoStatus.SUCCESS);
          outstanding--;
          writes++;
          if (rebuilt === 'pending') lane(t, k);
        },
        null,
      );
      expect(rc).to.equal(0);
    };
    h.setThread(0);
    bdevRaidAddBaseBdev({ raid_bdev: 'R2', base_bdev: 'RC' }, (e) => {
      rebuilt = e;
    });
    for (const t of [0, 1]) {
      h.setThread(t);
      for (let k = 0; k < 4; k++) lane(t, k);
    }
    h.setThread(0);

    // Probes from reactor 1: the last block (not copied yet: the new base must not get it) and,
    // once the copy passed it, block 10 (copied: both mirrors get it at once).
    const probe = (off: number, seedP: number): (() => boolean) => {
      h.setThread(1);
      const data = pattern(BS, seedP);
      shadow.set(data, off * BS);
      let ok = false;
      bdevWrite(opened[1].desc, opened[1].ch, data, off, 1, () => (ok = true), null);
      h.setThread(0);
      return () => ok;
    };
    const rcBlock = (off: number) => read(h, 'RC', off, 1);
    const raBlock = (off: number) => read(h, 'RA', off, 1);
    const heldOn = [false, false];
    const watch = () => {
      for (const t of [0, 1]) if (opened[t].ch.ctx.lockedQueue.length > 0) heldOn[t] = true;
      return rebuilt !== 'pending';
    };
    const last = BLOCKS - 1;
    until(h, () => watch() || progress() >= 0); // every channel has the new base
    const lastDone = probe(last, 901);
    until(h, () => watch() || lastDone());
    expect(progress()).to.be.within(0, BLOCKS - 512);
    expect(eq(raBlock(last), shadow.subarray(last * BS, (last + 1) * BS))).to.equal(true);
    expect(rcBlock(last).every((b) => b === 0xee)).to.equal(true);
    until(h, () => watch() || progress() >= 512);
    expect(progress()).to.be.below(BLOCKS);
    const tenDone = probe(10, 902);
    until(h, () => watch() || tenDone());
    expect(eq(rcBlock(10), shadow.subarray(10 * BS, 11 * BS))).to.equal(true);
    until(h, watch);
    until(h, () => outstanding === 0);
    expect(rebuilt).to.equal(null);
    // Writes kept coming from both reactors and each of them had some held back by a window lock.
    expect(writes).to.be.greaterThan(100);
    expect(heldOn).to.deep.equal([true, true]);
    for (const t of [0, 1]) {
      h.setThread(t);
      opened[t].close();
    }
    h.setThread(0);
    h.pollThreads();
    expect(eq(read(h, 'RA', 0, BLOCKS), shadow)).to.equal(true);
    expect(eq(read(h, 'RC', 0, BLOCKS), shadow)).to.equal(true);
    // The rebuilt mirror alone serves everything.
    bdevRaidRemoveBaseBdev({ name: 'RA' });
    h.pollThreads();
    expect(eq(read(h, 'R2', 0, BLOCKS), shadow)).to.equal(true);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'R2' }, cb));
    for (const n of ['RA', 'RB', 'RC']) waitDone(h, (cb) => bdevMallocDelete({ name: n }, cb));
    h.close();
  });

  it('raid1 reads fall over to the other mirror when one returns an error; hot remove of a base degrades', () => {
    const h = harness();
    bdevMallocCreate({ name: 'FA', num_blocks: 32, block_size: 512 });
    bdevMallocCreate({ name: 'FB', num_blocks: 32, block_size: 512 });
    bdevErrorCreate({ base_name: 'FA' });
    bdevRaidCreate({ name: 'RF', raid_level: '1', base_bdevs: ['EE_FA', 'FB'] });
    const data = pattern(4 * 512, 8);
    expect(write(h, 'RF', 0, data)).to.equal(IoStatus.SUCCESS);
    bdevErrorInjectError({ name: 'EE_FA', io_type: 'read', error_type: 'failure', num: 10 });
    for (let i = 0; i < 4; i++) expect(eq(read(h, 'RF', 0, 4), data)).to.equal(true);
    let gone = false;
    bdevUnregister(bdevGetByName('FB')!, () => {
      gone = true;
    });
    until(h, () => gone);
    bdevErrorInjectError({ name: 'EE_FA', io_type: 'clear', error_type: 'failure' });
    expect(eq(read(h, 'RF', 0, 4), data)).to.equal(true);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'RF' }, cb));
    waitDone(h, (cb) => bdevErrorDelete({ name: 'EE_FA' }, cb));
    waitDone(h, (cb) => bdevMallocDelete({ name: 'FA' }, cb));
    h.close();
  });

  it('raid1: a failed mirror write fails that base everywhere; the array degrades; reads never see stale data', () => {
    // The reproduction of the drift: write 1s, make one base fail writes, write 2s. The second
    // write succeeds (the other mirror has it), but the failing base must leave the array on every
    // reactor before that success is reported, or a read could return the old 1s from it.
    const h = harness(2);
    bdevMallocCreate({ name: 'DA', num_blocks: 64, block_size: 512 });
    bdevMallocCreate({ name: 'DB', num_blocks: 64, block_size: 512 });
    bdevErrorCreate({ base_name: 'DA' });
    bdevRaidCreate({ name: 'RD', raid_level: 'raid1', base_bdevs: ['EE_DA', 'DB'] });
    const ones = new Uint8Array(4 * 512).fill(1);
    const twos = new Uint8Array(4 * 512).fill(2);
    expect(write(h, 'RD', 8, ones)).to.equal(IoStatus.SUCCESS);
    bdevErrorInjectError({ name: 'EE_DA', io_type: 'write', error_type: 'failure', num: 1 });
    h.setThread(1);
    expect(write(h, 'RD', 8, twos)).to.equal(IoStatus.SUCCESS);
    const info = bdevRaidGetBdevs()[0] as {
      state: string;
      num_base_bdevs_operational: number;
      num_base_bdevs_discovered: number;
      base_bdevs_list: { name: string | null; is_configured: boolean }[];
    };
    expect(info.state).to.equal('online');
    expect(info.num_base_bdevs_operational).to.equal(1);
    expect(info.base_bdevs_list.map((b) => b.is_configured)).to.deep.equal([false, true]);
    // Reads alternate between operational mirrors: four from each reactor all see the 2s.
    for (const t of [0, 1]) {
      h.setThread(t);
      for (let i = 0; i < 4; i++) expect(read(h, 'RD', 8, 4)[0]).to.equal(2);
    }
    h.setThread(0);
    h.pollThreads();
    // The failed base was let go everywhere (descriptor closed, claim released).
    expect(bdevRaidGetBdevs()[0].num_base_bdevs_discovered).to.equal(1);
    expect(bdevGetByName('EE_DA')!.claimedBy).to.equal(null);
    // Writes go on to the remaining mirror.
    expect(write(h, 'RD', 8, ones)).to.equal(IoStatus.SUCCESS);
    expect(read(h, 'DB', 8, 4)[0]).to.equal(1);
    waitDone(h, (cb) => bdevRaidDelete({ name: 'RD' }, cb));
    waitDone(h, (cb) => bdevErrorDelete({ name: 'EE_DA' }, cb));
    for (const n of ['DA', 'DB']) waitDone(h, (cb) => bdevMallocDelete({ name: n }, cb));
    h.close();
  });

  it('raid1: a write that fails on every mirror fails, and the array goes offline', () => {
    const h = harness();
    bdevMallocCreate({ name: 'GA', num_blocks: 64, block_size: 512 });
    bdevMallocCreate({ name: 'GB', num_blocks: 64, block_size: 512 });
    bdevErrorCreate({ base_name: 'GA' });
    bdevErrorCreate({ base_name: 'GB' });
    bdevRaidCreate({ name: 'RG', raid_level: 'raid1', base_bdevs: ['EE_GA', 'EE_GB'] });
    for (const n of ['EE_GA', 'EE_GB'])
      bdevErrorInjectError({ name: n, io_type: 'write', error_type: 'failure', num: 1 });
    expect(write(h, 'RG', 0, new Uint8Array(512).fill(3))).to.equal(IoStatus.FAILED);
    h.pollThreads();
    expect(bdevGetByName('RG')).to.equal(undefined);
    expect(bdevRaidGetBdevs()).to.deep.equal([]);
    for (const n of ['EE_GA', 'EE_GB']) waitDone(h, (cb) => bdevErrorDelete({ name: n }, cb));
    for (const n of ['GA', 'GB']) waitDone(h, (cb) => bdevMallocDelete({ name: n }, cb));
    h.close();
  });
});
