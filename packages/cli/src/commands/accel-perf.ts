import { type AccelSettings, accelSettingsApply, accelSettingsDefault } from '@storkit/accel';
import type { AccelPerfArgs, AccelPerfReport, PerfWorkload } from '@storkit/accel/perf';
import { IoatModel } from '@storkit/ioat/testing';
import { cpuCount, type PciDeviceShare } from '@storkit/native';
import { parseCoreMask, startApp } from '@storkit/reactor';

import { type Command, UsageError } from '../command.js';

const WORKLOADS: PerfWorkload[] = ['copy', 'fill', 'crc32c', 'copy_crc32c', 'compare', 'dualcast'];
const MODULES = ['software', 'ioat', 'offload'];

const USAGE = `usage: storkit accel-perf -w WORKLOAD [-q DEPTH] [-o SIZE] [-t SECONDS] [-m MASK] [options]

SPDK's accel_perf: keeps DEPTH operations of one workload in flight per thread on every
reactor's accel channel, and prints transfers per second and bandwidth per thread and in total.

  -w WORKLOAD     ${WORKLOADS.join('|')}
  -q DEPTH        operations in flight per thread (default 32)
  -a DEPTH        operations (and buffers) allocated per thread, >= -q (default: -q)
  -o SIZE         bytes per operation, k/m suffixes (default 4096)
  -t SECONDS      run time (default 5)
  -m MASK         reactor core mask (default 0x1)
  -T THREADS      threads per reactor (default 1)
  -C VECTORS      crc32c, copy_crc32c: the source as this many SIZE-byte vectors (default 1)
  -M MODULE       run the workload on this module: ${MODULES.join('|')} (default: the framework's choice)
  -S SEED         crc32c seed (default 0)
  -P PERCENT      compare: share of operations that should miscompare (default 0)
  -f BYTE         fill byte (default 255)
  -y              verify every result
  --ioat-model N  run the I/OAT device model with N channels (default: one per reactor), on a
                  core outside MASK when there is one; -M ioat finds them (no hardware here)
  --offload-threads N, --offload-min-bytes N
                  the offload module's pool threads and the size below which it stays inline`;

function size(v: string | undefined, what: string): number {
  const m = /^(\d+)([kKmM]?)$/.exec(v ?? '');
  if (m === null) throw new UsageError(`${what} needs a size`);
  return Number(m[1]) * (m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024);
}

function int(v: string | undefined, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${what} needs an integer in ${min}..${max}`);
  return n;
}

interface Parsed {
  args: Omit<AccelPerfArgs, 'ioatShares'>;
  mask: string;
  module: string | null;
  ioatModel: number | null;
}

function parse(argv: string[]): Parsed {
  let workload: string | undefined;
  let alloc: number | null = null;
  let module: string | null = null;
  let ioatModel: number | null = null;
  let mask = '0x1';
  let settings: AccelSettings = accelSettingsDefault();
  const a = {
    workload: 'copy' as PerfWorkload,
    size: 4096,
    queueDepth: 32,
    allocDepth: 32,
    threads: 1,
    seconds: 5,
    seed: 0,
    fill: 255,
    verify: false,
    vectors: 1,
    miscompare: 0,
  };
  const offload: Record<string, number> = {};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    switch (k) {
      case '-w':
        workload = v();
        break;
      case '-q':
        a.queueDepth = int(v(), '-q', 1, 65536);
        break;
      case '-a':
        alloc = int(v(), '-a', 1, 65536);
        break;
      case '-o':
        a.size = size(v(), '-o');
        if (a.size < 1) throw new UsageError('-o needs a size of at least 1 byte');
        break;
      case '-t':
        a.seconds = int(v(), '-t', 1, 3600);
        break;
      case '-m':
        mask = v() ?? '';
        break;
      case '-T':
        a.threads = int(v(), '-T', 1, 64);
        break;
      case '-C':
        a.vectors = int(v(), '-C', 1, 128);
        break;
      case '-M':
        module = v() ?? '';
        if (!MODULES.includes(module)) throw new UsageError(`-M takes ${MODULES.join('|')}`);
        break;
      case '-S':
        a.seed = int(v(), '-S', 0, 0xffffffff);
        break;
      case '-P':
        a.miscompare = int(v(), '-P', 0, 100);
        break;
      case '-f':
        a.fill = int(v(), '-f', 0, 255);
        break;
      case '-y':
        a.verify = true;
        break;
      case '--ioat-model':
        ioatModel = int(v(), '--ioat-model', 1, 32);
        break;
      case '--offload-threads':
        offload.threads = int(v(), '--offload-threads', 1, 64);
        break;
      case '--offload-min-bytes':
        offload.min_bytes = size(v(), '--offload-min-bytes');
        break;
      default:
        throw new UsageError(`unknown option '${k}'`);
    }
  }
  if (workload === undefined || !WORKLOADS.includes(workload as PerfWorkload))
    throw new UsageError(`-w takes ${WORKLOADS.join('|')}`);
  a.workload = workload as PerfWorkload;
  a.allocDepth = alloc ?? a.queueDepth;
  if (a.allocDepth < a.queueDepth) throw new UsageError('-a must be at least -q');
  if (module !== null) {
    if (module === 'ioat') settings = accelSettingsApply(settings, 'ioat_scan_accel_module');
    settings = accelSettingsApply(settings, 'accel_assign_opc', { opname: a.workload, module });
  }
  if (Object.keys(offload).length > 0)
    settings = accelSettingsApply(settings, 'storkit_accel_offload_set_options', offload);
  settings = accelSettingsApply(settings, 'accel_set_options', {
    task_count: Math.max(2048, a.queueDepth),
  });
  return { args: { ...a, settings }, mask, module, ioatModel };
}

const pad = (s: string | number, n: number) => String(s).padStart(n);

/** SPDK accel_perf's configuration block and result table. */
export function formatConfig(p: Parsed, cores: number[], module: string): string {
  const a = p.args;
  return [
    'Accel Perf Configuration:',
    `Workload Type:  ${a.workload}`,
    ...(a.workload === 'crc32c' || a.workload === 'copy_crc32c' ? [`CRC-32C seed:   ${a.seed}`] : []),
    ...(a.workload === 'fill' ? [`Fill pattern:   0x${a.fill.toString(16)}`] : []),
    `Transfer size:  ${a.size} bytes`,
    `Vector count    ${a.vectors}`,
    `Module:         ${module}`,
    `Queue depth:    ${a.queueDepth}`,
    `Allocate depth: ${a.allocDepth}`,
    `# threads/core: ${a.threads}`,
    `Run time:       ${a.seconds} seconds`,
    `Verify:         ${a.verify ? 'Yes' : 'No'}`,
    `Cores:          ${cores.join(',')}`,
  ].join('\n');
}

