// accel-perf's reactor side (SPDK's examples/accel/perf): the default export runs on reactor 0
// under startApp. Every reactor starts the accel framework with the same settings (and its own
// I/OAT channels), runs `threads` workers, each keeping `queueDepth` operations of one workload
// in flight over its own DMA buffers for `seconds`, then reports per-thread counts.
import type { PciDeviceShare } from '@storkit/native';
import {
  APP_THREAD,
  appReport,
  appStop,
  codec,
  createThread,
  defineHandler,
  getThread,
  reactorCount,
  reactorIndex,
  reactorThread,
  send,
  type Thread,
} from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';

// The package's entry: it registers the software, ioat and offload modules.
import {
  type AccelSettings,
  accelFinish,
  accelGetOpcAssignments,
  accelInitialize,
  accelIoatSetDevices,
  accelSettingsInstall,
} from '../index.js';
import { type PerfThreadResult, PerfWorker, type PerfWorkload } from './worker.js';

export type { PerfThreadResult, PerfWorkload } from './worker.js';

/** What the CLI passes to the app (structured-clone safe). */
export interface AccelPerfArgs {
  workload: PerfWorkload;
  /** Bytes per operation (per vector for crc32c/copy_crc32c with vectors > 1). */
  size: number;
  queueDepth: number;
  /** Operations (and buffers) allocated per thread; >= queueDepth. */
  allocDepth: number;
  /** Threads per reactor. */
  threads: number;
  seconds: number;
  seed: number;
  fill: number;
  verify: boolean;
  /** crc32c, copy_crc32c: the source as this many pieces. */
  vectors: number;
  /** compare: the share of operations whose buffers differ, 0..100. */
  miscompare: number;
  settings: AccelSettings;
  /** The I/OAT channels of each reactor. */
  ioatShares: PciDeviceShare[][];
}

export type AccelPerfReport =
  | { type: 'started'; assignments: Record<string, string> }
  | { type: 'done'; threads: PerfThreadResult[]; seconds: number }
  | { type: 'error'; message: string };

interface Setup {
  args: AccelPerfArgs;
}
interface Result {
  reactor: number;
  threads: PerfThreadResult[];
  seconds: number;
  error?: string;
}

/** Start the framework and the workers on this reactor; `done` gets the results at the end. */
async function runHere(args: AccelPerfArgs, done: (r: Result) => void): Promise<void> {
  const me = reactorIndex();
  const first = getThread() as Thread;
  accelSettingsInstall(args.settings);
  accelIoatSetDevices(args.ioatShares[me] ?? []);
  await accelInitialize();
  setCurrentThread(first);
  if (me === 0)
    appReport({ type: 'started', assignments: accelGetOpcAssignments() } satisfies AccelPerfReport);
  const threads = [first];
  for (let i = 1; i < args.threads; i++) threads.push(createThread(`accel_perf_${me}_${i}`));
  let left = threads.length;
  const results: PerfThreadResult[] = [];
  const started = performance.now();
  for (let i = 0; i < threads.length; i++) {
    threads[i].sendMsg(() => {
      const w = new PerfWorker(args, me, i, (r) => {
        results[i] = r;
        if (--left > 0) return;
        const seconds = (performance.now() - started) / 1000;
        first.sendMsg(() => {
          for (const t of threads) if (t !== first) t.sendMsg(() => t.exit());
          accelFinish().then(
            () => done({ reactor: me, threads: results, seconds }),
            (e: Error) => done({ reactor: me, threads: results, seconds, error: e.message }),
          );
        });
      });
      w.start();
    });
  }
}

const setup = defineHandler<Setup>('storkit.accelperf.setup', codec.json<Setup>(), ({ args }) => {
  const t = getThread();
  runHere(args, (r) => {
    setCurrentThread(t);
    send(APP_THREAD, result, r);
    setCurrentThread(null);
  }).catch((e: Error) => {
    setCurrentThread(t);
    send(APP_THREAD, result, { reactor: reactorIndex(), threads: [], seconds: 0, error: e.message });
    setCurrentThread(null);
  });
});

const result = defineHandler<Result>('storkit.accelperf.result', codec.json<Result>(), (r) => app.result(r));

const app = {
  results: [] as Result[],
  result(r: Result): void {
    this.results.push(r);
    if (this.results.length < reactorCount()) return;
    const errors = this.results
      .filter((x) => x.error !== undefined)
      .map((x) => `reactor ${x.reactor}: ${x.error}`);
    if (errors.length > 0) appReport({ type: 'error', message: errors.join('; ') } satisfies AccelPerfReport);
    const threads = this.results.flatMap((x) => x.threads);
    const seconds = Math.max(...this.results.map((x) => x.seconds));
    appReport({ type: 'done', threads, seconds } satisfies AccelPerfReport);
    appStop(errors.length > 0 ? 1 : 0);
  },
};

/** startApp main: runs on reactor 0's app thread. */
export default function accelPerf(args: AccelPerfArgs): void {
  const t = getThread();
  for (let i = 1; i < reactorCount(); i++) send(reactorThread(i), setup, { args });
  runHere(args, (r) => {
    setCurrentThread(t);
    app.result(r);
    setCurrentThread(null);
  }).catch((e: Error) => {
    setCurrentThread(t);
    appReport({ type: 'error', message: e.message } satisfies AccelPerfReport);
    appStop(1);
    setCurrentThread(null);
  });
}
