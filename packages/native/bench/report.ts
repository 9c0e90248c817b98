// Shared runner for this package's tinybench suites: every task runs `batch` operations
// per call so per-call harness overhead (~tens of ns) does not swamp ns-scale operations,
// and results are printed per operation.
import { Bench } from 'tinybench';

export interface Case {
  name: string;
  /** Operations one call of `fn` performs. */
  batch: number;
  /** Bytes one operation processes, for GB/s. */
  bytes?: number;
  fn: () => unknown;
}

export async function runSuite(title: string, cases: Case[]): Promise<void> {
  const bench = new Bench({ time: 700, warmupTime: 150 });
  for (const c of cases) bench.add(c.name, c.fn);
  await bench.run();
  const rows = bench.tasks.map((t, i) => {
    const c = cases[i];
    const r = t.result;
    if (r.state !== 'completed')
      return { case: c.name, error: r.state === 'errored' ? String(r.error) : r.state };
    const nsPerOp = (r.latency.mean * 1e6) / c.batch;
    const row: Record<string, string> = {
      case: c.name,
      'ns/op': nsPerOp.toFixed(nsPerOp < 10 ? 2 : 1),
      'M ops/s': (1e3 / nsPerOp).toFixed(2),
      '±%': r.latency.rme.toFixed(1),
    };
    if (c.bytes) row['GB/s'] = (c.bytes / nsPerOp).toFixed(2);
    return row;
  });
  console.log(`\n${title}`);
  console.table(rows);
  if (rows.some((r) => 'error' in r)) process.exitCode = 1;
}
