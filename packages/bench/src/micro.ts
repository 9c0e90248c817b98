// Micro-benchmarks through tinybench. Each case's function performs `batch` operations per call so
// the harness's own cost per call (tens of ns) does not swamp ns-scale operations; figures are per
// operation.
import { Bench } from 'tinybench';

import { type BenchRecord, quick, suiteName, writeRecords } from './record.js';

export interface MicroCase {
  name: string;
  /** Operations one call of `fn` performs (default 1). */
  batch?: number;
  /** Bytes one operation processes: adds GB/s. */
  bytes?: number;
  /** A reference point that is not storkit code (plain JS, a Node built-in). */
  baseline?: boolean;
  fn: () => unknown;
}

export interface MicroOptions {
  /** Milliseconds of sampling per case (default 700; always 40 under `--quick`). */
  time?: number;
  /** Milliseconds of warm-up per case (default 150; always 10 under `--quick`). */
  warmupTime?: number;
}

/**
 * Run the cases one after another, print a table, record the figures for the runner's summary,
 * and return them. A case that throws is reported and makes the process exit non-zero.
 */
export async function micro(
  title: string,
  cases: readonly MicroCase[],
  opts: MicroOptions = {},
): Promise<BenchRecord[]> {
  const q = quick();
  const bench = new Bench({
    time: q ? 40 : (opts.time ?? 700),
    warmupTime: q ? 10 : (opts.warmupTime ?? 150),
    ...(q ? { iterations: 4, warmupIterations: 2 } : {}),
  });
  for (const c of cases) bench.add(c.name, c.fn);
  await bench.run();
  const suite = suiteName();
  const records: BenchRecord[] = [];
  const rows = bench.tasks.map((t, i) => {
    const c = cases[i];
    const r = t.result;
    if (r.state !== 'completed') {
      process.exitCode = 1;
      return { case: c.name, error: r.state === 'errored' ? String(r.error) : r.state };
    }
    const nsPerOp = (r.latency.mean * 1e6) / (c.batch ?? 1);
    const extra: Record<string, number> = { 'M ops/s': round(1e3 / nsPerOp) };
    if (c.bytes) extra['GB/s'] = round(c.bytes / nsPerOp);
    records.push({
      suite,
      title,
      kind: 'micro',
      name: c.name,
      value: round(nsPerOp),
      unit: 'ns/op',
      better: 'lower',
      rme: Number(r.latency.rme.toFixed(1)),
      ...(c.baseline ? { baseline: true } : {}),
      extra,
    });
    return {
      case: c.name,
      'ns/op': nsPerOp.toFixed(nsPerOp < 10 ? 2 : 1),
      ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, v.toFixed(2)])),
      '±%': r.latency.rme.toFixed(1),
    };
  });
  console.log(`\n${title}`);
  console.table(rows);
  writeRecords(records);
  return records;
}

/** Four significant digits: enough for figures whose error is a few percent. */
export function round(v: number): number {
  return Number(v.toPrecision(4));
}
