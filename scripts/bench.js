#!/usr/bin/env node
// Runs every benchmark suite (packages/*/dist/bench/*.bench.js, examples too), one
// child process each so suites cannot disturb each other's heap or JIT state.
// `npm run bench -- FILTER` runs only suites whose path contains FILTER.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const filter = process.argv[2] ?? '';
// fs.globSync needs Node 22; Node 20 is the floor.
const suites = ['packages', 'examples']
  .filter((top) => existsSync(top))
  .flatMap((top) => readdirSync(top).map((p) => join(top, p, 'dist', 'bench')))
  .filter((dir) => existsSync(dir))
  .flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.bench.js'))
      .map((f) => join(dir, f)),
  )
  .filter((f) => f.includes(filter))
  .sort();
if (suites.length === 0) {
  console.error(`no benchmark suites match '${filter}' (did you run 'npm run build'?)`);
  process.exit(2);
}
let failed = 0;
for (const s of suites) {
  console.log(`\n=== ${s} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', s], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
