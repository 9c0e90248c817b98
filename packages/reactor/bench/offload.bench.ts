// When does a piscina pool pay off for a reactor? One reactor hashes (SHA-256) a buffer of each
// size back to back, inline or through OffloadPool (8 tasks in flight), while a 200 us timed probe
// records how late the reactor gets to it: inline work blocks every other thread and poller of
// the reactor for the whole task; offloaded work costs a dispatch (tens of us) per task instead.
import os from 'node:os';

import { quick, report } from '@storkit/bench';

import { startApp } from '../src/index.js';
import type { OffloadScenario } from './offload-app.js';

const MAIN = new URL('./offload-app.js', import.meta.url);

async function one(s: OffloadScenario): Promise<Record<string, unknown>> {
  let resolve!: (v: Record<string, unknown>) => void;
  const got = new Promise<Record<string, unknown>>((r) => {
    resolve = r;
  });
  const app = await startApp({
    cores: [0],
    main: MAIN,
    mainArg: s,
    loop: { idleUs: false },
    signals: false,
    onReport: (v) => resolve(v as Record<string, unknown>),
  });
  const r = await got;
  const res = await app.stop(0);
  if (res.code !== 0) throw new Error(JSON.stringify(res));
  return r;
}

console.log(
  `machine: ${os.cpus()[0]?.model} x${os.cpus().length}, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const rows: Record<string, unknown>[] = [];
for (const size of [4096, 65536, 1 << 20]) {
  for (const mode of ['inline', 'offload'] as const) {
    const r = await one({ mode, size, durationUs: quick() ? 200_000 : 1_000_000, inFlight: 8 });
    rows.push(r);
  }
}
console.table(
  rows.map((r) => ({
    size: r.size,
    mode: r.mode,
    'hashes/s': r.hashesPerS,
    'probe late p50 us': r.probeP50LateUs,
    'probe late p99 us': r.probeP99LateUs,
    'probe late max us': r.probeMaxLateUs,
  })),
);
report(
  'SHA-256 on a reactor, inline vs OffloadPool (8 in flight): how late a 200 us timed poller runs',
  rows.map((r) => ({
    name: `${r.mode}, ${Number(r.size) / 1024} KiB hashes: probe late p99`,
    value: Number(r.probeP99LateUs),
    unit: 'µs late (p99)',
    better: 'lower' as const,
    extra: { 'hashes/s': Number(r.hashesPerS), 'probe late p50 us': Number(r.probeP50LateUs) },
  })),
);
console.log(JSON.stringify({ bench: 'reactor.offload', date: new Date().toISOString(), rows }));
