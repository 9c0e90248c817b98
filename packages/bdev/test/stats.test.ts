import { expect } from 'chai';
import fc from 'fast-check';
import { Histogram, IoStat, IoType } from '../src/index.js';

describe('statistics', () => {
  it('histogram buckets are monotonic and hold their value within ~3%', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        fc.double({ min: 0, max: 1e12, noNaN: true }),
        (a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(Histogram.index(lo)).to.be.at.most(Histogram.index(hi));
          const i = Histogram.index(hi);
          expect(Histogram.lowerBound(i)).to.be.at.most(Math.floor(hi));
          expect(Histogram.lowerBound(i + 1)).to.be.greaterThan(hi * 0.999);
          if (hi >= 32) expect(Histogram.lowerBound(i + 1) - Histogram.lowerBound(i)).to.be.at.most(hi / 16);
        },
      ),
    );
  });

  it('percentiles come from the buckets; merging adds', () => {
    const h = new Histogram();
    for (let v = 1; v <= 1000; v++) h.tally(v);
    expect(h.count).to.equal(1000);
    expect(h.percentile(50)).to.be.within(500, 520);
    expect(h.percentile(99)).to.be.within(990, 1024);
    const g = new Histogram();
    g.merge(h);
    g.merge(Array.from(h.buckets));
    expect(g.count).to.equal(2000);
  });

  it('iostat records per type and survives a JSON round trip', () => {
    const s = new IoStat();
    s.record(IoType.READ, 4096, 10, true);
    s.record(IoType.READ, 4096, 30, true);
    s.record(IoType.WRITE_ZEROES, 512, 5, true);
    s.record(IoType.UNMAP, 8192, 7, true);
    s.record(IoType.FLUSH, 0, 1, true);
    s.record(IoType.READ, 4096, 1, false);
    const j = IoStat.fromJSON(JSON.parse(JSON.stringify(s.toJSON())));
    expect(j.toJSON()).to.deep.equal(s.toJSON());
    expect(s.toJSON()).to.include({
      numReadOps: 2,
      bytesRead: 8192,
      minReadLatencyTicks: 10,
      maxReadLatencyTicks: 30,
      numWriteOps: 1,
      numUnmapOps: 1,
      numOtherOps: 1,
      numErrors: 1,
    });
    expect(new IoStat().toJSON().minReadLatencyTicks).to.equal(0);
  });
});
