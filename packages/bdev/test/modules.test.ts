import { setContainedLog } from '@storkit/block';
import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import {
  BdevError,
  bdevAbort,
  bdevClose,
  bdevExamineErrors,
  bdevGetByName,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevRead,
  bdevSetTimeout,
  bdevWaitForExamine,
  bdevWrite,
  IoStatus,
} from '../src/index.js';
import { type Bdev, bdevModuleRegister, bdevModuleUnregister } from '../src/module.js';
import {
  bdevDelayCreate,
  bdevDelayDelete,
  bdevDelayUpdateLatency,
  bdevErrorCreate,
  bdevErrorDelete,
  bdevMallocCreate,
  bdevMallocDelete,
  bdevPassthruCreate,
  bdevPassthruDelete,
  bdevSplitCreate,
  bdevSplitDelete,
} from '../src/modules/index.js';
import { harness, open, pattern, run, until } from './helpers.js';

function writeRead(h: TestHarness, name: string, offset: number, blocks: number, seed: number): void {
  const o = open(name);
  const bs = o.desc.bdev.blockSize;
  const data = pattern(blocks * bs, seed);
  expect(run(h, (cb, d) => bdevWrite(o.desc, o.ch, data, offset, blocks, cb, d))).to.equal(IoStatus.SUCCESS);
  const back = new Uint8Array(blocks * bs);
  expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, offset, blocks, cb, d))).to.equal(IoStatus.SUCCESS);
  expect(Buffer.from(back).equals(Buffer.from(data))).to.equal(true);
  o.close();
}

function readBlocks(h: TestHarness, name: string, offset: number, blocks: number): Uint8Array {
  const o = open(name, false);
  const back = new Uint8Array(blocks * o.desc.bdev.blockSize);
  expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, offset, blocks, cb, d))).to.equal(IoStatus.SUCCESS);
  o.close();
  return back;
}

function teardown(h: TestHarness, del: ((cb: () => void) => void)[]): void {
  for (const f of del) {
    let ok = false;
    f(() => {
      ok = true;
    });
    until(h, () => ok);
  }
  h.close();
}

