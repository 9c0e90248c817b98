import { expect } from 'chai';

import { binding } from '../src/binding.js';
import { readTicks, tickRate, tickSource, ticks, ticksToUs } from '../src/index.js';

describe('native: ticks', () => {
  it('reports a source and a plausible rate', () => {
    expect(['tsc', 'monotonic']).to.include(tickSource);
    expect(tickRate).to.be.greaterThan(1e8);
  });

  it('advances at its stated rate against the wall clock (within 5%)', async () => {
    const t0 = ticks();
    const h0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, 200));
    const us = ticksToUs(ticks() - t0);
    const wallUs = Number(process.hrtime.bigint() - h0) / 1000;
    expect(Math.abs(us - wallUs) / wallUs).to.be.lessThan(0.05);
  });

  it('is monotonic', () => {
    let last = ticks();
    for (let i = 0; i < 100000; i++) {
      const t = ticks();
      expect(t >= last).to.equal(true);
      last = t;
    }
  });

  it('readTicks reads the same clock as ticks(), monotonic, in workers too', async () => {
    const a = ticks();
    const b = readTicks();
    const c = ticks();
    expect(b).to.be.within(a, c);
    let last = b;
    for (let i = 0; i < 100000; i++) {
      const t = readTicks();
      expect(t >= last).to.equal(true);
      last = t;
    }
    // Each worker has its own tick cell: a worker's reading lies between two of this thread's.
    const { Worker } = await import('node:worker_threads');
    const mod = new URL('../src/index.js', import.meta.url).href;
    const before = ticks();
    const w = new Worker(
      `import(${JSON.stringify(mod)}).then((m) => require('node:worker_threads').parentPort.postMessage(m.readTicks()))`,
      { eval: true },
    );
    const got = await new Promise<number>((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    });
    await w.terminate();
    expect(got).to.be.within(before, ticks());
    expect(readTicks()).to.be.greaterThan(got);
  });

  it('a second tick cell on the same thread (a second copy of the module) does not freeze the first', () => {
    const second = new Float64Array(binding.tickCell());
    const a = readTicks();
    const b = readTicks();
    expect(b).to.be.greaterThan(a);
    expect(second[0]).to.be.within(a, b);
  });
});
