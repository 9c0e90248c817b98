// `storkit nvme-identify` and `storkit nvme-perf` against a target in this process.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { expect } from 'chai';

import { type Fixture, startTarget } from './helpers.js';

const main = fileURLToPath(new URL('../../../cli/dist/src/main.js', import.meta.url));
const run = promisify(execFile);

/** `storkit ...args`; a non-zero exit rejects with the error (code, stdout, stderr). */
const storkit = (...args: string[]) => run(process.execPath, [main, ...args]);
/** `storkit ...args` expected to fail: the rejection, with its exit code and stderr. */
const failing = (...args: string[]) => storkit(...args).catch((x) => x);

describe('cli: nvme-identify and nvme-perf', function () {
  this.timeout(30000);
  let f: Fixture;
  before(async () => {
    f = await startTarget({}, { blocks: 16384 });
  });
  after(async () => {
    await f.tgt.close();
  });
  /** nvme-perf against the fixture's target. */
  const perf = (...args: string[]) => storkit('nvme-perf', '-r', f.trid, ...args);

  it('nvme-identify prints controller and namespace data, and the discovery log', async () => {
    const r = await storkit('nvme-identify', '-r', f.trid, '--hdgst');
    expect(r.stdout).to.match(/Serial Number: +SPDK00000000000001/);
    expect(r.stdout).to.match(/Model Number: +storkit test/);
    expect(r.stdout).to.match(/Namespace ID:1\n(?:.*\n)*?Size \(in LBAs\): +16384 \(0GiB\)/);
    const d = await storkit('nvme-identify', '-r', f.trid.replace(/ subnqn:\S+/, ''));
    expect(d.stdout).to.match(/Number of Records: 2/);
    expect(d.stdout).to.match(/subtype nvme subsystem trtype TCP traddr 127\.0\.0\.1/);
  });

  it('nvme-perf runs a mixed workload and prints IOPS, MiB/s, latency and percentiles', async () => {
    const r = await perf('-q', '16', '-o', '4096', '-w', 'rw', '-M', '70', '-t', '1');
    const total = /Total\s+:\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(r.stdout);
    expect(total, r.stdout).to.not.equal(null);
    const [iops, mibps, avg, min, max] = total!.slice(1).map(Number);
    expect(iops).to.be.greaterThan(100);
    expect(mibps).to.be.closeTo((iops * 4096) / 2 ** 20, 0.1);
    expect(min).to.be.at.most(avg);
    expect(avg).to.be.at.most(max);
    expect(r.stdout).to.match(/99\.00000% : +[\d.]+us/);
    const io = /I\/Os: (\d+) \((\d+) reads, (\d+) writes, 0 errors\)/.exec(r.stdout)!;
    const reads = Number(io[2]) / Number(io[1]);
    expect(reads).to.be.within(0.6, 0.8);
    expect(f.ram.counts.write).to.be.greaterThan(0);
  });

  it('nvme-perf -P spreads the depth over several qpairs (connections)', async () => {
    const before = f.tgt.counters.ioQpairs;
    const r = await perf('-q', '12', '-P', '3', '-w', 'randread', '-t', '0.5');
    const io = /I\/Os: (\d+) \((\d+) reads, 0 writes, 0 errors\)/.exec(r.stdout);
    expect(io, r.stdout).to.not.equal(null);
    expect(Number(io![1])).to.be.greaterThan(100);
    expect(f.tgt.counters.ioQpairs - before).to.equal(3);
    const e = await failing('nvme-perf', '-r', f.trid, '-q', '2', '-P', '3');
    expect(e.code).to.equal(2);
    expect(e.stderr).to.match(/-P 3 needs/);
  });

  it('nvme-perf --sock node drives node:net qpairs, as before native ones were the default', async () => {
    const r = await perf('-q', '8', '-w', 'randwrite', '-t', '0.5', '--sock', 'node');
    const io = /I\/Os: (\d+) \(0 reads, (\d+) writes, 0 errors\)/.exec(r.stdout);
    expect(io, r.stdout).to.not.equal(null);
    expect(Number(io![2])).to.be.greaterThan(0); // any: a loaded machine may manage few in 0.5 s
    const e = await failing('nvme-perf', '-r', f.trid, '--sock', 'uring');
    expect(e.code).to.equal(2);
    expect(e.stderr).to.match(/--sock takes native\|node/);
  });

  it('rejects bad options with usage and exit code 2', async () => {
    const e = await failing('nvme-perf', '-r', f.trid, '-w', 'sideways');
    expect(e.code).to.equal(2);
    expect(e.stderr).to.match(/-w takes/);
    const t = await failing('nvme-identify', '-r', 'trtype:RDMA traddr:1.2.3.4');
    expect(t.code).to.not.equal(0);
    expect(t.stderr).to.match(/unsupported trtype/);
  });

  it('a refused Connect names the cause and exits 1 at once, with no connection left open', async () => {
    const wrong = f.trid.replace(/subnqn:\S+/, 'subnqn:nqn.2016-06.io.spdk:nosuch');
    for (const args of [
      ['nvme-identify', '-r', wrong],
      ['nvme-perf', '-r', wrong, '-q', '4', '-t', '1'],
    ]) {
      const t0 = Date.now();
      // execFile's timeout kills a process that would hang on an open socket (code null).
      const e = await run(process.execPath, [main, ...args], { timeout: 10000 }).catch((x) => x);
      expect(e.code, args[0]).to.equal(1);
      expect(e.stderr).to.match(/Fabrics Connect failed: no such subsystem \(SUBNQN\)/);
      expect(e.stderr).to.not.match(/\n\s+at /); // an expected failure: no stack
      expect(Date.now() - t0).to.be.below(8000);
    }
  });
});
