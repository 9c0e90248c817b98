import { PerformanceObserver } from 'node:perf_hooks';

import { crc32c, crc32cRange } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';

import {
  ACCEL_EMISCOMPARE,
  ACCEL_ENOMEM,
  AccelError,
  AccelIovecs,
  accelGetOpcAssignments,
  accelSetOptions,
  accelStatsJson,
  accelStatsOf,
} from '../src/index.js';
import { AccelHarness, accelStopIfStarted } from './helpers.js';

type Done = { status: number; result: number; arg: unknown } | null;

describe('accel: operations on the software module', function () {
  before(() => accelStopIfStarted());
  this.timeout(60_000);
  let a: AccelHarness;
  before(async () => {
    a = await AccelHarness.start();
  });
  after(() => a.close());

  /** Submit with `f`, check the callback does not run inside submit, poll, return its outcome. */
  function run(f: (cb: (arg: unknown, status: number, result: number) => void) => number): Done {
    let done: Done = null;
    const rc = f((arg, status, result) => {
      done = { arg, status, result };
    });
    expect(rc).to.equal(0);
    expect(done).to.equal(null);
    a.h.pollThreads();
    return done;
  }

  it('copy, fill, dualcast, compare, crc32c, copy_crc32c give what plain code gives (property)', () => {
    const ch = a.ch();
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 5000 }),
        fc.nat(100),
        fc.nat(0xffffffff),
        (data, off, seed) => {
          const len = data.length;
          const src = new Uint8Array(off + len);
          src.set(data, off);
          const d1 = new Uint8Array(len + 7);
          const d2 = new Uint8Array(len + 3);
          expect(run((cb) => ch.submitCopy(d1, 7, src, off, len, cb))?.status).to.equal(0);
          expect(d1.subarray(7)).to.deep.equal(data);
          expect(run((cb) => ch.submitCompare(d1, 7, src, off, len, cb))?.status).to.equal(0);
          d1[7 + (seed % len)] ^= 1;
          expect(run((cb) => ch.submitCompare(d1, 7, src, off, len, cb))?.status).to.equal(ACCEL_EMISCOMPARE);
          expect(run((cb) => ch.submitDualcast(d1, 0, d2, 3, src, off, len, cb))?.status).to.equal(0);
          expect(d1.subarray(0, len)).to.deep.equal(data);
          expect(d2.subarray(3)).to.deep.equal(data);
          const want = crc32c(data, seed);
          expect(run((cb) => ch.submitCrc32c(src, off, len, seed, cb))?.result).to.equal(want);
          d2.fill(0);
          const r = run((cb) => ch.submitCopyCrc32c(d2, 3, src, off, len, seed, cb));
          expect(r?.result).to.equal(want);
          expect(d2.subarray(3)).to.deep.equal(data);
          expect(run((cb) => ch.submitFill(d1, 1, len, seed & 0xff, cb))?.status).to.equal(0);
          expect(d1.subarray(1, 1 + len).every((b) => b === (seed & 0xff))).to.equal(true);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('crc32c over a scatter list equals the CRC of the pieces joined; seeds chain', () => {
    const ch = a.ch();
    const data = Uint8Array.from({ length: 10_000 }, (_x, i) => (i * 31 + 7) & 0xff);
    const iovs = new AccelIovecs(4);
    iovs.add(data, 0, 1).add(data, 1, 4095).add(data, 4096, 5000).add(data, 9096, 904);
    expect(run((cb) => ch.submitCrc32cv(iovs, 0, cb))?.result).to.equal(crc32c(data));
    const head = run((cb) => ch.submitCrc32c(data, 0, 3333, 0, cb))?.result as number;
    expect(run((cb) => ch.submitCrc32c(data, 3333, 10_000 - 3333, head, cb))?.result).to.equal(crc32c(data));
    // RFC 3720 B.4: 32 bytes of zeros.
    expect(run((cb) => ch.submitCrc32c(new Uint8Array(32), 0, 32, 0, cb))?.result).to.equal(0x8a9136aa);
  });

  it('refuses bad arguments before taking a task; the callback never runs', () => {
    const ch = a.ch();
    const b = new Uint8Array(100);
    const nop = () => expect.fail('callback ran');
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).to.be.instanceOf(AccelError);
        return (e as AccelError).code;
      }
      return 'none';
    };
    expect(code(() => ch.submitCopy(b, 0, b, 50, 0, nop))).to.equal('EINVAL'); // zero length
    expect(code(() => ch.submitCopy(b, 60, b, 0, 50, nop))).to.equal('EINVAL'); // beyond the buffer
    expect(code(() => ch.submitFill(b, 0, 10, 256, nop))).to.equal('EINVAL');
    expect(code(() => ch.submitCrc32c(b, 0, 10, -1, nop))).to.equal('EINVAL');
    expect(code(() => ch.submitCrc32c(b, 0.5, 10, 0, nop))).to.equal('EINVAL');
    expect(code(() => ch.submitCrc32cv(new AccelIovecs(2), 0, nop))).to.equal('EINVAL');
    expect(ch.inflight).to.equal(0);
    a.h.pollThreads();
  });

  it("overlapping copies give memmove's result, submitted or done now (property)", () => {
    const ch = a.ch();
    fc.assert(
      fc.property(
        fc.nat(200),
        fc.nat(200),
        fc.integer({ min: 1, max: 200 }),
        fc.boolean(),
        (d, s, len, now) => {
          const b = Uint8Array.from({ length: 400 }, (_x, i) => i & 0xff);
          const want = b.slice().copyWithin(d, s, s + len);
          // Through a second view of the same memory, as a caller's views of one region would be.
          const view = b.subarray(0);
          if (now) expect(ch.copyNow(b, d, view, s, len)).to.equal(0);
          else expect(run((cb) => ch.submitCopy(b, d, view, s, len, cb))?.status).to.equal(0);
          expect(b).to.deep.equal(want);
        },
      ),
    );
  });

  it('the *Now calls do the work at once on the software module and count it', () => {
    const ch = a.ch();
    const before = accelStatsOf(ch).executed[4];
    const x = Uint8Array.from({ length: 5000 }, (_v, i) => (i * 3) & 0xff);
    expect(ch.crc32cNow(x, 7, 4000, 0)).to.equal(crc32c(x.subarray(7, 4007)));
    expect(ch.fillNow(x, 0, 10, 9)).to.equal(0);
    expect(ch.compareNow(x, 0, new Uint8Array(10).fill(9), 0, 10)).to.equal(0);
    expect(ch.compareNow(x, 0, new Uint8Array(10), 0, 10)).to.equal(ACCEL_EMISCOMPARE);
    expect(accelStatsOf(ch).executed[4] - before).to.equal(1);
    expect(ch.inflight).to.equal(0);
    // crc32cRange: native crc32cRange's shape (a seed continues a CRC), counted the same way.
    const seed = crc32cRange(x, 0, 7);
    expect(ch.crc32cRange(x, 7, 4007, seed)).to.equal(crc32c(x.subarray(0, 4007)));
    expect(ch.crc32cRange(x, 9, 9, 1234)).to.equal(1234);
    expect(accelStatsOf(ch).executed[4] - before).to.equal(2);
  });

  it('counts what ran per opcode with its module (accel_get_stats)', () => {
    const ch = a.ch();
    const before = accelStatsOf(ch);
    const b = new Uint8Array(4096);
    run((cb) => ch.submitCrc32c(b, 0, 4096, 0, cb));
    run((cb) => ch.submitCompare(b, 0, new Uint8Array(4096).fill(1), 0, 4096, cb));
    const s = accelStatsOf(ch);
    expect(s.executed[4] - before.executed[4]).to.equal(1);
    expect(s.bytes[4] - before.bytes[4]).to.equal(4096);
    expect(s.failed[3] - before.failed[3]).to.equal(1);
    const json = accelStatsJson(s, accelGetOpcAssignments()) as {
      operations: { opcode: string; module_name: string }[];
    };
    expect(json.operations.find((o) => o.opcode === 'crc32c')?.module_name).to.equal('software');
  });
});