export function formatResults(r: Extract<AccelPerfReport, { type: 'done' }>, cores: number[]): string {
  const lines = [
    'Core,Thread             Transfers        Bandwidth           Failed      Miscompares',
    '-'.repeat(84),
  ];
  let xfers = 0;
  let bytes = 0;
  let failed = 0;
  let mis = 0;
  const s = r.seconds;
  for (const t of [...r.threads].sort((x, y) => x.reactor - y.reactor || x.thread - y.thread)) {
    lines.push(
      `${`${cores[t.reactor] ?? t.reactor},${t.thread}`.padEnd(16)}${pad(`${Math.round(t.transfers / s)}/s`, 15)}${pad(`${Math.round(t.bytes / s / 1048576)} MiB/s`, 17)}${pad(t.failed, 17)}${pad(t.miscompares, 17)}`,
    );
    xfers += t.transfers;
    bytes += t.bytes;
    failed += t.failed;
    mis += t.miscompares;
  }
  lines.push('='.repeat(84));
  lines.push(
    `${'Total'.padEnd(16)}${pad(`${Math.round(xfers / s)}/s`, 15)}${pad(`${Math.round(bytes / s / 1048576)} MiB/s`, 17)}${pad(failed, 17)}${pad(mis, 17)}`,
  );
  return lines.join('\n');
}

export const accelPerf: Command = {
  name: 'accel-perf',
  summary: "SPDK accel_perf: an accel module's operations per second and bandwidth",
  usage: USAGE,
  async run(argv) {
    const p = parse(argv);
    let cores: number[];
    try {
      cores = parseCoreMask(p.mask);
    } catch (e) {
      throw new UsageError(`-m: ${(e as Error).message}`);
    }
    let model: IoatModel | null = null;
    const ioatShares: PciDeviceShare[][] = cores.map(() => []);
    if (p.ioatModel !== null || p.module === 'ioat') {
      if (p.ioatModel === null)
        throw new UsageError('-M ioat needs I/OAT channels: --ioat-model N (no hardware here)');
      const spare = [...Array(cpuCount()).keys()].find((c) => !cores.includes(c));
      model = await IoatModel.start({ channels: p.ioatModel, core: spare });
      model.devices.forEach((d, i) => {
        d.enableBusMaster();
        ioatShares[i % cores.length].push(d.share());
      });
    }
    const out = process.stdout;
    let failed = false;
    try {
      const app = await startApp({
        mask: p.mask,
        main: new URL(import.meta.resolve('@storkit/accel/perf')),
        mainArg: { ...p.args, ioatShares } satisfies AccelPerfArgs,
        loop: { idleUs: false },
        onReport: (v) => {
          const r = v as AccelPerfReport;
          if (r.type === 'error') {
            failed = true;
            process.stderr.write(`accel-perf: ${r.message}\n`);
          } else if (r.type === 'started') {
            out.write(
              `${formatConfig(p, cores, r.assignments[p.args.workload])}\n\nRunning for ${p.args.seconds} seconds...\n\n`,
            );
          } else {
            out.write(`${formatResults(r, cores)}\n`);
            if (r.threads.some((t) => t.failed > 0 || t.miscompares > 0)) failed = true;
          }
        },
      });
      const res = await app.done;
      if (res.error !== undefined) process.stderr.write(`accel-perf: ${res.error}\n`);
      if (res.leaked.length > 0)
        process.stderr.write(`accel-perf: leaked at shutdown: ${res.leaked.join('; ')}\n`);
      return res.code !== 0 || failed ? 1 : 0;
    } finally {
      await model?.stop();
    }
  },
};
