import { crc32c } from '@storkit/native';
import { expect } from 'chai';

import {
  ACCEL_EMISCOMPARE,
  ACCEL_ENOMEM,
  ACCEL_GROUP_MAX,
  AccelError,
  accelSetOptions,
} from '../src/index.js';
import { AccelHarness, accelStopIfStarted } from './helpers.js';

describe('accel: sequences and batches', function () {
  before(() => accelStopIfStarted());
  this.timeout(30_000);
  let a: AccelHarness;
  before(async () => {
    a = await AccelHarness.start();
  });
  after(() => a.close());

  it('a sequence runs in order with one callback: fill, copy, crc of the copy', () => {
    const ch = a.ch();
    const x = new Uint8Array(8192);
    const y = new Uint8Array(8192);
    const crcs = new Uint32Array(2);
    const seq = ch.sequence();
    expect(seq).to.not.equal(null);
    if (seq === null) return;
    expect(seq.appendFill(x, 0, 8192, 0x5a)).to.equal(0);
    expect(seq.appendCopy(y, 0, x, 0, 8192)).to.equal(0);
    expect(seq.appendCrc32c(y, 0, 4096, 0, crcs, 0)).to.equal(0);
    expect(seq.appendCrc32c(y, 4096, 4096, 0, crcs, 1)).to.equal(0);
    let got: [number, number] | null = null;
    expect(seq.finish((_a, s, r) => (got = [s, r]))).to.equal(0);
    expect(got).to.equal(null);
    a.h.pollThreads();
    const want = crc32c(new Uint8Array(4096).fill(0x5a));
    expect(got).to.deep.equal([0, want]);
    expect([...crcs]).to.deep.equal([want, want]);
    expect(ch.stats.sequenceExecuted).to.equal(1);
    expect(ch.inflight).to.equal(0);
  });

  it('the first failure stops a sequence; what follows never runs', () => {
    const ch = a.ch();
    const x = new Uint8Array(100).fill(1);
    const y = new Uint8Array(100).fill(2);
    const z = new Uint8Array(100);
    const seq = ch.sequence();
    if (seq === null) throw new Error('no sequence');
    seq.appendCompare(x, 0, y, 0, 100);
    seq.appendFill(z, 0, 100, 9);
    let status = 0;
    seq.finish((_a, s) => (status = s));
    a.h.pollThreads();
    expect(status).to.equal(ACCEL_EMISCOMPARE);
    expect(z.every((b) => b === 0)).to.equal(true);
    expect(ch.stats.sequenceFailed).to.equal(1);
    expect(ch.inflight).to.equal(0);
  });

  it('a batch runs everything and reports the first failure once all are done', () => {
    const ch = a.ch();
    const x = new Uint8Array(100).fill(1);
    const y = new Uint8Array(100).fill(2);
    const z = new Uint8Array(100);
    const b = ch.batch();
    if (b === null) throw new Error('no batch');
    b.appendFill(z, 0, 50, 4);
    b.appendCompare(x, 0, y, 0, 100);
    b.appendFill(z, 50, 50, 6);
    b.appendCrc32c(x, 0, 100, 0);
    let got: [number, number] | null = null;
    expect(b.submit((_a, s, r) => (got = [s, r]))).to.equal(0);
    a.h.pollThreads();
    expect(got).to.deep.equal([ACCEL_EMISCOMPARE, crc32c(x)]);
    expect(z.subarray(0, 50).every((v) => v === 4) && z.subarray(50).every((v) => v === 6)).to.equal(true);
  });

  it('appending checks its arguments, its size and the task pool; abort gives everything back', async () => {
    const ch = a.ch();
    const seq = ch.sequence();
    if (seq === null) throw new Error('no sequence');
    const b = new Uint8Array(64);
    expect(() => seq.appendCopy(b, 0, b, 60, 16))
      .to.throw(AccelError)
      .with.property('code', 'EINVAL');
    for (let i = 0; i < ACCEL_GROUP_MAX; i++) seq.appendFill(b, 0, 64, 1);
    expect(() => seq.appendFill(b, 0, 64, 1))
      .to.throw(AccelError)
      .with.property('code', 'EINVAL');
    seq.abort();
    expect(() => seq.abort()).to.throw(AccelError);
    expect(() => seq.finish(() => {})).to.throw(AccelError);
    a.h.pollThreads();
    expect(ch.inflight).to.equal(0);

    await a.close();
    accelSetOptions({ task_count: 3, sequence_count: 1 });
    a = await AccelHarness.start();
    const c2 = a.ch();
    const s2 = c2.sequence();
    if (s2 === null) throw new Error('no sequence');
    expect(c2.sequence()).to.equal(null);
    for (let i = 0; i < 3; i++) expect(s2.appendFill(b, 0, 64, 1)).to.equal(0);
    expect(s2.appendFill(b, 0, 64, 1)).to.equal(ACCEL_ENOMEM);
    let ok = -1;
    s2.finish((_x, s) => (ok = s));
    a.h.pollThreads();
    expect(ok).to.equal(0);
    expect(c2.sequence()).to.not.equal(null); // it went back to the pool
  });
});
