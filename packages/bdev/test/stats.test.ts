import { expect } from 'chai';
import fc from 'fast-check';
import { Histogram, histogramSpdkJson, IoStat, IoStatus, IoType } from '../src/index.js';

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

  it("bdev_get_histogram's data decodes as SPDK's scripts/histogram.py reads it", () => {
    const h = new Histogram();
    const values = [0, 5, 127, 128, 200, 4095, 100_000, 123_456_789, 3e9, 3e9 + 1, 2 ** 40 + 12345];
    for (const v of values) h.tally(v);
    h.tally(200);
    const j = histogramSpdkJson(h.buckets, 2_500_000_000);
    expect(j.bucket_shift).to.equal(7);
    expect(j.tsc_rate).to.equal(2_500_000_000);
    // histogram.py: (64 - bucket_shift + 1) ranges of 2^bucket_shift little-endian uint64 counts;
    // bucket (i, j) ends at j + 1 for range 0, else at 2^(i + shift - 1) + (j + 1) * 2^(i - 1).
    const raw = Buffer.from(j.histogram, 'base64');
    const shift = j.bucket_shift;
    const per = 2 ** shift;
    expect(raw.length).to.equal((64 - shift + 1) * per * 8);
    const got: { start: number; end: number; count: number }[] = [];
    for (let i = 0; i < 64 - shift + 1; i++) {
      for (let k = 0; k < per; k++) {
        const count = Number(raw.readBigUInt64LE((i * per + k) * 8));
        if (count === 0) continue;
        const end = i === 0 ? k + 1 : 2 ** (i + shift - 1) + (k + 1) * 2 ** (i - 1);
        const width = i === 0 ? 1 : 2 ** (i - 1);
        got.push({ start: end - width, end, count });
      }
    }
    expect(got.reduce((a, b) => a + b.count, 0)).to.equal(values.length + 1);
    for (const v of values) {
      const b = got.find((x) => x.start <= v && v < x.end);
      expect(b, `bucket of ${v}`).to.not.equal(undefined);
      expect(b!.end - b!.start).to.be.at.most(Math.max(1, v / 128));
    }
    expect(got.find((x) => x.start <= 200 && 200 < x.end)!.count).to.equal(2);
    // 3e9 and 3e9 + 1 share a bucket 2^24 ticks wide.
    expect(got.find((x) => x.start <= 3e9 && 3e9 < x.end)!.count).to.equal(2);
  });

  it('iostat records per type and survives a JSON round trip', () => {
    const s = new IoStat();
    s.record(IoType.READ, 4096, 10, IoStatus.SUCCESS);
    s.record(IoType.READ, 4096, 30, IoStatus.SUCCESS);
    s.record(IoType.WRITE_ZEROES, 512, 5, IoStatus.SUCCESS);
    s.record(IoType.UNMAP, 8192, 7, IoStatus.SUCCESS);
    s.record(IoType.FLUSH, 0, 1, IoStatus.SUCCESS);
    s.record(IoType.READ, 4096, 1, IoStatus.FAILED);
    s.record(IoType.COMPARE_AND_WRITE, 4096, 1, IoStatus.MISCOMPARE);
    s.record(IoType.READ, 4096, 1, IoStatus.ABORTED);
    s.record(IoType.READ, 4096, 1, IoStatus.ABORTED);
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
      numErrors: 4,
    });
    // By status, as SPDK's io_error stat: FAILED (-1) at 0, MISCOMPARE (-5) at 4, ABORTED (-7) at 6.
    expect(s.toJSON().ioError).to.deep.equal([1, 0, 0, 0, 1, 0, 2, 0]);
    expect(new IoStat().toJSON().minReadLatencyTicks).to.equal(0);
  });
});
