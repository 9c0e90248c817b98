// One benchmark figure, in the one shape every suite reports and the runner collects. A suite runs
// in a child process of the runner; figures travel back as JSON lines appended to a file the runner
// names in the environment (a suite run by hand, without the runner, records nothing).
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';

/** Environment the runner sets for each suite. */
export const ENV = {
  /** File the suite appends its records to (JSON lines). */
  out: 'STORKIT_BENCH_OUT',
  /** The suite's name in the summary (`native/crc`). */
  suite: 'STORKIT_BENCH_SUITE',
  /** `1`: short runs, to prove a suite works rather than to measure (`npm run bench -- --quick`). */
  quick: 'STORKIT_BENCH_QUICK',
} as const;

/** A figure as a suite states it. */
export interface Figure {
  /** The case measured, e.g. `native crc32c, 4 KiB`. */
  name: string;
  value: number;
  /** `ns/op`, `IOPS`, `msg/s`, `µs`, ... Figures are compared only within one unit. */
  unit: string;
  /** Which way is better: latency and cost are lower, throughput higher. */
  better: 'lower' | 'higher';
  /** Relative margin of error of the mean, in percent (tinybench's rme), when the suite has one. */
  rme?: number;
  /** A reference point that is not storkit code (plain JS, a Node built-in, another program). */
  baseline?: boolean;
  /** More columns for the suite's own table and the JSON (GB/s, CPU-seconds, ...). */
  extra?: Record<string, number | string>;
}

/** A figure as the runner keeps it. */
export interface BenchRecord extends Figure {
  suite: string;
  /** The suite's own title for the group of figures (`CRC32C`). */
  title: string;
  /** `micro`: a tinybench task, per operation; `run`: a whole-run measurement. */
  kind: 'micro' | 'run';
}

/** The suite name the runner gave this process, else the script's file name. */
export function suiteName(): string {
  return process.env[ENV.suite] ?? basename(process.argv[1] ?? 'bench').replace(/\.bench\.js$/, '');
}

/** True when the runner asked for short runs (`--quick`). */
export function quick(): boolean {
  return process.env[ENV.quick] === '1';
}

/**
 * Seconds a whole-run case should last: the suite's environment override when set, 1 under
 * `--quick`, else the suite's default.
 */
export function runSeconds(envName: string, dflt: number): number {
  const v = process.env[envName];
  if (v !== undefined && v !== '') return Number(v);
  return quick() ? 1 : dflt;
}

/** Append figures to the runner's record file (nothing when run by hand). */
export function writeRecords(records: readonly BenchRecord[]): void {
  const out = process.env[ENV.out];
  if (!out || records.length === 0) return;
  for (const r of records) {
    if (!Number.isFinite(r.value)) throw new Error(`bench figure ${r.suite}/${r.name} is not a number`);
  }
  appendFileSync(out, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

/** Record whole-run figures (the suite prints its own table). */
export function report(title: string, figures: readonly Figure[]): void {
  const suite = suiteName();
  writeRecords(figures.map((f) => ({ ...f, suite, title, kind: 'run' as const })));
}
