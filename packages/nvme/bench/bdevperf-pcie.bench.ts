// bdevperf over the PCIe nvme bdev against bdevperf over a null bdev, in the same run (issue 15:
// the PCIe bdev within 20% of null). Both: storkit's bdevperf app, one reactor on core 0, 4 KiB
// randread, QD 128. The PCIe bdev is `bdev_nvme_attach_controller -t PCIe` on the software
// controller (a null namespace: no data moved) spinning on a core of its own (core 1), so what
// separates the two rows is the nvme bdev module and the PCIe driver. Each run is a child process
// (this file with --child): a fresh reactor, and the controller model lives in the process that
// opens it. Runs go in pairs, back to back, the order alternating; the ratio is the median pair's.
//   node packages/nvme/dist/bench/bdevperf-pcie.bench.js            (PCIE_BDEVPERF_PAIRS=3, BDEVPERF_SECONDS=5)
//   npm run bench -- bdevperf-pcie
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { PerfArgs, PerfReport } from '@storkit/bdev/perf';
import { quick, report, runSeconds } from '@storkit/bench';
import { cpuCount } from '@storkit/native';
import { startApp } from '@storkit/reactor';

import { NvmeModelWorker } from '../src/pcie/model/index.js';

type Kind = 'pcie' | 'null';

interface ChildResult {
  kind: Kind;
  iops: number;
  avgUs: number;
  errors: number;
}

const seconds = runSeconds('BDEVPERF_SECONDS', 5);

/** One bdevperf run in this process; prints its result as one JSON line. */
async function child(kind: Kind): Promise<void> {
  const cores = cpuCount();
  let model: NvmeModelWorker | null = null;
  let call: object;
  if (kind === 'pcie') {
    model = await NvmeModelWorker.start({
      namespaces: [{ nsid: 1, blockSize: 4096, blocks: 1 << 20, null: true }],
      spin: true,
      cpu: cores > 1 ? 1 : 0,
    });
    call = {
      method: 'bdev_nvme_attach_controller',
      params: { name: 'Nvme0', trtype: 'PCIe', traddr: model.address },
    };
  } else {
    call = { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 1 << 20, block_size: 4096 } };
  }
  const args: PerfArgs = {
    config: { subsystems: [{ subsystem: 'bdev', config: [call] }] },
    queueDepth: 128,
    ioSize: 4096,
    workload: 'randread',
    rwmix: 50,
    seconds,
  };
  let done: Extract<PerfReport, { type: 'done' }> | null = null;
  let error = '';
  const app = await startApp({
    mask: '0x1',
    main: new URL(import.meta.resolve('@storkit/bdev/perf')),
    modules: kind === 'pcie' ? [new URL(import.meta.resolve('@storkit/nvme/bdev'))] : [],
    mainArg: args,
    loop: { idleUs: false },
    onReport: (v) => {
      const r = v as PerfReport | { type: 'error'; message: string };
      if (r.type === 'done') done = r;
      else if (r.type === 'error') error = r.message;
    },
  });
  const res = await app.done;
  await model?.stop();
  const d = done as Extract<PerfReport, { type: 'done' }> | null;
  if (d === null || res.code !== 0) {
    process.stderr.write(`bdevperf ${kind}: ${error || res.error || `exit ${res.code}`}\n`);
    process.exit(1);
  }
  let ios = 0;
  let lat = 0;
  let errors = 0;
  for (const j of d.jobs) {
    ios += j.ios;
    lat += j.latTicks;
    errors += j.errors + j.miscompares + j.timeouts;
  }
  const out: ChildResult = {
    kind,
    iops: ios / d.seconds,
    avgUs: ios > 0 ? (lat / ios / d.tickRate) * 1e6 : 0,
    errors,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

function runChild(kind: Kind): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', kind], {
    encoding: 'utf8',
    env: process.env,
  });
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (r.status !== 0 || line === undefined)
    throw new Error(`bdevperf ${kind} failed (exit ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`);
  const res = JSON.parse(line) as ChildResult;
  if (res.errors > 0) throw new Error(`bdevperf ${kind}: ${res.errors} failed I/Os`);
  return res;
}

async function main(): Promise<void> {
  const pairs = quick() ? 1 : Math.max(1, Number(process.env.PCIE_BDEVPERF_PAIRS ?? 3));
  console.log(
    `machine: ${os.cpus()[0]?.model} x${cpuCount()}, load ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(
        ' ',
      )}; bdevperf 4 KiB randread QD 128, reactor on core 0, ${seconds} s per run; controller model on core ${cpuCount() > 1 ? 1 : 0}`,
  );
  const rows: { pcie: ChildResult; nul: ChildResult; ratio: number }[] = [];
  for (let i = 0; i < pairs; i++) {
    const order: Kind[] = i % 2 === 0 ? ['pcie', 'null'] : ['null', 'pcie'];
    const got = new Map(order.map((k) => [k, runChild(k)] as const));
    const pcie = got.get('pcie') as ChildResult;
    const nul = got.get('null') as ChildResult;
    rows.push({ pcie, nul, ratio: pcie.iops / nul.iops });
    console.log(
      `pair ${i + 1} (${order.join(' then ')}): PCIe nvme bdev ${(pcie.iops / 1e6).toFixed(3)} M IOPS (${pcie.avgUs.toFixed(1)} us), null bdev ${(nul.iops / 1e6).toFixed(3)} M IOPS (${nul.avgUs.toFixed(1)} us): ratio ${(pcie.iops / nul.iops).toFixed(3)}`,
    );
  }
  const sorted = [...rows].sort((a, b) => a.ratio - b.ratio);
  const mid = sorted[sorted.length >> 1];
  console.log(
    `median pair: PCIe/null = ${mid.ratio.toFixed(3)} (goal: >= 0.80, within 20% of null): ${mid.ratio >= 0.8 ? 'met' : 'not met'}`,
  );
  report('bdevperf, one reactor, 4 KiB randread QD 128: PCIe nvme bdev (software controller) vs null', [
    {
      name: 'PCIe nvme bdev (median pair)',
      value: Math.round(mid.pcie.iops),
      unit: 'IOPS',
      better: 'higher',
    },
    { name: 'null bdev (median pair)', value: Math.round(mid.nul.iops), unit: 'IOPS', better: 'higher' },
    {
      name: 'PCIe / null (median pair)',
      value: Number(mid.ratio.toFixed(3)),
      unit: 'ratio',
      better: 'higher',
    },
  ]);
}

const at = process.argv.indexOf('--child');
if (at >= 0) await child(process.argv[at + 1] as Kind);
else await main();
