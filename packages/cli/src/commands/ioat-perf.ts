// SPDK's examples/ioat/perf in storkit: the I/OAT driver alone, no accel framework, no reactors.
// This thread keeps DEPTH operations in flight on each channel, handing them over in batches of
// BATCH behind one DMACOUNT write, and reports operations per second, bandwidth, and the driver's
// own CPU time per operation (this thread's CPU clock: it holds on a loaded machine).
import { IoatChannel, ioatProbe } from '@storkit/ioat';
import { IoatModel } from '@storkit/ioat/testing';
import { cpuCount, DmaRegion, pinThread, threadCpuNs } from '@storkit/native';

import { type Command, UsageError } from '../command.js';

const USAGE = `usage: storkit ioat-perf [--ioat-model N] [-w copy|fill] [-q DEPTH] [-o SIZE] [-b BATCH] [-t SECONDS] [-c CORE]

SPDK's ioat_perf: drives every I/OAT channel from one thread and prints, per channel and in
total, operations per second, MiB/s, and the driver's CPU time per operation (submission alone,
and everything including completion polling). Channels come from sysfs (vfio-pci/uio), or from
the I/OAT device model with --ioat-model (no machine here has the hardware).

  --ioat-model N  run the device model with N channels, on a core other than this thread's
  -w WORKLOAD     copy|fill (default copy)
  -q DEPTH        operations in flight per channel (default 64)
  -o SIZE         bytes per operation, k/m suffixes (default 4096)
  -b BATCH        operations per DMACOUNT write (default 16)
  -t SECONDS      run time (default 5)
  -c CORE         pin this thread to CORE (default 0)`;

function size(v: string | undefined): number {
  const m = /^(\d+)([kKmM]?)$/.exec(v ?? '');
  if (m === null) throw new UsageError('-o needs a size');
  return Number(m[1]) * (m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024);
}

