// bdevperf's reactor side: the default export runs on the app thread (reactor 0) under
// startApp. It applies the config there, replays it on every other reactor, starts one job per
// bdev per reactor, reports progress each second and the results at the end (appReport), then
// stops the app.
import { getHeapStatistics } from 'node:v8';
import {
  APP_THREAD,
  appReport,
  appStop,
  codec,
  defineHandler,
  getThread,
  type Poller,
  reactorCount,
  reactorIndex,
  reactorThread,
  send,
} from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';
import { bdevGetAll, bdevWaitForExamine } from '../registry.js';
import { applyBdevConfig, bdevCalls, type ConfigCall } from './config.js';
import { Job, type JobStats, type Workload } from './job.js';

export { type ConfigCall, type ConfigMethod, registerConfigMethod } from './config.js';

/** What the CLI passes to the app (structured-clone safe). */
export interface PerfArgs {
  config: unknown;
  queueDepth: number;
  ioSize: number;
  workload: Workload;
  rwmix: number;
  seconds: number;
  /** Only these bdevs (default: every bdev no module claimed). */
  bdevs?: string[];
  seed?: number;
  /** -l: a latency histogram per job, printed as SPDK bdevperf's "Latency summary". */
  latency?: boolean;
}

/** Reports sent to the main thread. */
export type PerfReport =
  | { type: 'started'; jobs: { name: string; reactor: number }[]; tickRate: number }
  | { type: 'progress'; second: number; ios: number; bytes: number; heapUsed: number[] }
  | { type: 'done'; jobs: JobStats[]; seconds: number; tickRate: number; heapUsed: number[] };

interface Setup {
  calls: ConfigCall[];
  args: PerfArgs;
}
interface Tick {
  reactor: number;
  ios: number;
  bytes: number;
  heap: number;
}
interface Result {
  reactor: number;
  jobs: JobStats[];
  error?: string;
}

let jobs: Job[] = [];
let poller: Poller | null = null;

function startJobs(a: PerfArgs): { name: string; reactor: number }[] {
  const names =
    a.bdevs ??
    bdevGetAll()
      .filter((b) => b.claimedBy === null)
      .map((b) => b.name);
  jobs = names.map(
    (name) =>
      new Job(
        {
          bdev: name,
          queueDepth: a.queueDepth,
          ioSize: a.ioSize,
          workload: a.workload,
          rwmix: a.rwmix,
          seed: a.seed ?? 1,
          latency: a.latency ?? false,
          part: { index: reactorIndex(), count: reactorCount() },
        },
        reactorIndex(),
      ),
  );
  for (const j of jobs) j.start();
  const me = reactorIndex();
  const t = getThread();
  if (t === null) throw new Error('bdevperf: no thread');
  // Progress to the app thread once a second (a control message, not on the I/O path).
  poller = t.registerPoller(
    () => {
      let ios = 0;
      let bytes = 0;
      for (const j of jobs) {
        ios += j.stats.ios;
        bytes += j.stats.bytes;
      }
      send(APP_THREAD, tick, { reactor: me, ios, bytes, heap: getHeapStatistics().used_heap_size });
      return 0;
    },
    1_000_000,
    'bdevperf_progress',
  );
  return names.map((name) => ({ name, reactor: me }));
}

function stopJobs(): void {
  poller?.unregister();
  poller = null;
  let left = jobs.length;
  const me = reactorIndex();
  const finish = () => {
    const stats = jobs.map((j) => j.report());
    for (const j of jobs) j.close();
    jobs = [];
    send(APP_THREAD, result, { reactor: me, jobs: stats });
  };
  if (left === 0) {
    finish();
    return;
  }
  for (const j of jobs) {
    j.stop(() => {
      if (--left === 0) finish();
    });
  }
}

// ---- messages -------------------------------------------------------------------------------

