import { expect } from 'chai';

import { binding } from '../src/binding.js';
import { readTicks, tickRate, tickSource, ticks, ticksToUs } from '../src/index.js';

describe('native: ticks', () => {
  it('reports a source and a plausible rate', () => {
    expect(['tsc', 'monotonic']).to.include(tickSource);
    expect(tickRate).to.be.greaterThan(1e8);
  });

  it('advances at its stated rate against the wall clock (within 1%, bracketed)', async () => {
    // Each tick reading is bracketed by two wall-clock readings, so however long the thread is off
    // the CPU between them the true interval lies between the inner and the outer wall spans.
    const wall = () => Number(process.hrtime.bigint()) / 1000;
    const a0 = wall();
    const t0 = ticks();
    const a1 = wall();
    await new Promise((r) => setTimeout(r, 300));
    const b0 = wall();
    const t1 = ticks();
    const b1 = wall();
    const us = ticksToUs(t1 - t0);
    expect(us).to.be.within((b0 - a1) * 0.99, (b1 - a0) * 1.01);
  });

  it('is monotonic', () => {
    let last = ticks();
    let backwards = 0;
    for (let i = 0; i < 100000; i++) {
      const t = ticks();
      if (t < last) backwards++;
      last = t;
    }
    expect(backwards).to.equal(0);
  });

  it('readTicks reads the same clock as ticks(), monotonic, in workers too', async () => {
    const a = ticks();
    const b = readTicks();
    const c = ticks();
    expect(b).to.be.within(a, c);
    let last = b;
    let backwards = 0;
    for (let i = 0; i < 100000; i++) {
      const t = readTicks();
      if (t < last) backwards++;
      last = t;
    }
    expect(backwards).to.equal(0);
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
