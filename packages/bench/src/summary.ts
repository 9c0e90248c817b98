// The run's one summary: every suite's figures in one table (text for the terminal, Markdown for
// docs/bench/), a JSON document for CI comparisons, and the comparison against an earlier one.
import type { BenchRecord } from './record.js';

/** What one suite's child process did. */
export interface SuiteRun {
  suite: string;
  file: string;
  status: 'ok' | 'failed';
  seconds: number;
}

/** The JSON document `npm run bench -- --json` prints and docs/bench/latest.json holds. */
export interface BenchDoc {
  format: 'storkit-bench/1';
  date: string;
  command: string;
  /** Short runs (`--quick`): the suites work; the figures mean nothing. */
  quick: boolean;
  commit?: string;
  node: string;
  machine: { cpu: string; cpus: number; loadavg: number[] };
  suites: SuiteRun[];
  records: BenchRecord[];
}

const key = (r: Pick<BenchRecord, 'suite' | 'name' | 'unit'>) => `${r.suite}\u0000${r.name}\u0000${r.unit}`;

/**
 * Gain of each record over the same figure (suite, case, unit) in `base`: > 1 is better whichever
 * way the unit points (a throughput that rose, a latency that fell). Figures without a match are absent.
 */
export function compare(base: BenchDoc, records: readonly BenchRecord[]): Map<BenchRecord, number> {
  const old = new Map(base.records.map((r) => [key(r), r]));
  const out = new Map<BenchRecord, number>();
  for (const r of records) {
    const b = old.get(key(r));
    if (b === undefined || b.value <= 0 || r.value <= 0) continue;
    out.set(r, r.better === 'higher' ? r.value / b.value : b.value / r.value);
  }
  return out;
}

/** Check that a parsed file is a bench document (for --compare). */
export function asBenchDoc(v: unknown, what: string): BenchDoc {
  const d = v as BenchDoc;
  if (typeof d !== 'object' || d === null || d.format !== 'storkit-bench/1' || !Array.isArray(d.records))
    throw new Error(`${what} is not a storkit bench document (format storkit-bench/1)`);
  return d;
}

const TIME_UNITS: [number, string][] = [
  [1e9, 's'],
  [1e6, 'ms'],
  [1e3, 'µs'],
  [1, 'ns'],
];
const TIME_UNIT = /^(ns|µs|us|ms)(?=$|[ /])(.*)$/;

/**
 * A figure with a readable prefix: `1082 ns/op` -> `1.082 µs/op`, `28210 µs late` -> `28.21 ms late`,
 * `412300 IOPS` -> `412.3 k IOPS`.
 */
export function formatFigure(value: number, unit: string): string {
  const t = TIME_UNIT.exec(unit);
  if (t !== null) {
    const ns = value * (t[1] === 'ns' ? 1 : t[1] === 'ms' ? 1e6 : 1e3);
    for (const [f, u] of TIME_UNITS) if (ns >= f || f === 1) return `${sig(ns / f)} ${u}${t[2]}`;
  }
  if (value >= 1e9) return `${sig(value / 1e9)} G ${unit}`;
  if (value >= 1e6) return `${sig(value / 1e6)} M ${unit}`;
  if (value >= 1e4) return `${sig(value / 1e3)} k ${unit}`;
  return `${sig(value)} ${unit}`;
}

function sig(v: number): string {
  return String(Number(v.toPrecision(4)));
}

interface Row {
  suite: string;
  name: string;
  figure: string;
  rme: string;
  gain: string;
}

function rows(doc: BenchDoc, gains?: Map<BenchRecord, number>): Row[] {
  return doc.records.map((r) => {
    const g = gains?.get(r);
    return {
      suite: r.suite,
      name: r.baseline ? `${r.name} (baseline)` : r.name,
      figure: formatFigure(r.value, r.unit),
      rme: r.rme === undefined ? '' : `±${r.rme.toFixed(1)}%`,
      gain: g === undefined ? '' : `x${g.toFixed(2)}`,
    };
  });
}

/** The terminal summary: one aligned table over every suite, then what failed. */
export function textSummary(doc: BenchDoc, gains?: Map<BenchRecord, number>): string {
  const rs = rows(doc, gains);
  const head: Row = {
    suite: 'suite',
    name: 'case',
    figure: 'figure',
    rme: '±',
    gain: gains ? 'vs base' : '',
  };
  const all = [head, ...rs];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const ws = { suite: w('suite'), name: Math.min(w('name'), 64), figure: w('figure'), rme: w('rme') };
  const line = (r: Row) =>
    [
      r.suite.padEnd(ws.suite),
      clip(r.name, 64).padEnd(ws.name),
      r.figure.padStart(ws.figure),
      r.rme.padStart(ws.rme),
      r.gain,
    ]
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rs.map(line)];
  const failed = doc.suites.filter((s) => s.status === 'failed');
  out.push('');
  if (doc.quick) out.push('--quick: short runs that prove the suites work; do not quote these figures');
  out.push(
    `${doc.suites.length} suites, ${doc.records.length} figures, ${failed.length} failed` +
      (failed.length ? `: ${failed.map((s) => s.suite).join(', ')}` : ''),
  );
  if (gains)
    out.push('vs base: gain over the compared run (> 1 is better: faster, cheaper or more throughput)');
  return out.join('\n');
}

function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** docs/bench/latest.md: the same table in Markdown with the run's circumstances. */
export function markdownSummary(doc: BenchDoc, chartFile: string, gains?: Map<BenchRecord, number>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out = [
    '# Benchmark summary (latest `npm run bench`)',
    '',
    `Written by \`${doc.command}\` on ${doc.date}${doc.commit ? ` at commit ${doc.commit.slice(0, 12)}` : ''}.`,
    `Machine: ${doc.machine.cpu} x${doc.machine.cpus}, load average ${doc.machine.loadavg.map((l) => l.toFixed(2)).join(' ')} at the start; Node ${doc.node}.`,
    'Figures from one run on one machine: compare them only with figures of the same run, or as',
    'ratios of back-to-back runs (`npm run bench -- --compare OLD.json`).',
    ...(doc.quick
      ? ['', '**--quick run: short runs that prove the suites work; do not quote these figures.**']
      : []),
    '',
    `![chart](${chartFile})`,
    '',
    `| suite | case | figure | ± |${gains ? ' vs base |' : ''}`,
    `| --- | --- | ---: | ---: |${gains ? ' ---: |' : ''}`,
    ...rows(doc, gains).map(
      (r) => `| ${esc(r.suite)} | ${esc(r.name)} | ${r.figure} | ${r.rme} |${gains ? ` ${r.gain} |` : ''}`,
    ),
  ];
  const failed = doc.suites.filter((s) => s.status === 'failed');
  if (failed.length) out.push('', `Failed suites: ${failed.map((s) => `\`${s.file}\``).join(', ')}.`);
  return `${out.join('\n')}\n`;
}
