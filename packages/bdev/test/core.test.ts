import { expect } from 'chai';
import {
  BdevError,
  bdevAliasAdd,
  bdevClose,
  bdevCompareAndWritev,
  bdevComparev,
  bdevEnableHistogram,
  bdevFlush,
  bdevGetByName,
  bdevGetIostat,
  bdevInfoJson,
  bdevOpenExt,
  bdevRead,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
  ENOMEM,
  getBdevOptions,
  IoStatus,
  IoWaitEntry,
  queueIoWait,
  setBdevOptions,
} from '../src/index.js';
import { bdevModuleClaimBdev, bdevUnregister } from '../src/module.js';
import {
  bdevMallocCreate,
  bdevMallocDelete,
  bdevNullCreate,
  bdevNullResize,
  mallocModule,
} from '../src/modules/index.js';
import { done, harness, open, pattern, record, until } from './helpers.js';

describe('bdev core', () => {
  it('registers with name, alias, uuid, geometry; rejects duplicates', () => {
    const h = harness();
    const { name, replay } = bdevMallocCreate({
      name: 'M0',
      num_blocks: 64,
      block_size: 512,
      optimal_io_boundary: 8,
    });
    expect(name).to.equal('M0');
    const b = bdevGetByName('M0');
    expect(b?.blockSize).to.equal(512);
    expect(b?.numBlocks).to.equal(64);
    expect(b?.optimalIoBoundary).to.equal(8);
    expect(b?.uuid).to.match(/^[0-9a-f-]{36}$/);
    expect(replay.uuid).to.equal(b?.uuid);
    expect(replay.storkit_region).to.be.a('number');
    bdevAliasAdd(b!, 'alias0');
    const info = bdevInfoJson(b!);
    expect(info).to.include({
      name: 'M0',
      block_size: 512,
      num_blocks: 64,
      claimed: false,
      product_name: 'Malloc disk',
    });
    expect(info.aliases).to.deep.equal(['alias0']);
    expect(info.supported_io_types).to.include({
      read: true,
      write: true,
      compare_and_write: true,
      abort: false,
    });
    expect(bdevGetByName('alias0')).to.equal(b);
    expect(() => bdevMallocCreate({ name: 'alias0', num_blocks: 8, block_size: 512 }))
      .to.throw(BdevError)
      .with.property('code', 'EEXIST');
    expect(() => bdevMallocCreate({ name: 'X', num_blocks: 8, block_size: 500 })).to.throw(
      /block_size must be a power of two/,
    );
    expect(() => bdevMallocCreate({ name: 'X', num_blocks: 0, block_size: 512 })).to.throw(
      /num_blocks must be >= 1/,
    );
    expect(() => bdevMallocCreate({ name: 'X', num_blocks: 8, block_size: 512, bogus: 1 } as never)).to.throw(
      /unknown parameter bogus/,
    );
    const d = done();
    bdevMallocDelete({ name: 'M0' }, (e) => record(e === null ? IoStatus.SUCCESS : IoStatus.FAILED, d));
    h.pollThreads();
    expect(d.n).to.equal(1);
    expect(bdevGetByName('M0')).to.equal(undefined);
    expect(bdevGetByName('alias0')).to.equal(undefined);
    h.close();
  });

  it('reads back what it wrote, through iovecs, zeroes, unmap, compare; never completes inside submit', () => {
    const h = harness();
    bdevMallocCreate({ name: 'M1', num_blocks: 128, block_size: 512 });
    const o = open('M1');
    const data = pattern(4096, 7);
    const d = done();
    expect(bdevWrite(o.desc, o.ch, data, 10, 8, record, d)).to.equal(0);
    expect(d.n).to.equal(0);
    h.pollThreads();
    expect(d.status).to.equal(IoStatus.SUCCESS);
    const a = new Uint8Array(1000);
    const b = new Uint8Array(3096);
    bdevReadv(o.desc, o.ch, [a.subarray(0, 1000), b], 10, 8, record, d);
    h.pollThreads();
    expect(Buffer.concat([a, b]).equals(Buffer.from(data))).to.equal(true);
    bdevComparev(o.desc, o.ch, [data], 10, 8, record, d);
    h.pollThreads();
    expect(d.status).to.equal(IoStatus.SUCCESS);
    bdevWriteZeroes(o.desc, o.ch, 11, 1, record, d);
    h.pollThreads();
    bdevComparev(o.desc, o.ch, [data], 10, 8, record, d);
    h.pollThreads();
    expect(d.status).to.equal(IoStatus.MISCOMPARE);
    const one = new Uint8Array(512).fill(9);
    bdevRead(o.desc, o.ch, one, 11, 1, record, d);
    h.pollThreads();
    expect(one.every((x) => x === 0)).to.equal(true);
    bdevUnmap(o.desc, o.ch, 10, 1, record, d);
    bdevFlush(o.desc, o.ch, 0, 128, record, d);
    h.pollThreads();
    expect(d.status).to.equal(IoStatus.SUCCESS);
    expect(d.n).to.equal(8);
    expect(() => bdevRead(o.desc, o.ch, one, 128, 1, record, d)).to.throw(/outside/);
    expect(() => bdevRead(o.desc, o.ch, one, 0, 2, record, d))
      .to.throw(BdevError)
      .with.property('code', 'EINVAL');
    o.close();
    const ro = open('M1', false);
    expect(() => bdevWrite(ro.desc, ro.ch, one, 0, 1, record, d))
      .to.throw(BdevError)
      .with.property('code', 'EPERM');
    ro.close();
    bdevMallocDelete({ name: 'M1' });
    h.pollThreads();
    h.close();
  });

  it('shares malloc data between reactor instances replayed from plain params', () => {
    const h = harness(2);
    const { replay } = bdevMallocCreate({ name: 'Mshare', num_blocks: 16, block_size: 512 });
    // Same isolate: the harness has one registry, so replay on a second name to prove the shared region.
    const copy = bdevMallocCreate(
      JSON.parse(JSON.stringify({ ...replay, name: 'Mshare2', uuid: undefined })),
    );
    const o1 = open('Mshare');
    const o2 = open(copy.name);
    const d = done();
    bdevWrite(o1.desc, o1.ch, pattern(512, 3), 5, 1, record, d);
    h.pollThreads();
    const back = new Uint8Array(512);
    bdevRead(o2.desc, o2.ch, back, 5, 1, record, d);
    h.pollThreads();
    expect(Buffer.from(back).equals(Buffer.from(pattern(512, 3)))).to.equal(true);
    o1.close();
    o2.close();
    bdevMallocDelete({ name: 'Mshare' });
    bdevMallocDelete({ name: 'Mshare2' });
    h.pollThreads();
    h.close();
  });

  it('returns ENOMEM when the channel pool is empty and calls queueIoWait entries when one returns', () => {
    const old = getBdevOptions().bdev_io_cache_size;
    setBdevOptions({ bdev_io_cache_size: 4 });
    const h = harness();
    try {
      bdevNullCreate({ name: 'N0', num_blocks: 64, block_size: 512 });
      const o = open('N0');
      const buf = new Uint8Array(512);
      const d = done();
      for (let i = 0; i < 4; i++) expect(bdevRead(o.desc, o.ch, buf, i, 1, record, d)).to.equal(0);
      expect(bdevRead(o.desc, o.ch, buf, 5, 1, record, d)).to.equal(ENOMEM);
      let woke = 0;
      const entry = new IoWaitEntry(() => {
        woke++;
        expect(bdevRead(o.desc, o.ch, buf, 5, 1, record, d)).to.equal(0);
      });
      queueIoWait(o.ch, entry);
      expect(() => queueIoWait(o.ch, entry)).to.throw(/already queued/);
      h.pollThreads();
      expect(woke).to.equal(1);
      expect(d.n).to.equal(5);
      o.close();
    } finally {
      setBdevOptions({ bdev_io_cache_size: old });
    }
    h.close();
  });

  it('claims are exclusive for writers', () => {
    const h = harness();
    bdevNullCreate({ name: 'N1', num_blocks: 64, block_size: 512 });
    const b = bdevGetByName('N1')!;
    const d1 = bdevOpenExt('N1', false, () => {});
    bdevModuleClaimBdev(b, d1, mallocModule);
    expect(() => bdevOpenExt('N1', true, () => {}))
      .to.throw(BdevError)
      .with.property('code', 'EPERM');
    expect(() => bdevModuleClaimBdev(b, null, mallocModule))
      .to.throw(BdevError)
      .with.property('code', 'EPERM');
    const ro = bdevOpenExt('N1', false, () => {});
    bdevClose(ro);
    bdevClose(d1);
    const w = bdevOpenExt('N1', true, () => {});
    bdevClose(w);
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });

  it('tells descriptors about resize', () => {
    const h = harness();
    bdevNullCreate({ name: 'N2', num_blocks: 2048, block_size: 512 });
    const o = open('N2');
    bdevNullResize({ name: 'N2', new_size: 2 });
    h.pollThreads();
    expect(o.events).to.deep.equal(['resize']);
    expect(o.desc.bdev.numBlocks).to.equal(4096);
    expect(() => bdevNullResize({ name: 'N2', new_size: 0 })).to.throw(/new_size/);
    o.close();
    bdevUnregister(o.desc.bdev);
    h.pollThreads();
    h.close();
  });

  it('hot remove: descriptors hear REMOVE, in-flight I/O drains before destruct', () => {
    const h = harness(2);
    bdevMallocCreate({ name: 'M2', num_blocks: 256, block_size: 512 });
    const state = { submitted: 0, completed: 0, failed: 0, stop: false, removedDone: false };
    const users = [0, 1].map((t) => {
      h.setThread(t);
      const buf = new Uint8Array(512);
      const u = { o: open('M2'), buf, t, outstanding: 0, closed: false };
      return u;
    });
    type U = (typeof users)[number];
    const cb = (s: IoStatus, u: U) => {
      state.completed++;
      u.outstanding--;
      if (s !== IoStatus.SUCCESS) state.failed++;
      if (u.o.events.includes('remove')) {
        if (u.outstanding === 0 && !u.closed) {
          u.closed = true;
          u.o.close();
        }
        return;
      }
      submit(u);
    };
    const submit = (u: U) => {
      if (bdevRead(u.o.desc, u.o.ch, u.buf, state.submitted % 256, 1, cb, u) === 0) {
        state.submitted++;
        u.outstanding++;
      }
    };
    for (const u of users) {
      h.setThread(u.t);
      for (let i = 0; i < 16; i++) submit(u);
    }
    h.setThread(0);
    for (let i = 0; i < 5; i++) h.pollOnce();
    bdevUnregister(bdevGetByName('M2')!, () => {
      state.removedDone = true;
    });
    until(h, () => state.removedDone);
    expect(state.completed).to.equal(state.submitted);
    expect(state.failed).to.equal(0);
    expect(users.every((u) => u.closed)).to.equal(true);
    h.close();
  });

  it('compare-and-write is atomic against writers on other reactors', () => {
    const h = harness(3);
    bdevMallocCreate({ name: 'M3', num_blocks: 8, block_size: 512 });
    const opens = [0, 1, 2].map((t) => {
      h.setThread(t);
      return open('M3');
    });
    // Block 0 holds a counter; each CAW reads the value it expects and writes value+1.
    const block = (v: number) => new Uint8Array(512).fill(v);
    h.setThread(0);
    const d0 = done();
    bdevWrite(opens[0].desc, opens[0].ch, block(0), 0, 1, record, d0);
    h.pollThreads();
    let successes = 0;
    let misses = 0;
    const cur = new Uint8Array(512);
    // Several rounds of racing CAWs from all reactors with the same expected value: exactly one wins.
    for (let round = 0; round < 5; round++) {
      h.setThread(0);
      bdevRead(opens[0].desc, opens[0].ch, cur, 0, 1, record, d0);
      h.pollThreads();
      const v = cur[0];
      const results: IoStatus[] = [];
      for (let t = 0; t < 3; t++) {
        h.setThread(t);
        bdevCompareAndWritev(
          opens[t].desc,
          opens[t].ch,
          [block(v)],
          [block(v + 1)],
          0,
          1,
          (s: IoStatus) => results.push(s),
          null,
        );
        // A plain writer racing in: it must land before or after a CAW, never between compare and write.
        bdevWrite(opens[t].desc, opens[t].ch, block(v), 1, 1, record, done());
      }
      h.pollThreads();
      successes += results.filter((s) => s === IoStatus.SUCCESS).length;
      misses += results.filter((s) => s === IoStatus.MISCOMPARE).length;
      expect(results.filter((s) => s === IoStatus.SUCCESS)).to.have.length(1);
    }
    expect(successes).to.equal(5);
    expect(misses).to.equal(10);
    h.setThread(0);
    bdevRead(opens[0].desc, opens[0].ch, cur, 0, 1, record, d0);
    h.pollThreads();
    expect(cur[0]).to.equal(5);
    opens.forEach((o, t) => {
      h.setThread(t);
      o.close();
    });
    h.setThread(0);
    bdevMallocDelete({ name: 'M3' });
    h.pollThreads();
    h.close();
  });

  it('keeps statistics per channel and per bdev, with histograms', () => {
    const h = harness(2);
    bdevNullCreate({ name: 'N3', num_blocks: 64, block_size: 4096 });
    bdevEnableHistogram(bdevGetByName('N3')!, true);
    h.pollThreads();
    const os = [0, 1].map((t) => {
      h.setThread(t);
      const o = open('N3');
      for (let i = 0; i < 10; i++) bdevRead(o.desc, o.ch, new Uint8Array(4096), i, 1, record, done());
      for (let i = 0; i < 3; i++) bdevWrite(o.desc, o.ch, new Uint8Array(4096), i, 1, record, done());
      return o;
    });
    h.advanceTime(5);
    h.pollThreads();
    h.setThread(0);
    let got: { reads: number; writes: number; bytes: number; hist: number } | null = null;
    bdevGetIostat(bdevGetByName('N3')!, (s, hist) => {
      got = { reads: s.numReadOps, writes: s.numWriteOps, bytes: s.bytesRead, hist: hist?.count ?? -1 };
    });
    h.pollThreads();
    expect(got).to.deep.equal({ reads: 20, writes: 6, bytes: 20 * 4096, hist: 26 });
    expect(os[0].ch.ctx.stat.numReadOps).to.equal(10);
    const d = done();
    bdevReset(os[0].desc, os[0].ch, record, d);
    h.pollThreads();
    expect(d.status).to.equal(IoStatus.SUCCESS);
    os.forEach((o, t) => {
      h.setThread(t);
      o.close();
    });
    h.setThread(0);
    bdevUnregister(bdevGetByName('N3')!);
    h.pollThreads();
    h.close();
  });
});