const setup = defineHandler<Setup>('storkit.bdevperf.setup', codec.json<Setup>(), (s) => {
  const t = getThread();
  void (async () => {
    let error: string | undefined;
    let started: { name: string; reactor: number }[] = [];
    try {
      await applyBdevConfig(s.calls);
      setCurrentThread(t);
      // What examine builds on the config's bdevs (lvstores and their lvols) exists before the jobs.
      await new Promise<void>((res) => bdevWaitForExamine(res));
      setCurrentThread(t);
      started = startJobs(s.args);
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    setCurrentThread(t);
    send(APP_THREAD, ready, {
      reactor: reactorIndex(),
      jobs: started.map((j) => j.name),
      error: error ?? '',
    });
    setCurrentThread(null);
  })();
});

const ready = defineHandler<{ reactor: number; jobs: string[]; error: string }>(
  'storkit.bdevperf.ready',
  codec.json(),
  (r) => app.ready(r),
);

const stop = defineHandler<null>('storkit.bdevperf.stop', codec.json<null>(), () => stopJobs());

const tick = defineHandler<Tick>('storkit.bdevperf.tick', codec.json<Tick>(), (t) => app.tick(t));

const result = defineHandler<Result>('storkit.bdevperf.result', codec.json<Result>(), (r) => app.result(r));

// ---- the app thread's bookkeeping -------------------------------------------------------------

const app = {
  args: null as PerfArgs | null,
  readyCount: 0,
  started: [] as { name: string; reactor: number }[],
  errors: [] as string[],
  ticks: new Map<number, Tick>(),
  second: 0,
  lastIos: 0,
  lastBytes: 0,
  results: [] as JobStats[],
  resultCount: 0,
  startedAt: 0,
  heap: [] as number[],

  ready(r: { reactor: number; jobs: string[]; error: string }): void {
    if (r.error !== '') this.errors.push(`reactor ${r.reactor}: ${r.error}`);
    for (const n of r.jobs) this.started.push({ name: n, reactor: r.reactor });
    if (++this.readyCount < reactorCount()) return;
    if (this.errors.length > 0) {
      appReport({ type: 'error', message: this.errors.join('; ') });
      for (let i = 0; i < reactorCount(); i++) send(reactorThread(i), stop, null);
      return;
    }
    const rate = (getThread() as NonNullable<ReturnType<typeof getThread>>).host.clock.rate;
    appReport({ type: 'started', jobs: this.started, tickRate: rate } satisfies PerfReport);
    this.startedAt = performance.now();
  },

  tick(t: Tick): void {
    this.ticks.set(t.reactor, t);
    if (this.ticks.size < reactorCount()) return;
    let ios = 0;
    let bytes = 0;
    const heap: number[] = [];
    for (const v of this.ticks.values()) {
      ios += v.ios;
      bytes += v.bytes;
      heap.push(v.heap);
    }
    this.ticks.clear();
    this.second++;
    this.heap = heap;
    appReport({
      type: 'progress',
      second: this.second,
      ios: ios - this.lastIos,
      bytes: bytes - this.lastBytes,
      heapUsed: heap,
    } satisfies PerfReport);
    this.lastIos = ios;
    this.lastBytes = bytes;
    if (this.args !== null && this.second >= this.args.seconds) {
      for (let i = 0; i < reactorCount(); i++) send(reactorThread(i), stop, null);
    }
  },

  result(r: Result): void {
    this.results.push(...r.jobs);
    if (++this.resultCount < reactorCount()) return;
    const rate = (getThread() as NonNullable<ReturnType<typeof getThread>>).host.clock.rate;
    const seconds = (performance.now() - this.startedAt) / 1000;
    appReport({
      type: 'done',
      jobs: this.results,
      seconds,
      tickRate: rate,
      heapUsed: this.heap,
    } satisfies PerfReport);
    appStop(this.errors.length > 0 ? 1 : 0);
  },
};

/** startApp main: runs on the app thread. */
export default async function bdevperf(args: PerfArgs): Promise<void> {
  app.args = args;
  // Every await below resumes outside the app thread; it is made current again for what follows.
  const t = getThread();
  let replay: ConfigCall[];
  try {
    replay = await applyBdevConfig(bdevCalls(args.config));
  } catch (e) {
    setCurrentThread(t);
    appReport({ type: 'error', message: e instanceof Error ? e.message : String(e) });
    appStop(1);
    setCurrentThread(null);
    return;
  }
  setCurrentThread(t);
  await new Promise<void>((res) => bdevWaitForExamine(res));
  setCurrentThread(t);
  // Reactor 0 made the bdevs (and their shared memory); the others replay with its handles.
  for (let i = 1; i < reactorCount(); i++) send(reactorThread(i), setup, { calls: replay, args });
  let started: { name: string; reactor: number }[] = [];
  let error = '';
  try {
    started = startJobs(args);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  app.ready({ reactor: 0, jobs: started.map((j) => j.name), error });
  setCurrentThread(null);
}
