// bdevperf's engine in real reactor workers (startApp): bdevs replayed on every reactor from the
// first one's params share their memory (malloc) and their QoS budget.

import { type AppResult, startApp } from '@storkit/reactor';
import { expect } from 'chai';
import { IoStatus } from '../src/index.js';
import type { PerfArgs, PerfReport } from '../src/perf/app.js';
import type { LockReport } from './fixtures/lock-app.js';
import type { RaidReport } from './fixtures/raid-app.js';

async function perf(
  args: PerfArgs,
  mask: string,
): Promise<{ code: number; done: Extract<PerfReport, { type: 'done' }> | null; errors: string[] }> {
  let done: Extract<PerfReport, { type: 'done' }> | null = null;
  const errors: string[] = [];
  const app = await startApp({
    mask,
    main: new URL('../src/perf/app.js', import.meta.url),
    mainArg: args,
    pin: false,
    loop: { idleUs: false },
    signals: false,
    onReport: (v) => {
      const r = v as PerfReport | { type: 'error'; message: string };
      if (r.type === 'done') done = r;
      if (r.type === 'error') errors.push(r.message);
    },
  });
  const res = await app.done;
  return { code: res.code, done, errors };
}

/** Run a fixture app of ./fixtures on two reactors (unpinned, busy polling); what it reported. */
async function fixture<R>(file: string): Promise<{ res: AppResult; reports: R[] }> {
  const reports: R[] = [];
  const app = await startApp({
    mask: '0x3',
    main: new URL(`./fixtures/${file}`, import.meta.url),
    pin: false,
    loop: { idleUs: false },
    signals: false,
    onReport: (v) => reports.push(v as R),
  });
  return { res: await app.done, reports };
}

const cfg = (calls: object[]) => ({ subsystems: [{ subsystem: 'bdev', config: calls }] });

describe('bdev in reactor workers', function () {
  this.timeout(60_000);

  it('verify on one malloc bdev from two reactors: shared memory, no miscompares', async () => {
    const r = await perf(
      {
        config: cfg([
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 4096, block_size: 512 } },
        ]),
        queueDepth: 16,
        ioSize: 4096,
        workload: 'verify',
        rwmix: 50,
        seconds: 2,
      },
      '0x3',
    );
    expect(r.errors).to.deep.equal([]);
    expect(r.code).to.equal(0);
    expect(r.done?.jobs.map((j) => j.reactor).sort()).to.deep.equal([0, 1]);
    for (const j of r.done?.jobs ?? []) {
      expect(j.ios).to.be.greaterThan(100);
      expect(j.miscompares).to.equal(0);
      expect(j.errors).to.equal(0);
    }
  });

  it('error injection counts are shared: num failures in all, whichever reactor submits', async () => {
    const r = await perf(
      {
        config: cfg([
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 4096, block_size: 512 } },
          { method: 'bdev_error_create', params: { base_name: 'Malloc0' } },
          // Every reactor applies the injection (as the RPC broadcast does); the count is one.
          {
            method: 'bdev_error_inject_error',
            params: { name: 'EE_Malloc0', io_type: 'read', error_type: 'failure', num: 7 },
          },
        ]),
        queueDepth: 8,
        ioSize: 4096,
        workload: 'randread',
        rwmix: 50,
        seconds: 1,
      },
      '0x3',
    );
    expect(r.errors).to.deep.equal([]);
    const jobs = (r.done?.jobs ?? []).filter((j) => j.name === 'EE_Malloc0');
    expect(jobs.map((j) => j.reactor).sort()).to.deep.equal([0, 1]);
    for (const j of jobs) expect(j.ios).to.be.greaterThan(100);
    expect(jobs.reduce((a, j) => a + j.errors, 0)).to.equal(7);
  });

  it('QoS limits the sum over two reactor workers (shared counters): never 10% over', async () => {
    const r = await perf(
      {
        config: cfg([
          { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 65536, block_size: 4096 } },
          { method: 'bdev_set_qos_limit', params: { name: 'Null0', rw_ios_per_sec: 20000 } },
        ]),
        queueDepth: 32,
        ioSize: 4096,
        workload: 'randread',
        rwmix: 50,
        seconds: 3,
      },
      '0x3',
    );
    expect(r.code).to.equal(0);
    const jobs = r.done?.jobs ?? [];
    expect(jobs).to.have.length(2);
    // Counts, not a rate window: the two workers together never did more than the limit allows in
    // the time they ran (plus one 20 ms bucket each). Per-worker budgets would allow twice that,
    // which a null bdev reaches even on a loaded machine. A busy machine may make them do less:
    // that is not a QoS defect, so there is no lower bound beyond each one making progress.
    const ios = jobs.reduce((a, j) => a + j.ios, 0);
    const secs = r.done?.seconds ?? 1;
    expect(ios).to.be.at.most(20_000 * secs * 1.1 + 2 * 400);
    for (const j of jobs) expect(j.ios).to.be.greaterThan(0);
  });

  it('a range lock holds back writes on a channel another reactor creates while it is held', async () => {
    const { res, reports } = await fixture<LockReport>('lock-app.js');
    expect(res.code).to.equal(0);
    // Reactor 1 had no channel when the lock was taken: its first channel still sees the lock.
    expect(reports).to.deep.equal([
      { insideWhileLocked: -1, outsideWhileLocked: IoStatus.SUCCESS, insideAfterUnlock: IoStatus.SUCCESS },
    ]);
  });

  it('raid1 rebuild while two reactor workers write: both mirrors hold what each wrote', async () => {
    const { res, reports } = await fixture<RaidReport[]>('raid-app.js');
    expect(res.code, res.error).to.equal(0);
    expect(reports).to.have.length(1);
    for (const [i, r] of reports[0].entries()) {
      expect(r).to.include({ reactor: i, badA: 0, badC: 0, error: '' });
      expect(r.writes).to.be.greaterThan(50);
    }
    // Each worker's channel got writes held back by a window lock taken on reactor 0.
    expect(reports[0].map((r) => r.held)).to.deep.equal([true, true]);
  });
});
