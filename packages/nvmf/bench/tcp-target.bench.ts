// NVMe/TCP target throughput, side by side with SPDK's figures (docs/perf-history.md): the target
// runs in its own process pinned to CPU 0, the storkit host (nvme-perf's engine) on CPU 1, 4 KiB
// I/O on a 64 MiB RAM namespace. Reports IOPS, latency and target CPU-seconds per million I/Os.
// BENCH_SECONDS overrides the 5 s per workload.

import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

import { report, runSeconds } from '@storkit/bench';
import { cpuCount, pinThread } from '@storkit/native';
import { NvmeController } from '@storkit/nvme';
import { runPerf, type Workload } from '@storkit/nvme/perf';

const seconds = runSeconds('BENCH_SECONDS', 5);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

const port = await freePort();
const child = fork(
  fileURLToPath(new URL('./target-process.js', import.meta.url)),
  [String(port), '0', '64'],
  {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  },
);
await new Promise((r) => child.once('message', r));
const targetCpu = (): Promise<number> =>
  new Promise((r) => {
    child.once('message', (m: { cpu: number }) => r(m.cpu));
    child.send('cpu');
  });
pinThread(cpuCount() > 1 ? 1 : 0);
const trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:nqn.2016-06.io.spdk:cnode1`;
const c = await NvmeController.connect(trid);
const qp = await c.allocIoQpair({ depth: 128 });
console.log(
  `target pinned to CPU 0, host to CPU ${cpuCount() > 1 ? 1 : 0}; 4 KiB I/O, 64 MiB RAM namespace, ${seconds} s each`,
);
console.log('workload          QD      IOPS   MiB/s  avg us  p99 us  target CPU-s/M IOs  target CPU use');
for (const [w, q] of [
  ['randread', 32],
  ['randread', 128],
  ['randwrite', 128],
] as [Workload, number][]) {
  await runPerf(c, qp, { queueDepth: q, ioSize: 4096, workload: w, seconds: 0.5 });
  const cpu0 = await targetCpu();
  const r = await runPerf(c, qp, { queueDepth: q, ioSize: 4096, workload: w, seconds });
  const cpu = (await targetCpu()) - cpu0;
  console.log(
    `${w.padEnd(14)} ${String(q).padStart(5)} ${r.iops.toFixed(0).padStart(9)} ${r.mibps.toFixed(1).padStart(7)} ${r.avgUs.toFixed(1).padStart(7)} ${r.histogram.percentile(99).toFixed(0).padStart(7)} ${((cpu / r.ios) * 1e6).toFixed(2).padStart(19)} ${((cpu / r.seconds) * 100).toFixed(0).padStart(14)}%`,
  );
  report('NVMe/TCP target (own process, CPU 0) from the storkit host (CPU 1), 4 KiB', [
    {
      name: `${w} QD ${q}`,
      value: Math.round(r.iops),
      unit: 'IOPS',
      better: 'higher',
      extra: {
        'avg us': Number(r.avgUs.toFixed(1)),
        'target CPU-s per M IOs': Number(((cpu / r.ios) * 1e6).toFixed(2)),
      },
    },
  ]);
}
await c.close();
child.send('stop');
await new Promise((r) => child.once('exit', r));
