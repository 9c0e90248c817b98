#!/usr/bin/env node
// npm run bench -- [FILTER...] [--quick] [--json] [--compare OLD.json] [--out-dir DIR]
// Runs every suite (packages/*/dist/bench/*.bench.js and examples/*/...), each in a child process of
// its own so suites cannot disturb each other's heap or JIT state, collects their figures, prints one
// summary table and writes docs/bench/latest.{md,svg,json}. FILTERs keep suites whose path contains
// one of them. --json prints the JSON document on stdout (everything else goes to stderr).
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chartSvg } from './chart.js';
import { type BenchRecord, ENV } from './record.js';
import {
  asBenchDoc,
  type BenchDoc,
  compare,
  markdownSummary,
  type SuiteRun,
  textSummary,
} from './summary.js';

/** The repository this file was built in (packages/bench/dist/src/run.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

export interface Suite {
  /** `native/crc` */
  name: string;
  file: string;
}

/** Every built suite under `root`, sorted by path; `filters` keep those whose path contains one. */
export function findSuites(root: string, filters: readonly string[] = []): Suite[] {
  const out: Suite[] = [];
  for (const top of ['packages', 'examples']) {
    const dir = join(root, top);
    if (!existsSync(dir)) continue;
    // fs.globSync needs Node 22; Node 20 is the floor.
    for (const pkg of readdirSync(dir).sort()) {
      const bench = join(dir, pkg, 'dist', 'bench');
      if (!existsSync(bench)) continue;
      for (const f of readdirSync(bench).sort()) {
        if (!f.endsWith('.bench.js')) continue;
        out.push({ name: `${pkg}/${f.slice(0, -'.bench.js'.length)}`, file: join(bench, f) });
      }
    }
  }
  return out.filter((s) => filters.length === 0 || filters.some((f) => relative(root, s.file).includes(f)));
}

export interface RunOptions {
  root: string;
  filters: string[];
  quick: boolean;
  /** Where the suites' own output goes: 1 (stdout), 2 (stderr), or nowhere (their errors still reach stderr). */
  suiteOutput: 1 | 2 | 'ignore';
  /** Seconds before a suite is killed. */
  timeoutS: number;
  command: string;
}

/** Run the suites one after another and gather their figures into one document. */
export function runSuites(suites: readonly Suite[], o: RunOptions): BenchDoc {
  const tmp = mkdtempSync(join(os.tmpdir(), 'storkit-bench-'));
  const runs: SuiteRun[] = [];
  const records: BenchRecord[] = [];
  const loadavg = os.loadavg().map((l) => Number(l.toFixed(2)));
  try {
    for (const [i, s] of suites.entries()) {
      const out = join(tmp, `${i}.jsonl`);
      if (o.suiteOutput !== 'ignore')
        say(o.suiteOutput, `\n=== ${s.name} (${relative(o.root, s.file)}) ===\n`);
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['--expose-gc', s.file], {
        cwd: o.root,
        stdio: ['ignore', o.suiteOutput, 'inherit'],
        timeout: o.timeoutS * 1000,
        env: { ...process.env, [ENV.out]: out, [ENV.suite]: s.name, [ENV.quick]: o.quick ? '1' : '0' },
      });
      const seconds = Number(((performance.now() - t0) / 1000).toFixed(1));
      const got = existsSync(out)
        ? readFileSync(out, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
            .map((l) => JSON.parse(l) as BenchRecord)
        : [];
      records.push(...got);
      const ok = r.status === 0 && got.length > 0;
      if (!ok) {
        const why = r.error
          ? r.error.message
          : r.status !== 0
            ? `exit ${r.status ?? r.signal}`
            : 'no figures recorded (does it report through @storkit/bench?)';
        say(2, `bench: ${s.name} failed: ${why}\n`);
      }
      runs.push({ suite: s.name, file: relative(o.root, s.file), status: ok ? 'ok' : 'failed', seconds });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return {
    format: 'storkit-bench/1',
    date: new Date().toISOString(),
    command: o.command,
    quick: o.quick,
    commit: gitCommit(o.root),
    node: process.version,
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.cpus().length, loadavg },
    suites: runs,
    records,
  };
}

/** Write to stdout (1) or stderr (2). */
function say(fd: 1 | 2, s: string): void {
  (fd === 1 ? process.stdout : process.stderr).write(s);
}

function gitCommit(root: string): string | undefined {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Write latest.json, latest.md and latest.svg into `dir`. */
export function writeSummary(dir: string, doc: BenchDoc, gains?: Map<BenchRecord, number>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(doc, null, 1)}\n`);
  writeFileSync(join(dir, 'latest.md'), markdownSummary(doc, 'latest.svg', gains));
  const sub = `${doc.date.slice(0, 16).replace('T', ' ')} UTC, ${doc.machine.cpu} x${doc.machine.cpus}, load ${doc.machine.loadavg.join(' ')}, ${doc.suites.length} suites`;
  writeFileSync(join(dir, 'latest.svg'), chartSvg(doc.records, sub));
}

export function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      compare: { type: 'string' },
      'out-dir': { type: 'string' },
      root: { type: 'string' },
      timeout: { type: 'string', default: '900' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: npm run bench -- [FILTER...] [--quick] [--json] [--compare OLD.json] [--out-dir DIR] [--timeout S]\n' +
        '  FILTER       run only suites whose path contains it (e.g. packages/native, crc)\n' +
        '  --quick      short runs: proves every suite works, measures nothing worth keeping\n' +
        '  --json       print the run as JSON on stdout (human output goes to stderr)\n' +
        "  --compare F  add each figure's gain over the same figure in F (an earlier --json or latest.json)\n" +
        '  --out-dir D  where latest.{md,svg,json} go (default docs/bench; --quick writes none unless given)',
    );
    return 0;
  }
  const root = resolve(values.root ?? REPO_ROOT);
  const base = values.compare
    ? asBenchDoc(JSON.parse(readFileSync(values.compare, 'utf8')), values.compare)
    : undefined;
  const suites = findSuites(root, positionals);
  if (suites.length === 0) {
    console.error(
      `bench: no suites match ${positionals.join(' ') || '(any)'} under ${root} (did you run 'npm run build'?)`,
    );
    return 2;
  }
  const doc = runSuites(suites, {
    root,
    filters: positionals,
    quick: values.quick,
    suiteOutput: values.json ? 2 : 1,
    timeoutS: Number(values.timeout),
    command: ['npm run bench', ...(argv.length ? ['--', ...argv] : [])].join(' '),
  });
  const gains = base ? compare(base, doc.records) : undefined;
  const summary = `\n=== summary ===\n${textSummary(doc, gains)}\n`;
  say(values.json ? 2 : 1, summary);
  // A --quick run's figures mean nothing: it writes files only where asked to.
  const outDir = values['out-dir'] ?? (values.quick ? undefined : join(root, 'docs', 'bench'));
  if (outDir !== undefined) {
    const dir = resolve(outDir);
    writeSummary(dir, doc, gains);
    say(values.json ? 2 : 1, `written: ${join(dir, 'latest.md')}, latest.svg, latest.json\n`);
  }
  if (values.json) say(1, `${JSON.stringify(doc, null, 1)}\n`);
  return doc.suites.some((s) => s.status === 'failed') ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
