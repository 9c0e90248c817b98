import { expect } from 'chai';

import { hello } from '../src/start.js';

describe('hello-reactor', function () {
  this.timeout(60_000);

  it('circulates every token around both reactors and counts every hop on the per-reactor channels', async () => {
    const lines: string[] = [];
    const code = await hello('0x3', { tokens: 8, laps: 500 }, (l) => lines.push(l));
    expect(code).to.equal(0);
    const result = lines.map((l) => JSON.parse(l)).find((v) => 'hops' in v);
    // 8 tokens x 500 laps x 2 reactors, half the hops counted on each reactor.
    expect(result).to.include({ tokens: 8, hops: 8000, status: 0 });
    expect(result.perReactor).to.deep.equal([4000, 4000]);
    expect(result.meanLapUs).to.be.greaterThan(0);
  });
});
