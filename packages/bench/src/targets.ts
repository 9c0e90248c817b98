#!/usr/bin/env node
// npm run bench:targets -- [FILTER...]: the long target benchmarks, side by side with their peers
// (SPDK, tgtd, qemu-storage-daemon), one after another. A script takes part by a header line
//   # bench:targets [DEFAULT ARGS]
// so new side-by-side scripts join by saying so. Each script prints its own lines; the summary at
// the end repeats the lines that carry figures (IOPS), per script, and which scripts failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { REPO_ROOT } from './run.js';

export interface TargetScript {
  file: string;
  /** Arguments from the script's `# bench:targets` line. */
  args: string[];
}

const MARK = /^# bench:targets(?:[ \t]+(.*))?$/m;

/** Scripts under packages/*\/bench that carry the marker, sorted by path. */
export function findTargetScripts(root: string, filters: readonly string[] = []): TargetScript[] {
  const out: TargetScript[] = [];
  const pkgs = join(root, 'packages');
  if (!existsSync(pkgs)) return out;
  for (const pkg of readdirSync(pkgs).sort()) {
    const dir = join(pkgs, pkg, 'bench');
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) {
      if (!f.endsWith('.sh')) continue;
      const file = join(dir, f);
      const m = MARK.exec(readFileSync(file, 'utf8'));
      if (m === null) continue;
      out.push({ file, args: (m[1] ?? '').split(/\s+/).filter((a) => a !== '') });
    }
  }
  return out.filter((s) => filters.length === 0 || filters.some((f) => relative(root, s.file).includes(f)));
}

export function main(argv: string[]): number {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { root: { type: 'string' }, list: { type: 'boolean', default: false } },
  });
  const root = resolve(values.root ?? REPO_ROOT);
  const scripts = findTargetScripts(root, positionals);
  if (values.list) {
    for (const s of scripts) console.log(`${relative(root, s.file)} ${s.args.join(' ')}`);
    return 0;
  }
  if (scripts.length === 0) {
    console.error(`bench:targets: no marked scripts match ${positionals.join(' ') || '(any)'} under ${root}`);
    return 2;
  }
  const results: { file: string; ok: boolean; lines: string[] }[] = [];
  for (const s of scripts) {
    const name = relative(root, s.file);
    console.log(`\n=== ${name} ${s.args.join(' ')} ===`);
    const r = spawnSync('bash', [s.file, ...s.args], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    process.stdout.write(r.stdout ?? '');
    const lines = (r.stdout ?? '').split('\n').filter((l) => /IOPS/.test(l));
    results.push({ file: name, ok: r.status === 0, lines });
  }
  console.log('\n=== summary ===');
  for (const r of results) {
    console.log(`${r.file}${r.ok ? '' : '  FAILED'}`);
    for (const l of r.lines) console.log(`  ${l.trim()}`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
