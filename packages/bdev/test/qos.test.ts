import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import {
  bdevAbort,
  bdevGetByName,
  bdevGetQosLimits,
  bdevRead,
  bdevReset,
  bdevSetQosLimit,
  IoStatus,
} from '../src/index.js';
import { bdevUnregister } from '../src/module.js';
import { bdevNullCreate } from '../src/modules/index.js';
import { harness, type Opened, open } from './helpers.js';

interface Job {
  o: Opened;
  buf: Uint8Array;
  done: number;
  failed: number;
  stop: boolean;
  next: number;
}

function onDone(s: IoStatus, j: Job): void {
  if (s === IoStatus.SUCCESS) j.done++;
  else j.failed++;
  if (!j.stop) submit(j);
}

function submit(j: Job): void {
  const n = j.o.desc.bdev.numBlocks;
  if (bdevRead(j.o.desc, j.o.ch, j.buf, j.next++ % n, 1, onDone, j) !== 0) throw new Error('ENOMEM');
}

/** One job of `qd` reads per reactor; runs for `us` of fake time in `step` increments. */
function load(h: TestHarness, name: string, qd: number): Job[] {
  return h.reactors.map((_r, t) => {
    h.setThread(t);
    const o = open(name, false);
    const j: Job = {
      o,
      buf: new Uint8Array(o.desc.bdev.blockSize),
      done: 0,
      failed: 0,
      stop: false,
      next: t * 1000,
    };
    for (let i = 0; i < qd; i++) submit(j);
    return j;
  });
}

function finish(h: TestHarness, jobs: Job[]): void {
  for (const j of jobs) j.stop = true;
  for (let i = 0; i < 100; i++) {
    h.advanceTime(1000);
    h.pollOnce();
  }
  h.pollThreads();
  jobs.forEach((j, t) => {
    h.setThread(t);
    j.o.close();
  });
  h.setThread(0);
}

const total = (jobs: Job[]) => jobs.reduce((a, j) => a + j.done, 0);

