// The arithmetic of `npm run bench:spdk` (spdk.ts), kept free of processes and clocks so that a test
// can check it: which side of a pair goes first, the median of the pairs' ratios, a target's
// CPU-seconds per million I/Os, and the parsers of the programs' outputs.

export type Side = 'storkit' | 'spdk';

/** One side of a pair: what the client measured and what the target (or bdevperf) spent. */
export interface SideRun {
  /** I/Os per second over the client's timed run. */
  iops: number;
  /** The client's timed run, s (I/Os = iops × seconds). */
  seconds: number;
  /** utime + stime of the target process over the timed run, s. */
  cpuSeconds: number;
  /** The client's maximum latency, µs (the snapshot-stall row's figure). */
  maxLatencyUs?: number;
  /** Latency rows: the client's mean and 99th-percentile I/O latency, µs. */
  latency?: Latency;
}

export interface Latency {
  meanUs: number;
  p99Us: number;
}

export interface Pair {
  /** 1-based. */
  index: number;
  first: Side;
  storkit: SideRun;
  spdk: SideRun;
}

export interface RowSummary {
  /** storkit / SPDK per pair, in pair order. */
  ratios: number[];
  medianRatio: number;
  minRatio: number;
  maxRatio: number;
  /** Medians over the pairs of each side's target CPU-seconds per million I/Os. */
  storkitCpuPerMio: number;
  spdkCpuPerMio: number;
  /** Latency rows: medians over the pairs of each side's mean and p99, µs. */
  latency?: { storkit: Latency; spdk: Latency };
}

/**
 * Which side runs first in pair `index` (1-based): SPDK in odd pairs, storkit in even ones, so that
 * over an even number of pairs each side goes first equally often (a machine speeding up or
 * slowing down within a pair then favours neither side in the median).
 */
export function firstOf(index: number): Side {
  if (!Number.isInteger(index) || index < 1) throw new RangeError(`pair index ${index} is not 1, 2, ...`);
  return index % 2 === 1 ? 'spdk' : 'storkit';
}

/** The order in which pair `index` runs its two sides. */
export function orderOf(index: number): [Side, Side] {
  return firstOf(index) === 'spdk' ? ['spdk', 'storkit'] : ['storkit', 'spdk'];
}

/** The median; of an even count, the mean of the middle two. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** CPU-seconds per million I/Os: `cpuSeconds` spent while `iops` ran for `seconds`. */
export function cpuPerMio(r: SideRun): number {
  const ios = r.iops * r.seconds;
  if (!(ios > 0)) throw new RangeError(`no I/Os to spread ${r.cpuSeconds} CPU-s over`);
  return r.cpuSeconds / (ios / 1e6);
}

/**
 * The share of one core the target got over its timed run. SPDK's reactor polls without pause, so
 * below ~0.9 on its side the core was taken by other processes: the pair measured the machine.
 */
export function coreShare(r: SideRun): number {
  return r.cpuSeconds / r.seconds;
}

/** Below this core share on SPDK's (always polling) side, a pair is flagged as starved. */
export const STARVED = 0.9;

/** storkit / SPDK of one pair (IOPS: above 1 storkit served more). */
export function ratioOf(p: Pair): number {
  if (!(p.spdk.iops > 0)) throw new RangeError(`pair ${p.index}: SPDK served no I/O`);
  return p.storkit.iops / p.spdk.iops;
}

export function summarize(pairs: readonly Pair[]): RowSummary {
  const ratios = pairs.map(ratioOf);
  const s: RowSummary = {
    ratios,
    medianRatio: median(ratios),
    minRatio: Math.min(...ratios),
    maxRatio: Math.max(...ratios),
    storkitCpuPerMio: median(pairs.map((p) => cpuPerMio(p.storkit))),
    spdkCpuPerMio: median(pairs.map((p) => cpuPerMio(p.spdk))),
  };
  if (pairs.length > 0 && pairs.every((p) => p.storkit.latency && p.spdk.latency)) {
    const med = (side: 'storkit' | 'spdk'): Latency => ({
      meanUs: median(pairs.map((p) => (p[side].latency as Latency).meanUs)),
      p99Us: median(pairs.map((p) => (p[side].latency as Latency).p99Us)),
    });
    s.latency = { storkit: med('storkit'), spdk: med('spdk') };
  }
  return s;
}

/**
 * utime + stime, in clock ticks, from the text of /proc/PID/stat. The command name (field 2) is in
 * parentheses and may hold spaces and ')', so fields are counted from the last ')'.
 */
export function statTicks(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/PID/stat line: ${stat.slice(0, 80)}`);
  // after ") ": field 3 (state) is [0], so field 14 (utime) is [11] and field 15 (stime) [12]
  const f = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const u = Number(f[11]);
  const s = Number(f[12]);
  if (!Number.isFinite(u) || !Number.isFinite(s)) throw new Error(`no utime/stime in ${stat.slice(0, 80)}`);
  return u + s;
}

/**
 * The IOPS of the `Total` line that SPDK's bdevperf, storkit's bdevperf and spdk_nvme_perf all print
 * (`Total<spaces>: [<empty column>] IOPS MiB/s ...`).
 */
export function totalIops(out: string): number {
  const m = /^[ \t\r]*Total[ \t]*:[ \t]*([0-9]+(?:\.[0-9]+)?)/m.exec(out);
  if (m === null) throw new Error('no "Total : IOPS" line in the output');
  return Number(m[1]);
}

/** The maximum latency (µs) of the same `Total` line: its last column. */
export function totalMaxLatencyUs(out: string): number {
  const m = /^[ \t\r]*Total[ \t]*:([^\n]*)$/m.exec(out);
  if (m === null) throw new Error('no "Total :" line in the output');
  const cols = m[1].trim().split(/\s+/);
  const v = Number(cols[cols.length - 1]);
  if (cols.length < 3 || !Number.isFinite(v)) throw new Error(`no latency columns in "Total :${m[1]}"`);
  return v;
}

/** libiscsi iscsi-perf's last `iops average N` (it redraws its progress line with '\r'). */
export function iscsiPerfIops(out: string): number {
  const all = [...out.matchAll(/iops average ([0-9]+)/g)];
  if (all.length === 0) throw new Error('no "iops average" in iscsi-perf output');
  return Number(all[all.length - 1][1]);
}

/**
 * Mean and 99th-percentile latency (µs) from the output of a client run with SPDK's latency
 * summary on (spdk_nvme_perf -L, SPDK's and storkit's bdevperf -l): the mean is the `Total` line's
 * Average column (third from the end in both programs' tables), the p99 the summary's `99.00000%`
 * line (the first one: with several jobs, the first job's).
 */
export function latencyOf(out: string): Latency {
  const total = /^[ \t\r]*Total[ \t]*:([ \t0-9.]+)$/m.exec(out);
  const cols =
    total === null
      ? []
      : total[1]
          .trim()
          .split(/[ \t]+/)
          .map(Number);
  if (cols.length < 3 || cols.some((c) => !Number.isFinite(c)))
    throw new Error('no "Total : ... Average min max" line in the output');
  const p99 = /^[ \t]*99\.00000%[ \t]*:[ \t]*([0-9]+(?:\.[0-9]+)?)us/m.exec(out);
  if (p99 === null) throw new Error('no "99.00000% : ...us" latency summary line (-L / -l) in the output');
  return { meanUs: cols[cols.length - 3], p99Us: Number(p99[1]) };
}
