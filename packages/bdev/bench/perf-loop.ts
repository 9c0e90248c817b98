// In-process driver for profiling the I/O path: one harness reactor, a bdevperf job, N seconds.
import { createTestHarness } from '@storkit/reactor/testing';
import { applyBdevConfig } from '../src/perf/config.js';
import { Job } from '../src/perf/job.js';

export function runLoop(
  method: string,
  params: Record<string, unknown>,
  workload: 'randread' | 'randwrite',
  ms: number,
): number {
  const h = createTestHarness({ reactors: 1 });
  applyBdevConfig([{ method, params }]);
  h.pollThreads();
  const job = new Job(
    { bdev: params.name as string, queueDepth: 128, ioSize: 4096, workload, rwmix: 50, seed: 1 },
    0,
  );
  job.start();
  const t0 = performance.now();
  while (performance.now() - t0 < ms) for (let i = 0; i < 100; i++) h.pollOnce();
  const secs = (performance.now() - t0) / 1000;
  const iops = job.stats.ios / secs;
  let stopped = false;
  job.stop(() => {
    stopped = true;
  });
  while (!stopped) h.pollOnce();
  job.close();
  h.pollThreads();
  return iops;
}

if (process.argv[2] === 'run') {
  const iops = runLoop(
    'bdev_null_create',
    { name: 'N', num_blocks: 262144, block_size: 4096 },
    'randread',
    Number(process.argv[3] ?? 3000),
  );
  console.log(`null randread ${(iops / 1e6).toFixed(2)} M IOPS`);
}
if (process.argv[2] === 'malloc') {
  const iops = runLoop(
    'bdev_malloc_create',
    { name: 'M', num_blocks: 16384, block_size: 4096 },
    (process.argv[4] ?? 'randread') as 'randread',
    Number(process.argv[3] ?? 3000),
  );
  console.log(`malloc ${process.argv[4] ?? 'randread'} ${(iops / 1e6).toFixed(2)} M IOPS`);
}