describe('QoS', () => {
  it('holds IOPS within 10% across channels on every reactor (fake clock, 3 s)', () => {
    const h = harness(2);
    bdevNullCreate({ name: 'Q0', num_blocks: 4096, block_size: 4096 });
    const b = bdevGetByName('Q0')!;
    const replay = bdevSetQosLimit(b, { name: 'Q0', rw_ios_per_sec: 10_000 });
    expect(replay.storkit_qos_region).to.be.a('number');
    h.pollThreads();
    expect(bdevGetQosLimits(b).rw_ios_per_sec).to.equal(10_000);
    const jobs = load(h, 'Q0', 16);
    for (let t = 0; t < 60_000; t++) {
      h.advanceTime(50);
      h.pollOnce();
    }
    const n = total(jobs);
    expect(n).to.be.within(27_000, 33_000);
    // Both reactors got a share.
    expect(Math.min(...jobs.map((j) => j.done))).to.be.greaterThan(n / 4);
    // Lift the limit: queued I/O is released at once.
    bdevSetQosLimit(b, { name: 'Q0', rw_ios_per_sec: 0 });
    for (let i = 0; i < 20; i++) h.pollOnce();
    const before = total(jobs);
    h.advanceTime(50);
    for (let i = 0; i < 10; i++) h.pollOnce();
    expect(total(jobs) - before).to.be.greaterThan(100);
    finish(h, jobs);
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });

  it('holds read MB/s within 10% (fake clock, 3 s)', () => {
    const h = harness(2);
    bdevNullCreate({ name: 'Q1', num_blocks: 4096, block_size: 4096 });
    const b = bdevGetByName('Q1')!;
    bdevSetQosLimit(b, { name: 'Q1', r_mbytes_per_sec: 10 });
    expect(() => bdevSetQosLimit(b, { name: 'Q1', rw_ios_per_sec: 1500 })).to.throw(/multiple of 1000/);
    h.pollThreads();
    const jobs = load(h, 'Q1', 8);
    for (let t = 0; t < 30_000; t++) {
      h.advanceTime(100);
      h.pollOnce();
    }
    const mb = (total(jobs) * 4096) / (1024 * 1024);
    expect(mb).to.be.within(27, 33);
    finish(h, jobs);
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });

  it('never exceeds the IOPS limit by more than 10%, however unevenly time passes (fake clock, 2 s)', () => {
    const h = harness(1);
    bdevNullCreate({ name: 'Q2', num_blocks: 4096, block_size: 4096 });
    const b = bdevGetByName('Q2')!;
    bdevSetQosLimit(b, { name: 'Q2', rw_ios_per_sec: 5000 });
    h.pollThreads();
    const jobs = load(h, 'Q2', 32);
    // Time as a loaded machine sees it: mostly small steps, now and then a stall of up to 60 ms
    // (longer than a 20 ms bucket). Deterministic: the same steps every run.
    let x = 12345;
    let elapsed = 0;
    while (elapsed < 2_000_000) {
      x = (x * 1103515245 + 12345) >>> 0;
      const us = x % 97 === 0 ? 20_000 + (x % 40_000) : 10 + (x % 300);
      h.advanceTime(us);
      elapsed += us;
      h.pollOnce();
    }
    const rate = total(jobs) / (elapsed / 1e6);
    // Never over the limit by more than 10%. A stall longer than a bucket loses that time (its
    // budget is not spent later), so the rate stays below the limit: here ~3300 of 5000.
    expect(rate).to.be.at.most(5500);
    expect(rate).to.be.at.least(3000);
    finish(h, jobs);
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });

  it('abort: I/O held back by QoS is aborted at once; an unknown target fails the abort', () => {
    const h = harness(1);
    bdevNullCreate({ name: 'Q4', num_blocks: 64, block_size: 4096 });
    const b = bdevGetByName('Q4')!;
    bdevSetQosLimit(b, { name: 'Q4', rw_ios_per_sec: 1000 });
    h.pollThreads();
    const o = open('Q4', false);
    const buf = new Uint8Array(4096);
    const got = new Map<string, IoStatus>();
    const tags = Array.from({ length: 10 }, (_, i) => ({ tag: `io${i}` }));
    for (const t of tags)
      bdevRead(o.desc, o.ch, buf, 0, 1, (s: IoStatus, a: { tag: string }) => got.set(a.tag, s), t);
    const aborts: IoStatus[] = [];
    bdevAbort(o.desc, o.ch, tags[9], (s: IoStatus) => aborts.push(s), null);
    bdevAbort(o.desc, o.ch, { tag: 'nobody' }, (s: IoStatus) => aborts.push(s), null);
    h.pollThreads();
    expect(got.get('io9')).to.equal(IoStatus.ABORTED);
    expect(aborts).to.deep.equal([IoStatus.SUCCESS, IoStatus.FAILED]);
    for (let i = 0; i < 50; i++) {
      h.advanceTime(1000);
      h.pollThreads();
    }
    expect(got.size).to.equal(10);
    expect([...got.values()].filter((s) => s === IoStatus.SUCCESS)).to.have.length(9);
    o.close();
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });

  it('a reset aborts I/O held back by QoS and completes', () => {
    const h = harness(1);
    bdevNullCreate({ name: 'Q3', num_blocks: 64, block_size: 4096 });
    const b = bdevGetByName('Q3')!;
    bdevSetQosLimit(b, { name: 'Q3', rw_ios_per_sec: 1000 });
    h.pollThreads();
    const o = open('Q3', false);
    const st: IoStatus[] = [];
    const buf = new Uint8Array(4096);
    for (let i = 0; i < 20; i++) bdevRead(o.desc, o.ch, buf, i, 1, (s: IoStatus) => st.push(s), null);
    h.advanceTime(10);
    h.pollThreads();
    let reset: IoStatus | null = null;
    bdevReset(o.desc, o.ch, (s: IoStatus) => (reset = s), null);
    h.pollThreads();
    expect(reset).to.equal(IoStatus.SUCCESS);
    expect(st.length).to.equal(20);
    expect(st.filter((s) => s === IoStatus.ABORTED).length).to.be.greaterThan(15);
    o.close();
    bdevUnregister(b);
    h.pollThreads();
    h.close();
  });
});
