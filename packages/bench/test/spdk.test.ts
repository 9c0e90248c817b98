import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import {
  coreShare,
  cpuPerMio,
  firstOf,
  iscsiPerfIops,
  latencyOf,
  median,
  orderOf,
  type Pair,
  statTicks,
  summarize,
  totalIops,
  totalMaxLatencyUs,
} from '../src/pairs.js';
import { pickRows, ROWS, type SpdkBenchDoc } from '../src/spdk.js';
import { sharedMachine, spdkChartSvg, spdkMarkdown } from '../src/spdk-report.js';

const side = (iops: number, cpuSeconds: number, seconds = 2) => ({ iops, seconds, cpuSeconds });
const pair = (index: number, storkit: number, spdk: number): Pair => ({
  index,
  first: firstOf(index),
  storkit: side(storkit, 2),
  spdk: side(spdk, 2),
});

describe('bench:spdk arithmetic', () => {
  it('alternates which side goes first, SPDK in odd pairs', () => {
    expect([1, 2, 3, 4].map(firstOf)).to.deep.equal(['spdk', 'storkit', 'spdk', 'storkit']);
    expect(orderOf(2)).to.deep.equal(['storkit', 'spdk']);
    expect(() => firstOf(0)).to.throw(RangeError);
  });

  it('takes the median of odd and even counts without reordering its input', () => {
    const v = [0.9, 0.5, 0.7];
    expect(median(v)).to.equal(0.7);
    expect(v).to.deep.equal([0.9, 0.5, 0.7]);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(() => median([])).to.throw(RangeError);
  });

  it('spreads the target CPU over the I/Os of the timed run', () => {
    // 500 k IOPS for 2 s = 1 M I/Os on 1.5 CPU-s
    expect(cpuPerMio(side(500_000, 1.5))).to.equal(1.5);
    expect(cpuPerMio(side(250_000, 1, 4))).to.equal(1);
    expect(() => cpuPerMio(side(0, 1))).to.throw(RangeError);
    // and the share of its core the target got: 1.5 CPU-s in 2 s
    expect(coreShare(side(500_000, 1.5))).to.equal(0.75);
  });

  it("summarizes pairs: storkit/SPDK per pair, its median and range, each side's median CPU per M I/Os", () => {
    // CPU 2 s each side; I/Os 2 × IOPS
    const s = summarize([
      pair(1, 400_000, 800_000),
      pair(2, 900_000, 1_000_000),
      pair(3, 600_000, 1_000_000),
    ]);
    expect(s.ratios).to.deep.equal([0.5, 0.9, 0.6]);
    expect(s.medianRatio).to.equal(0.6);
    expect([s.minRatio, s.maxRatio]).to.deep.equal([0.5, 0.9]);
    // storkit: 2 / 0.8, 2 / 1.8, 2 / 1.2 M I/Os -> median 2 / 1.2
    expect(s.storkitCpuPerMio).to.be.closeTo(2 / 1.2, 1e-12);
    expect(s.spdkCpuPerMio).to.equal(1);
  });

  it('reads utime + stime from /proc/PID/stat past a command name with spaces and parens', () => {
    const rest = 'S 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 9';
    expect(statTicks(`4242 (node) ${rest}`)).to.equal(1290);
    expect(statTicks(`4242 (a b) c)) ${rest}`)).to.equal(1290);
    // a real line: the test's own process
    expect(statTicks(readFileSync('/proc/self/stat', 'utf8'))).to.be.a('number');
  });

  it("reads the Total line of SPDK's bdevperf, storkit's bdevperf and spdk_nvme_perf, and iscsi-perf's average", () => {
    const spdkBdevperf =
      ' Total                       :            1234567.89    4822.53       0.00     0.00  103.51 ';
    const storkit = `Total                       :            ${'987654.32'.padStart(10)}    3858.02`;
    const nvmePerf =
      'Total                                                                    :  301234.50    1176.70     424.83      95.12    1865.31';
    expect(totalIops(`x\n${spdkBdevperf}\n`)).to.equal(1234567.89);
    expect(totalIops(storkit)).to.equal(987654.32);
    expect(totalIops(nvmePerf)).to.equal(301234.5);
    expect(() => totalIops('Job: Malloc0 : 5.00 1.00')).to.throw(/Total/);
    // the snapshot-stall row's figure: the Total line's last column (max latency, µs)
    expect(totalMaxLatencyUs(nvmePerf)).to.equal(1865.31);
    expect(totalMaxLatencyUs(`x\n${spdkBdevperf}\n`)).to.equal(103.51);
    expect(() => totalMaxLatencyUs(storkit.slice(0, 40))).to.throw(/latency/);
    expect(iscsiPerfIops('\r[.] iops current 90000 iops average 80000\r[.] iops average 81234\n')).to.equal(
      81234,
    );
    expect(() => iscsiPerfIops('login failed')).to.throw(/iops average/);
  });

  it('reads mean and p99 latency from spdk_nvme_perf -L and bdevperf -l, and takes their medians', () => {
    const summary = (p99: string) =>
      `\n Latency summary\n ====\n 98.00000% :     0.794us\n 99.00000% : ${p99.padStart(9)}us\n 99.50000% :     9.972us\n`;
    const bdevperf = `${' Total                       :'.padEnd(40)}420207.49    1641.44       0.00     0.00       2.08       0.14   95985.03${summary('0.862')}`;
    const nvmePerf = `Total${' '.repeat(69)}:     916.88       3.58    1090.59      22.10  107028.56\n${summary('28634.191')}`;
    expect(latencyOf(bdevperf)).to.deep.equal({ meanUs: 2.08, p99Us: 0.862 });
    expect(latencyOf(nvmePerf)).to.deep.equal({ meanUs: 1090.59, p99Us: 28634.191 });
    expect(() => latencyOf(nvmePerf.split('\n')[0])).to.throw(/99\.00000%/);
    expect(() => latencyOf(summary('1.0'))).to.throw(/Total/);
    const lat = (meanUs: number, p99Us: number) => ({ meanUs, p99Us });
    const withLat = (i: number, k: number, s: number): Pair => {
      const p = pair(i, 100_000, 100_000);
      return {
        ...p,
        storkit: { ...p.storkit, latency: lat(k, 2 * k) },
        spdk: { ...p.spdk, latency: lat(s, 3 * s) },
      };
    };
    const s = summarize([withLat(1, 10, 5), withLat(2, 30, 7), withLat(3, 20, 6)]);
    expect(s.latency).to.deep.equal({ storkit: lat(20, 40), spdk: lat(6, 18) });
    // rows without the latency view have none
    expect(summarize([pair(1, 1, 1)]).latency).to.equal(undefined);
  });

  it('picks rows by id words and refuses an unknown one', () => {
    expect(pickRows([]).length).to.equal(ROWS.length);
    expect(pickRows(['nvmf']).map((r) => r.id)).to.deep.equal([
      'nvmf-randread-32',
      'nvmf-randread-128',
      'nvmf-randwrite-128',
      'lat-qd1-nvmf-randread',
    ]);
    expect(pickRows(['lat-qd1']).map((r) => r.id)).to.deep.equal([
      'lat-qd1-bdevperf-malloc',
      'lat-qd1-nvmf-randread',
    ]);
    expect(() => pickRows(['nvmf', 'rdma'])).to.throw(/rdma/);
    expect(pickRows(['lvol']).map((r) => r.id)).to.deep.equal([
      'lvol-thick-randread',
      'lvol-thick-randwrite',
      'lvol-thin-firstwrite',
      'lvol-snapshot-stall',
    ]);
  });

  it('labels a run on a shared machine as not a figure in its chart and table', () => {
    const s = summarize([pair(1, 400_000, 800_000)]);
    const doc: SpdkBenchDoc = {
      format: 'storkit-bench-spdk/1',
      date: '2026-12-07T23:40:00.000Z',
      command: 'npm run bench:spdk -- --pairs 1',
      machine: { cpu: 'AMD EPYC', cpus: 2, node: 'v20' },
      load: [25, 27],
      seconds: 2,
      cores: { target: 0, client: 1 },
      iscsiClients: 4,
      rows: [
        {
          id: 'x',
          title: 'NVMe/TCP <randread>',
          client: 'spdk_nvme_perf',
          ...s,
          pairs: [{ ...pair(1, 400_000, 800_000), ratio: 0.5, storkitCpuPerMio: 2.5, spdkCpuPerMio: 1.25 }],
        },
      ],
    };
    expect(sharedMachine(doc)).to.equal(true);
    expect(spdkMarkdown(doc)).to.contain(
      '0.50 (0.50-0.50, 1) (machine shared, load 25 then 27 on 2 CPUs: not a figure)',
    );
    const svg = spdkChartSvg(doc);
    expect(svg).to.contain('not a figure').and.contain('NVMe/TCP &#60;randread&#62;');
    expect(sharedMachine({ ...doc, load: [0.5, 1.2] })).to.equal(false);
    expect(spdkMarkdown({ ...doc, load: [0.5, 1.2] })).not.to.contain('not a figure');
    // The run's own processes raise the load after it: a quiet start is what counts.
    expect(sharedMachine({ ...doc, load: [0.9, 3.3] })).to.equal(false);
  });
});
