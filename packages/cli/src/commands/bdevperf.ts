import { readFileSync } from 'node:fs';
import { Histogram } from '@storkit/bdev';
import type { PerfArgs, PerfReport } from '@storkit/bdev/perf';
import { parseCoreMask, startApp } from '@storkit/reactor';

import { type Command, UsageError } from '../command.js';

const WORKLOADS = [
  'randread',
  'randwrite',
  'read',
  'write',
  'rw',
  'randrw',
  'verify',
  'unmap',
  'flush',
  'write_zeroes',
];

const USAGE = `usage: storkit bdevperf --json CONFIG -q DEPTH -o SIZE -w WORKLOAD -t SECONDS [options]

SPDK's bdevperf: drives every bdev of an SPDK JSON config (its "bdev" subsystem) from every
reactor, one job per bdev per core, and prints IOPS, MiB/s and latency per job and in total.

  --json FILE     SPDK JSON config (bdev_malloc_create, bdev_null_create, bdev_uring_create,
                  bdev_virtio_attach_controller with trtype user / dev_type blk,
                  bdev_nvme_attach_controller with trtype TCP or PCIe, ...)
  -q DEPTH        queue depth per job (default 128)
  -o SIZE         I/O size in bytes, k/m suffixes allowed (default 4096)
  -w WORKLOAD     ${WORKLOADS.join('|')}
  -M PERCENT      read share of rw/randrw (default 50)
  -t SECONDS      run time (default 10)
  -m MASK         reactor core mask, e.g. 0x3 or [0,1] (default 0x1)
  -b BDEV         run only on this bdev (repeatable; default every unclaimed bdev)
  -l              print a latency summary (percentiles) per job, as SPDK bdevperf's -l
  --heap          print each reactor's V8 heap use with every progress line
  --seed N        random offsets seed`;

function size(v: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(v);
  if (m === null) throw new UsageError(`bad size '${v}'`);
  return Number(m[1]) * (m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024);
}

function int(v: string | undefined, what: string, min: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min)
    throw new UsageError(`${what} needs an integer >= ${min}`);
  return n;
}

interface Parsed {
  args: PerfArgs;
  mask: string;
  heap: boolean;
}