describe('accel: tasks are bounded and reused', function () {
  before(() => accelStopIfStarted());
  this.timeout(60_000);

  it('ENOMEM when every task is in flight, counted as retry_task; fine again after completions', async () => {
    accelSetOptions({ task_count: 4 });
    const a = await AccelHarness.start();
    try {
      const ch = a.ch();
      const b = new Uint8Array(64);
      let n = 0;
      const cb = () => n++;
      for (let i = 0; i < 4; i++) expect(ch.submitCrc32c(b, 0, 64, 0, cb)).to.equal(0);
      expect(ch.submitCrc32c(b, 0, 64, 0, cb)).to.equal(ACCEL_ENOMEM);
      expect(ch.stats.retryTask).to.equal(1);
      a.h.pollThreads();
      expect(n).to.equal(4);
      expect(ch.submitCrc32c(b, 0, 64, 0, cb)).to.equal(0);
      a.h.pollThreads();
      expect(() => accelSetOptions({ task_count: 8 }))
        .to.throw(AccelError)
        .with.property('code', 'EBUSY');
    } finally {
      await a.close();
    }
  });

  it('a million operations in steady state allocate nothing (no GC)', async () => {
    const a = await AccelHarness.start();
    try {
      const ch = a.ch();
      const src = new Uint8Array(4096).fill(3);
      const dst = new Uint8Array(4096);
      let done = 0;
      const ctx = { n: 0 };
      const cb = (c: typeof ctx) => {
        c.n++;
        done++;
      };
      const round = (k: number) => {
        for (let r = 0; r < k; r++) {
          for (let i = 0; i < 32; i++) {
            ch.submitCopy(dst, 0, src, 0, 512, cb, ctx);
            ch.submitCrc32c(src, 0, 512, 0, cb, ctx);
          }
          a.h.pollOnce();
        }
      };
      round(2000);
      let gcs = 0;
      const obs = new PerformanceObserver((l) => {
        gcs += l.getEntries().length;
      });
      obs.observe({ entryTypes: ['gc'] });
      await new Promise((r) => setTimeout(r, 20));
      gcs = 0;
      const before = process.memoryUsage().heapUsed;
      round(16_000);
      const after = process.memoryUsage().heapUsed;
      await new Promise((r) => setTimeout(r, 20));
      obs.disconnect();
      // 1 M operations allocating even 16 bytes each would be 16 MB: several scavenges.
      expect(gcs).to.be.at.most(1);
      expect(after - before).to.be.lessThan(1 << 20);
      expect(done).to.be.greaterThan(1_000_000);
    } finally {
      await a.close();
    }
  });
});