describe('bdev modules', () => {
  it("one module's examine hooks throwing neither hides the bdev from the next module nor hangs bdevWaitForExamine", () => {
    const h = harness();
    const lines: string[] = [];
    const prevLog = setContainedLog((l) => lines.push(l));
    const before = bdevExamineErrors().count;
    const seen: string[] = [];
    const broken = {
      name: 'test_broken_examine',
      examine: (_b: Bdev) => {
        throw new Error('examine bug');
      },
      examineDisk: (_b: Bdev, _done: () => void) => {
        throw new Error('examine_disk bug');
      },
    };
    const fine = {
      name: 'test_fine_examine',
      examine: (b: Bdev) => seen.push(`examine ${b.name}`),
      examineDisk: (b: Bdev, done: () => void) => {
        seen.push(`disk ${b.name}`);
        done();
      },
    };
    bdevModuleRegister(broken);
    bdevModuleRegister(fine);
    try {
      bdevMallocCreate({ name: 'MX', num_blocks: 64, block_size: 512 });
      // Answers only if the throwing examine_disk counted as finished.
      h.run<void>((cb) => bdevWaitForExamine(() => cb(null)));
      expect(seen).to.deep.equal(['examine MX', 'disk MX']);
      const e = bdevExamineErrors();
      expect(e.count - before).to.equal(2);
      expect((e.last as Error).message).to.equal('examine_disk bug');
      expect(lines.some((l) => l.includes('bdev examine') && l.includes('examine bug'))).to.equal(true);
    } finally {
      bdevModuleUnregister(broken);
      bdevModuleUnregister(fine);
      setContainedLog(prevLog);
      h.run<void>((cb) => bdevMallocDelete({ name: 'MX' }, (e) => cb(e)));
    }
  });

  it('malloc: a batch larger than its ring whose completions resubmit completes every I/O once', () => {
    const h = harness();
    bdevMallocCreate({ name: 'MB', num_blocks: 1024, block_size: 512 });
    const o = open('MB');
    const n = 600; // more than the malloc channel's initial 256-slot ring, in one poll
    const bufs: Uint8Array[] = [];
    const reads: Uint8Array[] = [];
    const writesDone = new Array<number>(n).fill(0);
    const readsDone = new Array<number>(n).fill(0);
    let failures = 0;
    const onRead = (st: IoStatus, i: number): void => {
      if (st !== IoStatus.SUCCESS) failures++;
      readsDone[i]++;
    };
    // Each write's completion submits a read of the same block: the ring refills while the batch
    // that was taken off it is still completing.
    const onWrite = (st: IoStatus, i: number): void => {
      if (st !== IoStatus.SUCCESS) failures++;
      writesDone[i]++;
      expect(bdevRead(o.desc, o.ch, reads[i], i, 1, onRead, i)).to.equal(0);
    };
    for (let i = 0; i < n; i++) {
      bufs.push(pattern(512, i + 1));
      reads.push(new Uint8Array(512));
    }
    for (let i = 0; i < n; i++) expect(bdevWrite(o.desc, o.ch, bufs[i], i, 1, onWrite, i)).to.equal(0);
    until(h, () => readsDone.every((c) => c > 0));
    h.pollThreads();
    expect(failures).to.equal(0);
    expect(writesDone.every((c) => c === 1)).to.equal(true);
    expect(readsDone.every((c) => c === 1)).to.equal(true);
    for (let i = 0; i < n; i++) expect(Buffer.from(reads[i]).equals(Buffer.from(bufs[i]))).to.equal(true);
    o.close();
    let gone = false;
    bdevMallocDelete({ name: 'MB' }, () => {
      gone = true;
    });
    until(h, () => gone);
  });

  it('split: parts map onto the base; a config waits for its base (examine)', () => {
    const h = harness();
    expect(bdevSplitCreate({ base_bdev: 'SB', split_count: 4 })).to.deep.equal([]);
    bdevMallocCreate({ name: 'SB', num_blocks: 64, block_size: 512 });
    h.pollThreads();
    expect(bdevGetByName('SBp3')?.numBlocks).to.equal(16);
    // Part UUIDs derive from the base's (RFC 4122 v5), so every reactor and every reload agree.
    const uuids = [0, 1, 2, 3].map((i) => bdevGetByName(`SBp${i}`)!.uuid);
    expect(new Set(uuids).size).to.equal(4);
    for (const u of uuids)
      expect(u).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(() => bdevWrite(open('SB').desc, null as never, new Uint8Array(512), 0, 1, () => {}, null))
      .to.throw(BdevError)
      .with.property('code', 'EPERM');
    writeRead(h, 'SBp1', 2, 3, 11);
    const base = readBlocks(h, 'SB', 18, 3);
    expect(Buffer.from(base).equals(Buffer.from(pattern(1536, 11)))).to.equal(true);
    expect(() => bdevSplitCreate({ base_bdev: 'SB', split_count: 0 })).to.throw(/split_count must be >= 1/);
    teardown(h, [
      (cb) => bdevSplitDelete({ base_bdev: 'SB' }, cb),
      (cb) => bdevMallocDelete({ name: 'SB' }, cb),
    ]);
  });

  it("regression: delay and error bdevs named before their base failed ENODEV, so spdk_tgt's save_config (vbdevs before bases) did not load; now they wait for the base (examine)", () => {
    const h = harness();
    const d = bdevDelayCreate({
      base_bdev_name: 'LB',
      name: 'LD',
      avg_read_latency: 0,
      p99_read_latency: 0,
      avg_write_latency: 0,
      p99_write_latency: 0,
    });
    const e = bdevErrorCreate({ base_name: 'LE' });
    expect(bdevGetByName('LD')).to.equal(undefined);
    expect(bdevGetByName('EE_LE')).to.equal(undefined);
    // The uuid is fixed at create, so every reactor's replay makes the same bdev.
    expect(d.replay.uuid).to.match(/^[0-9a-f-]{36}$/);
    expect(e.replay.uuid).to.match(/^[0-9a-f-]{36}$/);
    // The same names again are refused while they wait.
    expect(() => bdevErrorCreate({ base_name: 'LE' })).to.throw(/exists/);
    bdevMallocCreate({ name: 'LB', num_blocks: 64, block_size: 512 });
    bdevMallocCreate({ name: 'LE', num_blocks: 64, block_size: 512 });
    h.pollThreads();
    expect(bdevGetByName('LD')?.uuid).to.equal(d.replay.uuid);
    expect(bdevGetByName('EE_LE')?.uuid).to.equal(e.replay.uuid);
    writeRead(h, 'LD', 1, 2, 5);
    writeRead(h, 'EE_LE', 3, 1, 6);
    // A pending one is deleted without its base ever appearing.
    bdevDelayCreate({
      base_bdev_name: 'Nope',
      name: 'LD2',
      avg_read_latency: 0,
      p99_read_latency: 0,
      avg_write_latency: 0,
      p99_write_latency: 0,
    });
    teardown(h, [
      (cb) => bdevDelayDelete({ name: 'LD2' }, cb),
      (cb) => bdevDelayDelete({ name: 'LD' }, cb),
      (cb) => bdevErrorDelete({ name: 'EE_LE' }, cb),
      (cb) => bdevMallocDelete({ name: 'LB' }, cb),
      (cb) => bdevMallocDelete({ name: 'LE' }, cb),
    ]);
    expect(() => bdevDelayDelete({ name: 'LD2' })).to.throw(/no delay bdev/);
  });

  it('delay and error examine: a base claimed by another module leaves the vbdev pending; any other failure surfaces and frees the base', () => {
    const h = harness();
    const lat = { avg_read_latency: 0, p99_read_latency: 0, avg_write_latency: 0, p99_write_latency: 0 };
    // Both wait for CB: whichever examines second finds it claimed and stays pending, quietly.
    bdevDelayCreate({ base_bdev_name: 'CB', name: 'CD', ...lat });
    bdevErrorCreate({ base_name: 'CB' });
    bdevMallocCreate({ name: 'CB', num_blocks: 64, block_size: 512 });
    h.pollThreads();
    expect([bdevGetByName('CD'), bdevGetByName('EE_CB')].filter((b) => b !== undefined)).to.have.length(1);
    // Their names taken while they waited: that is not a claim, and it is not swallowed.
    bdevDelayCreate({ base_bdev_name: 'XB', name: 'XD', ...lat });
    bdevErrorCreate({ base_name: 'XE' });
    bdevMallocCreate({ name: 'XD', num_blocks: 64, block_size: 512 });
    bdevMallocCreate({ name: 'EE_XE', num_blocks: 64, block_size: 512 });
    const prevLog = setContainedLog(() => {});
    for (const base of ['XB', 'XE']) {
      const before = bdevExamineErrors().count;
      bdevMallocCreate({ name: base, num_blocks: 64, block_size: 512 });
      h.pollThreads();
      // Surfaced: counted and logged by the examine loop (which goes on to the other modules).
      expect(bdevExamineErrors().count).to.equal(before + 1);
      expect(bdevExamineErrors().last).to.be.instanceOf(BdevError).with.property('code', 'EEXIST');
      // The base is not left claimed by a vbdev that was never made.
      bdevClose(bdevOpenExt(base, true, () => {}));
    }
    setContainedLog(prevLog);
    const pendingCb = bdevGetByName('CD') === undefined ? 'CD' : 'EE_CB';
    teardown(h, [
      (cb) =>
        pendingCb === 'CD' ? bdevErrorDelete({ name: 'EE_CB' }, cb) : bdevDelayDelete({ name: 'CD' }, cb),
      (cb) =>
        pendingCb === 'CD' ? bdevDelayDelete({ name: 'CD' }, cb) : bdevErrorDelete({ name: 'EE_CB' }, cb),
      (cb) => bdevDelayDelete({ name: 'XD' }, cb),
      (cb) => bdevErrorDelete({ name: 'EE_XE' }, cb),
      ...['CB', 'XB', 'XE', 'XD', 'EE_XE'].map((name) => (cb: () => void) => bdevMallocDelete({ name }, cb)),
    ]);
  });

  it('passthru forwards unchanged and goes away with its base', () => {
    const h = harness();
    bdevMallocCreate({ name: 'PB', num_blocks: 32, block_size: 4096 });
    bdevPassthruCreate({ base_bdev_name: 'PB', name: 'PT' });
    writeRead(h, 'PT', 5, 2, 3);
    expect(Buffer.from(readBlocks(h, 'PB', 5, 2)).equals(Buffer.from(pattern(8192, 3)))).to.equal(true);
    let gone = false;
    bdevMallocDelete({ name: 'PB' }, () => {
      gone = true;
    });
    until(h, () => gone);
    expect(bdevGetByName('PT')).to.equal(undefined);
    teardown(h, [(cb) => bdevPassthruDelete({ name: 'PT' }, cb)]);
  });

  it('delay: average and p99 latencies, update_latency, and abort of a delayed I/O after a timeout', () => {
    const h = harness();
    bdevMallocCreate({ name: 'DB', num_blocks: 64, block_size: 512 });
    bdevDelayCreate({
      base_bdev_name: 'DB',
      name: 'DL',
      avg_read_latency: 100,
      p99_read_latency: 1000,
      avg_write_latency: 200,
      p99_write_latency: 2000,
    });
    expect(() =>
      bdevDelayCreate({
        base_bdev_name: 'DB',
        name: 'X',
        avg_read_latency: 10,
        p99_read_latency: 5,
        avg_write_latency: 0,
        p99_write_latency: 0,
      }),
    ).to.throw(/p99_read_latency/);
    const o = open('DL');
    const buf = new Uint8Array(512);
    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = h.nowUs;
      run(h, (cb, d) => bdevRead(o.desc, o.ch, buf, i % 64, 1, cb, d), 10);
      lat.push(h.nowUs - t0);
    }
    expect(lat.slice(0, 99).every((l) => l >= 100 && l <= 120)).to.equal(true);
    expect(lat[99]).to.be.within(1000, 1020);
    const t0 = h.nowUs;
    run(h, (cb, d) => bdevWrite(o.desc, o.ch, buf, 0, 1, cb, d), 10);
    expect(h.nowUs - t0).to.be.within(200, 220);
    bdevDelayUpdateLatency({ delay_bdev_name: 'DL', latency_type: 'avg_write', latency_us: 50 });
    const t1 = h.nowUs;
    run(h, (cb, d) => bdevWrite(o.desc, o.ch, buf, 0, 1, cb, d), 10);
    expect(h.nowUs - t1).to.be.within(50, 70);
    expect(() =>
      bdevDelayUpdateLatency({ delay_bdev_name: 'DL', latency_type: 'avg_read', latency_us: 5000 }),
    ).to.throw(/p99_read/);
    o.close();
    // Timeout + abort: a read delayed 50 ms, timeout 5 ms.
    bdevDelayUpdateLatency({ delay_bdev_name: 'DL', latency_type: 'p99_read', latency_us: 50_000 });
    bdevDelayUpdateLatency({ delay_bdev_name: 'DL', latency_type: 'avg_read', latency_us: 50_000 });
    const desc = bdevOpenExt('DL', false, () => {});
    const timedOut: unknown[] = [];
    const aborts: IoStatus[] = [];
    const res = { status: 0 as number };
    bdevSetTimeout(desc, 5000, (_c, io) => {
      timedOut.push(io.cbArg);
      bdevAbort(desc, ch, io.cbArg, (st: IoStatus) => aborts.push(st), null);
    });
    const ch = bdevGetIoChannel(desc);
    const t2 = h.nowUs;
    bdevRead(desc, ch, buf, 0, 1, (st: IoStatus, r: typeof res) => (r.status = st), res);
    until(h, () => res.status !== 0, 100);
    h.pollThreads();
    expect(res.status).to.equal(IoStatus.ABORTED);
    expect(timedOut).to.deep.equal([res]);
    expect(aborts).to.deep.equal([IoStatus.SUCCESS]);
    expect(h.nowUs - t2).to.be.within(5000, 7000);
    ch.put();
    bdevClose(desc);
    teardown(h, [(cb) => bdevDelayDelete({ name: 'DL' }, cb), (cb) => bdevMallocDelete({ name: 'DB' }, cb)]);
  });
});