function int(v: string | undefined, what: string, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${what} needs an integer in ${min}..${max}`);
  return n;
}

interface Opts {
  model: number | null;
  fill: boolean;
  depth: number;
  size: number;
  batch: number;
  seconds: number;
  core: number;
}

function parse(argv: string[]): Opts {
  const o: Opts = { model: null, fill: false, depth: 64, size: 4096, batch: 16, seconds: 5, core: 0 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--ioat-model') o.model = int(v(), k, 1, 32);
    else if (k === '-w') {
      const w = v();
      if (w !== 'copy' && w !== 'fill') throw new UsageError('-w takes copy|fill');
      o.fill = w === 'fill';
    } else if (k === '-q') o.depth = int(v(), k, 1, 32767);
    else if (k === '-o') o.size = size(v());
    else if (k === '-b') o.batch = int(v(), k, 1, 4096);
    else if (k === '-t') o.seconds = int(v(), k, 1, 3600);
    else if (k === '-c') o.core = int(v(), k, 0, cpuCount() - 1);
    else throw new UsageError(`unknown option '${k}'`);
  }
  if (o.size < 1) throw new UsageError('-o needs at least 1 byte');
  return o;
}

/** One channel's load: DEPTH operations over its own buffers. */
class Load {
  readonly ch: IoatChannel;
  readonly mem: DmaRegion;
  readonly #o: Opts;
  ops = 0;
  failed = 0;
  inflight = 0;
  #next = 0;

  constructor(ch: IoatChannel, o: Opts) {
    this.ch = ch;
    this.#o = o;
    this.mem = DmaRegion.create(o.size * o.depth * 2);
  }

  /** Fill the queue again, BATCH operations per flush; returns how many were queued. */
  refill(): number {
    let n = 0;
    for (let k = this.#batch(); k > 0; k = this.#batch()) n += k;
    return n;
  }

  #batch(): number {
    const o = this.#o;
    let n = 0;
    while (n < o.batch && this.inflight < o.depth) {
      const slot = this.#next++ % o.depth;
      const ok = o.fill
        ? this.ch.buildFillAt(this.mem, slot * o.size, 0x5a5a5a5a, 0x5a5a5a5a, o.size, done, this)
        : this.ch.buildCopyAt(
            this.mem,
            (o.depth + slot) * o.size,
            this.mem,
            slot * o.size,
            o.size,
            done,
            this,
          );
      if (!ok) break;
      this.inflight++;
      n++;
    }
    if (n > 0) this.ch.flush();
    return n;
  }
}

function done(l: Load, status: number): void {
  l.inflight--;
  if (status === 0) l.ops++;
  else l.failed++;
}

export const ioatPerf: Command = {
  name: 'ioat-perf',
  summary: "SPDK ioat_perf: the I/OAT driver's operations per second and CPU cost per operation",
  usage: USAGE,
  async run(argv) {
    const o = parse(argv);
    pinThread(o.core);
    let model: IoatModel | null = null;
    const channels: IoatChannel[] = [];
    try {
      if (o.model !== null) {
        const spare = [...Array(cpuCount()).keys()].find((c) => c !== o.core);
        model = await IoatModel.start({ channels: o.model, core: spare });
        for (const d of model.devices) channels.push(await IoatChannel.attach(d, { ringOrder: 12 }));
      } else {
        const r = await ioatProbe({ channel: { ringOrder: 12 } });
        for (const f of r.failed) process.stderr.write(`ioat-perf: ${f.address}: ${f.error.message}\n`);
        channels.push(...r.channels);
      }
      if (channels.length === 0) {
        process.stderr.write(
          'ioat-perf: no I/OAT channels (bind them with storkit setup, or use --ioat-model N)\n',
        );
        return 1;
      }
      const loads = channels.map((c) => {
        c.claim();
        return new Load(c, o);
      });
      // What a pair of CPU clock reads costs, so it comes out of the submission figure.
      let clock = threadCpuNs();
      for (let i = 0; i < 1000; i++) threadCpuNs();
      const pair = (threadCpuNs() - clock) / 1000;
      let submitNs = 0;
      let submitted = 0;
      const cpu0 = threadCpuNs();
      const t0 = performance.now();
      const end = t0 + o.seconds * 1000;
      let polls = 0;
      // Refill once half the queue has completed: each timed refill queues depth/2 operations or
      // more, so the two clock reads around it weigh little per operation.
      const low = Math.max(0, o.depth >> 1);
      while (performance.now() < end || loads.some((l) => l.inflight > 0)) {
        const stopping = performance.now() >= end;
        for (const l of loads) {
          if (!stopping && l.inflight <= low) {
            clock = threadCpuNs();
            const n = l.refill();
            submitNs += threadCpuNs() - clock - pair;
            submitted += n;
          }
          l.ch.processEvents();
        }
        if ((++polls & 1023) === 0) await new Promise((r) => setImmediate(r));
      }
      const wall = (performance.now() - t0) / 1000;
      const cpu = threadCpuNs() - cpu0;
      const out: string[] = [
        `I/OAT ${o.fill ? 'fill' : 'copy'}: ${o.size} bytes, depth ${o.depth}, batch ${o.batch}, ${channels.length} channel(s)${model ? ' (device model)' : ''}, ${wall.toFixed(1)} s`,
        `${'Channel'.padEnd(16)}${'ops/s'.padStart(12)}${'MiB/s'.padStart(12)}${'failed'.padStart(10)}`,
      ];
      let ops = 0;
      for (const l of loads) {
        out.push(
          `${l.ch.address.padEnd(16)}${(l.ops / wall).toFixed(0).padStart(12)}${((l.ops * o.size) / wall / 1048576).toFixed(0).padStart(12)}${String(l.failed).padStart(10)}`,
        );
        ops += l.ops;
      }
      out.push(
        `${'Total'.padEnd(16)}${(ops / wall).toFixed(0).padStart(12)}${((ops * o.size) / wall / 1048576).toFixed(0).padStart(12)}`,
      );
      out.push(
        `driver CPU per operation: submission ${(submitNs / submitted).toFixed(1)} ns, all (with polling) ${(cpu / ops).toFixed(1)} ns`,
      );
      process.stdout.write(`${out.join('\n')}\n`);
      for (const l of loads) l.mem.close();
      return loads.some((l) => l.failed > 0) ? 1 : 0;
    } finally {
      for (const c of channels) await c.detach();
      await model?.stop();
    }
  },
};
