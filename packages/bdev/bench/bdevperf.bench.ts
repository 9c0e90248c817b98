// bdevperf figures (docs/perf-history.md, "Block device layer"): storkit bdevperf on one reactor
// (core 0), 4 KiB, QD 128: null randread, malloc (64 MiB) randread and randwrite. Each run is a
// child process of the storkit CLI so it gets a fresh reactor worker.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { report, runSeconds } from '@storkit/bench';

const cli = fileURLToPath(new URL('../../../cli/dist/src/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'storkit-bdevperf-'));
const seconds = runSeconds('BDEVPERF_SECONDS', 5);

function config(call: object): string {
  const p = join(dir, `${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, JSON.stringify({ subsystems: [{ subsystem: 'bdev', config: [call] }] }));
  return p;
}

const runs: [string, string, object][] = [
  [
    'null',
    'randread',
    { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 262144, block_size: 4096 } },
  ],
  [
    'malloc 64 MiB',
    'randread',
    { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 4096 } },
  ],
  [
    'malloc 64 MiB',
    'randwrite',
    { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 4096 } },
  ],
];

console.log(`bdevperf, one reactor (core 0), 4 KiB, QD 128, ${seconds} s`);
console.log('| bdev | workload | IOPS | MiB/s | avg latency (us) |');
console.log('| --- | --- | --- | --- | --- |');
try {
  for (const [name, w, call] of runs) {
    const r = spawnSync(
      process.execPath,
      [
        cli,
        'bdevperf',
        '--json',
        config(call),
        '-q',
        '128',
        '-o',
        '4096',
        '-w',
        w,
        '-t',
        String(seconds),
        '-m',
        '0x1',
      ],
      {
        encoding: 'utf8',
      },
    );
    const total = /^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)/m.exec(r.stdout);
    if (r.status !== 0 || total === null) {
      console.log(`| ${name} | ${w} | failed: ${r.stderr.trim() || r.stdout.trim()} | | |`);
      process.exitCode = 1;
      continue;
    }
    console.log(
      `| ${name} | ${w} | ${(Number(total[1]) / 1e6).toFixed(2)} M | ${Number(total[2]).toFixed(0)} | ${total[3]} |`,
    );
    report('bdevperf, one reactor, 4 KiB, QD 128', [
      {
        name: `${name} ${w}`,
        value: Math.round(Number(total[1])),
        unit: 'IOPS',
        better: 'higher',
        extra: { 'avg us': Number(total[3]) },
      },
    ]);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
