import { expect } from 'chai';

import { axisLabel, chartSvg, decades, escapeXml } from '../src/chart.js';
import type { BenchRecord } from '../src/record.js';
import {
  asBenchDoc,
  type BenchDoc,
  compare,
  formatFigure,
  markdownSummary,
  textSummary,
} from '../src/summary.js';

const rec = (over: Partial<BenchRecord>): BenchRecord => ({
  suite: 'native/crc',
  title: 'CRC32C',
  kind: 'micro',
  name: 'native crc32c, 4 KiB',
  value: 1000,
  unit: 'ns/op',
  better: 'lower',
  ...over,
});

const doc = (records: BenchRecord[], over: Partial<BenchDoc> = {}): BenchDoc => ({
  format: 'storkit-bench/1',
  date: '2026-12-07T10:00:00.000Z',
  command: 'npm run bench',
  quick: false,
  node: 'v20.20.2',
  machine: { cpu: 'test cpu', cpus: 2, loadavg: [0.5, 0.4, 0.3] },
  suites: [
    { suite: 'native/crc', file: 'packages/native/dist/bench/crc.bench.js', status: 'ok', seconds: 3 },
  ],
  records,
  ...over,
});

describe('bench summary', () => {
  it('formats figures with a readable prefix, time units scaled', () => {
    expect(formatFigure(1082, 'ns/op')).to.equal('1.082 µs/op');
    expect(formatFigure(0.51, 'ns/op')).to.equal('0.51 ns/op');
    expect(formatFigure(2_981_000, 'ns/op')).to.equal('2.981 ms/op');
    expect(formatFigure(28_210, 'µs late (p99)')).to.equal('28.21 ms late (p99)');
    expect(formatFigure(74_290, 'ns round trip (p50)')).to.equal('74.29 µs round trip (p50)');
    expect(formatFigure(412_300, 'IOPS')).to.equal('412.3 k IOPS');
    expect(formatFigure(1_564_000, 'iterations/s')).to.equal('1.564 M iterations/s');
    expect(formatFigure(9127, 'IOPS')).to.equal('9127 IOPS');
    // "nsfoo" is not a time unit: no scaling.
    expect(formatFigure(20_000, 'nsfoo')).to.equal('20 k nsfoo');
  });

  it('compares with an earlier run as a gain (> 1 better) in either direction, matching suite, case and unit', () => {
    const base = doc([
      rec({ value: 2000 }),
      rec({
        suite: 'nvmf/tcp-target',
        name: 'randread QD 32',
        value: 100_000,
        unit: 'IOPS',
        better: 'higher',
      }),
      rec({ name: 'gone', value: 5 }),
    ]);
    const faster = rec({ value: 1000 });
    const slower = rec({
      suite: 'nvmf/tcp-target',
      name: 'randread QD 32',
      value: 80_000,
      unit: 'IOPS',
      better: 'higher',
    });
    const fresh = rec({ name: 'new case' });
    const otherUnit = rec({ unit: 'µs/op' });
    const g = compare(base, [faster, slower, fresh, otherUnit]);
    expect(g.get(faster)).to.equal(2);
    expect(g.get(slower)).to.equal(0.8);
    expect(g.has(fresh)).to.equal(false);
    expect(g.has(otherUnit)).to.equal(false);
    const text = textSummary(doc([faster, slower], { suites: [] }), g);
    expect(text).to.match(/native crc32c, 4 KiB\s+1 µs\/op\s+x2\.00/);
    expect(text).to.match(/randread QD 32\s+80 k IOPS\s+x0\.80/);
  });

  it('says which suites failed, and that a --quick run is not to be quoted', () => {
    const d = doc([rec({ baseline: true, rme: 3.25 })], {
      quick: true,
      suites: [
        { suite: 'native/crc', file: 'a', status: 'ok', seconds: 1 },
        {
          suite: 'vhost/vhost',
          file: 'packages/vhost/dist/bench/vhost.bench.js',
          status: 'failed',
          seconds: 1,
        },
      ],
    });
    const text = textSummary(d);
    expect(text).to.include('native crc32c, 4 KiB (baseline)');
    expect(text).to.include('±3.3%');
    expect(text).to.include('2 suites, 1 figures, 1 failed: vhost/vhost');
    expect(text).to.include('--quick');
    const md = markdownSummary(d, 'latest.svg');
    expect(md).to.include('![chart](latest.svg)');
    expect(md).to.include('| native/crc | native crc32c, 4 KiB (baseline) | 1 µs/op | ±3.3% |');
    expect(md).to.include('Failed suites: `packages/vhost/dist/bench/vhost.bench.js`');
    expect(md).to.include('--quick run');
    expect(markdownSummary(doc([rec({ name: 'a|b' })]), 'x.svg')).to.include('| a\\|b |');
  });

  it('refuses a file that is not a bench document', () => {
    expect(() => asBenchDoc({ records: [] }, 'old.json')).to.throw(
      /old.json is not a storkit bench document/,
    );
    expect(() => asBenchDoc(null, 'x')).to.throw(/not a storkit bench document/);
    expect(asBenchDoc(doc([]), 'ok').records).to.deep.equal([]);
  });
});

describe('bench chart', () => {
  it('spans whole decades around the values', () => {
    expect(decades([150, 3_000_000])).to.deep.equal([2, 7]);
    expect(decades([100])).to.deep.equal([2, 3]);
    expect(decades([0, -1])).to.deep.equal([0, 1]);
  });

  it('labels time axes in time units and other axes with a prefix', () => {
    expect(axisLabel(100, 'ns/op')).to.equal('100 ns');
    expect(axisLabel(1e6, 'ns/op')).to.equal('1 ms');
    expect(axisLabel(1e4, 'µs late (p99)')).to.equal('10 ms');
    expect(axisLabel(1e5, 'IOPS')).to.equal('100 k');
  });

  it('draws one panel per unit and one bar per figure, with labels escaped', () => {
    const svg = chartSvg(
      [
        rec({}),
        rec({ name: 'JS <slice> & "8"', value: 10_000, baseline: true }),
        rec({ suite: 'nvmf/tcp-target', name: 'randread', value: 300_000, unit: 'IOPS', better: 'higher' }),
      ],
      'sub & title',
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).to.equal(true);
    expect(svg.trimEnd().endsWith('</svg>')).to.equal(true);
    expect(svg.match(/<rect x=/g)).to.have.length(3);
    expect(svg.match(/class="panel"/g)).to.have.length(2);
    expect(svg).to.include('ns/op (lower is better, log scale)');
    expect(svg).to.include('IOPS (higher is better, log scale)');
    expect(svg).to.include(escapeXml('JS <slice> & "8"'));
    expect(svg).not.to.include('<slice>');
    expect(svg).to.include('sub &#38; title');
    // The baseline is grey; the 10 µs bar is longer than the 1 µs bar (log scale, same panel).
    const widths = [...svg.matchAll(/<rect x="430" y="[\d.]+" width="([\d.]+)"[^>]*fill="([^"]+)"/g)];
    expect(widths[1][2]).to.equal('#bab0ac');
    expect(Number(widths[1][1])).to.be.greaterThan(Number(widths[0][1]));
  });
});