function parse(argv: string[]): Parsed {
  let json: string | undefined;
  const a: PerfArgs = {
    config: null,
    queueDepth: 128,
    ioSize: 4096,
    workload: 'randread',
    rwmix: 50,
    seconds: 10,
  };
  let mask = '0x1';
  let heap = false;
  let workload: string | undefined;
  const bdevs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--json':
      case '-c':
        json = v;
        i++;
        break;
      case '-q':
        a.queueDepth = int(v, '-q', 1);
        i++;
        break;
      case '-o':
        if (v === undefined) throw new UsageError('-o needs a size');
        a.ioSize = size(v);
        i++;
        break;
      case '-w':
        workload = v;
        i++;
        break;
      case '-M':
        a.rwmix = int(v, '-M', 0);
        if (a.rwmix > 100) throw new UsageError('-M takes 0..100');
        i++;
        break;
      case '-t':
        a.seconds = int(v, '-t', 1);
        i++;
        break;
      case '-m':
        if (v === undefined) throw new UsageError('-m needs a core mask');
        mask = v;
        i++;
        break;
      case '-b':
        if (v === undefined) throw new UsageError('-b needs a bdev name');
        bdevs.push(v);
        i++;
        break;
      case '--seed':
        a.seed = int(v, '--seed', 0);
        i++;
        break;
      case '-l':
        a.latency = true;
        break;
      case '--heap':
        heap = true;
        break;
      default:
        throw new UsageError(`unknown option '${k}'`);
    }
  }
  if (json === undefined) throw new UsageError('--json CONFIG is required');
  if (workload === undefined || !WORKLOADS.includes(workload))
    throw new UsageError(`-w takes ${WORKLOADS.join('|')}`);
  a.workload = workload as PerfArgs['workload'];
  if (bdevs.length > 0) a.bdevs = bdevs;
  try {
    a.config = JSON.parse(readFileSync(json, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read ${json}: ${(e as Error).message}`);
  }
  return { args: a, mask, heap };
}

/** Config methods whose module lives outside @storkit/bdev, and the module every reactor imports. */
const MODULES: Record<string, string> = {
  bdev_virtio_attach_controller: '@storkit/app/reactor-modules/virtio',
  bdev_lvol_create_lvstore: '@storkit/app/reactor-modules/lvol',
  bdev_lvol_create: '@storkit/app/reactor-modules/lvol',
  bdev_nvme_attach_controller: '@storkit/nvme/bdev',
};

const f2 = (n: number) => n.toFixed(2);

/** SPDK bdevperf's result table. */
export function formatResults(r: Extract<PerfReport, { type: 'done' }>, mask: string): string {
  const us = (t: number) => (t * 1e6) / r.tickRate;
  // Jobs know their reactor's index; SPDK names the core it runs on.
  const cores = parseCoreMask(mask);
  const lines = [
    `${'Latency(us)'.padStart(108)}`,
    `${'Device Information'.padEnd(28)}: ${['runtime(s)', 'IOPS', 'MiB/s', 'Fail/s', 'TO/s', 'Average', 'min', 'max'].map((h) => h.padStart(10)).join(' ')}`,
  ];
  let ios = 0;
  let bytes = 0;
  let fails = 0;
  let lat = 0;
  let min = Number.MAX_SAFE_INTEGER;
  let max = 0;
  for (const j of r.jobs) {
    const secs = r.seconds;
    const row = [
      f2(secs),
      f2(j.ios / secs),
      f2(j.bytes / secs / 1048576),
      f2((j.errors + j.miscompares) / secs),
      f2(j.timeouts / secs),
    ];
    const avg = j.ios > 0 ? us(j.latTicks / j.ios) : 0;
    row.push(f2(avg), f2(j.ios > 0 ? us(j.minTicks) : 0), f2(us(j.maxTicks)));
    const core = cores[j.reactor] ?? j.reactor;
    lines.push(`Job: ${j.name} (Core Mask 0x${(2 ** core).toString(16)})`);
    lines.push(`\t ${j.name.padEnd(22)}: ${row.map((c) => c.padStart(10)).join(' ')}`);
    if (j.miscompares > 0)
      lines.push(`\t ${j.miscompares} miscompares, the first at block ${j.firstMiscompare}`);
    ios += j.ios;
    bytes += j.bytes;
    fails += j.errors + j.miscompares;
    lat += j.latTicks;
    if (j.ios > 0) min = Math.min(min, j.minTicks);
    max = Math.max(max, j.maxTicks);
  }
  const s = r.seconds;
  lines.push('='.repeat(120));
  const tot = [
    '',
    f2(ios / s),
    f2(bytes / s / 1048576),
    f2(fails / s),
    f2(0),
    f2(ios > 0 ? us(lat / ios) : 0),
    f2(ios > 0 ? us(min) : 0),
    f2(us(max)),
  ];
  lines.push(`${'Total'.padEnd(28)}: ${tot.map((c) => c.padStart(10)).join(' ')}`);
  if (r.jobs.some((j) => j.hist !== undefined)) lines.push('', latencySummary(r, mask));
  return lines.join('\n');
}

/** The percentiles SPDK bdevperf -l prints. */
const PERCENTILES = [1, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9, 99.99, 99.999, 99.9999, 99.99999];

/**
 * SPDK bdevperf -l's "Latency summary": per job, the latency (µs, the upper bound of the histogram
 * bucket) at or below which each percentile of its I/Os completed.
 */
export function latencySummary(r: Extract<PerfReport, { type: 'done' }>, mask: string): string {
  const cores = parseCoreMask(mask);
  const lines = [' Latency summary', ` ${'='.repeat(45)}`];
  for (const j of r.jobs) {
    if (j.hist === undefined) continue;
    const h = new Histogram();
    h.merge(j.hist);
    const core = cores[j.reactor] ?? j.reactor;
    lines.push(` Job: ${j.name} (Core Mask 0x${(2 ** core).toString(16)})`);
    for (const p of PERCENTILES) {
      const us = (h.percentile(p) * 1e6) / r.tickRate;
      lines.push(`${p.toFixed(5).padStart(9)}% : ${us.toFixed(3).padStart(9)}us`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

export const bdevperf: Command = {
  name: 'bdevperf',
  summary: 'SPDK bdevperf: drive the bdevs of a JSON config and report IOPS and latency',
  usage: USAGE,
  async run(argv) {
    const { args, mask, heap } = parse(argv);
    const main = new URL(import.meta.resolve('@storkit/bdev/perf'));
    // Config methods of modules outside @storkit/bdev: their reactor module registers them.
    const calls = JSON.stringify(args.config);
    const modules = Object.entries(MODULES)
      .filter(([method]) => calls.includes(`"${method}"`))
      .map(([, m]) => new URL(import.meta.resolve(m)));
    const out = process.stdout;
    let failed = false;
    const onReport = (r: PerfReport | { type: 'error'; message: string }) => {
      if (r.type === 'error') {
        failed = true;
        process.stderr.write(`bdevperf: ${r.message}\n`);
      } else if (r.type === 'started') {
        out.write(
          `Running I/O for ${args.seconds} seconds... (${r.jobs.length} jobs, mask ${mask}, ${args.workload}, qd ${args.queueDepth}, ${args.ioSize} bytes)\n`,
        );
      } else if (r.type === 'progress') {
        const h = heap ? `   heap ${r.heapUsed.map((x) => (x / 1048576).toFixed(2)).join('/')} MiB` : '';
        out.write(`${f2(r.ios).padStart(14)} IOPS, ${f2(r.bytes / 1048576).padStart(10)} MiB/s${h}\n`);
      } else if (r.type === 'done') {
        out.write(`${formatResults(r, mask)}\n`);
        if (r.jobs.some((j) => j.errors > 0 || j.miscompares > 0)) failed = true;
      }
    };
    const app = await startApp({
      mask,
      main,
      modules,
      mainArg: args,
      loop: { idleUs: false },
      onReport: (v) => onReport(v as PerfReport),
    });
    const res = await app.done;
    if (res.error !== undefined) process.stderr.write(`bdevperf: ${res.error}\n`);
    if (res.leaked.length > 0)
      process.stderr.write(`bdevperf: leaked at shutdown: ${res.leaked.join('; ')}\n`);
    return res.code !== 0 || failed ? 1 : 0;
  },
};
