import { expect } from 'chai';

import { tickRate, tickSource, ticks, ticksToUs } from '../src/index.js';

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
});
