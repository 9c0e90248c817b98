// Whole-run messaging figures, framework and baselines side by side in one process run:
//   one-way msg/s between two pinned reactors (handler dispatch included) vs postMessage;
//   round-trip p50/p99 between threads on two polling reactors vs postMessage, piscina.run, comlink;
//   CPU of idle reactors in interrupt mode vs polling mode.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import { quick, report } from '@storkit/bench';
import { cpuCount, tickRate } from '@storkit/native';
import type { Remote } from 'comlink';
import { Piscina } from 'piscina';

import { Comlink, nodeEndpoint } from '../src/comlink.js';
import { type LoopOptions, type ReactorSnapshot, startApp } from '../src/index.js';
import type { BaselineJob } from './baseline-worker.js';
import type { BenchScenario } from './bench-app.js';

const MAIN = new URL('./bench-app.js', import.meta.url);
const WORKER = new URL('./baseline-worker.js', import.meta.url);
const cores = cpuCount() >= 2 ? [0, 1] : [0, 0];
const ns = (t: number) => (t * 1e9) / tickRate;
const results: Record<string, unknown> = {};
// --quick: a tenth of each run, to prove the suite works.
const Q = quick() ? 0.1 : 1;

async function reactorRun(
  scenario: BenchScenario,
  loop: LoopOptions,
  during?: (snap: () => Promise<ReactorSnapshot[]>) => Promise<unknown>,
): Promise<{ report: Record<string, number>; extra: unknown }> {
  let resolveReport!: (r: Record<string, number>) => void;
  const got = new Promise<Record<string, number>>((r) => {
    resolveReport = r;
  });
  const app = await startApp({
    cores,
    main: MAIN,
    mainArg: scenario,
    loop,
    signals: false,
    onReport: (v) => resolveReport(v as Record<string, number>),
  });
  const appReport = await got;
  const extra = during ? await during(() => app.snapshot()) : undefined;
  const r = await app.stop(0);
  if (r.code !== 0) throw new Error(`bench app failed: ${JSON.stringify(r)}`);
  return { report: appReport, extra };
}

function pct(a: Float64Array, p: number): number {
  return a[Math.min(a.length - 1, Math.floor(a.length * p))];
}

function spawn(job: BaselineJob, transfer: MessageChannel['port1'][] = []): Worker {
  return new Worker(WORKER, { workerData: job, transferList: transfer });
}

async function postMessageOneWay(count: number): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  const sink = spawn({ mode: 'sink', core: cores[1], port: port2, count }, [port2]);
  const source = spawn({ mode: 'source', core: cores[0], port: port1, count }, [port1]);
  await new Promise((r) => setTimeout(r, 200));
  const done = new Promise<{ n: number; ms: number }>((r) => sink.once('message', r));
  source.postMessage('go');
  const res = await done;
  await Promise.all([sink.terminate(), source.terminate()]);
  return res.n / (res.ms / 1000);
}

async function timeRoundTrips(rounds: number, once: (i: number) => Promise<unknown>): Promise<Float64Array> {
  for (let i = 0; i < Math.min(2000, rounds); i++) await once(i);
  const lat = new Float64Array(rounds);
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await once(i);
    lat[i] = (performance.now() - t0) * 1e6;
  }
  return lat.sort();
}

function rttRow(name: string, lat: Float64Array): Record<string, number | string> {
  return {
    name,
    p50_ns: Math.round(pct(lat, 0.5)),
    p99_ns: Math.round(pct(lat, 0.99)),
    min_ns: Math.round(lat[0]),
  };
}

async function postMessageRtt(rounds: number): Promise<Float64Array> {
  // The main thread drives an echo worker: awaiting each reply, as a request/response caller would.
  const { port1, port2 } = new MessageChannel();
  const echo = spawn({ mode: 'echo', core: cores[1], port: port2 }, [port2]);
  let pending: ((v: unknown) => void) | null = null;
  port1.on('message', (v) => pending?.(v));
  const lat = await timeRoundTrips(rounds, (i) => {
    const p = new Promise((r) => {
      pending = r;
    });
    port1.postMessage(i);
    return p;
  });
  port1.close();
  await echo.terminate();
  return lat;
}

async function comlinkRtt(rounds: number): Promise<Float64Array> {
  const w = spawn({ mode: 'comlink', core: cores[1] });
  const api = Comlink.wrap<{ echo(v: number): number }>(nodeEndpoint(w)) as Remote<{
    echo(v: number): number;
  }>;
  const lat = await timeRoundTrips(rounds, (i) => api.echo(i));
  api[Comlink.releaseProxy]();
  await w.terminate();
  return lat;
}

async function piscinaRtt(rounds: number): Promise<Float64Array> {
  const pool = new Piscina({
    filename: new URL('./piscina-echo.js', import.meta.url).href,
    minThreads: 1,
    maxThreads: 1,
  });
  const lat = await timeRoundTrips(rounds, (i) => pool.run(i));
  await pool.destroy();
  return lat;
}

function threadCpuTicks(tid: number): number {
  // utime + stime, fields 14 and 15 of /proc/<pid>/task/<tid>/stat (after the parenthesised name).
  const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function idleCpu(loop: LoopOptions, timerUs: number, seconds: number): Promise<number[]> {
  const { extra } = await reactorRun({ kind: 'idle', timerUs }, loop, async (snap) => {
    await new Promise((r) => setTimeout(r, 300));
    const tids = (await snap()).map((s) => s.tid);
    const a = tids.map(threadCpuTicks);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const elapsed = (performance.now() - t0) / 1000;
    const b = tids.map(threadCpuTicks);
    // /proc counts in USER_HZ (100 per second on Linux).
    return b.map((x, i) => Number((((x - a[i]) / 100 / elapsed) * 100).toFixed(2)));
  });
  return extra as number[];
}

console.log(
  `machine: ${os.cpus()[0]?.model} x${os.cpus().length}, node ${process.version}, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
console.log(`reactor cores: ${cores.join(',')}; tick rate ${tickRate}`);

// One-way throughput, polling mode (no sleep), 2 s.
{
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { report: r } = await reactorRun({ kind: 'oneway', durationUs: 2_000_000 * Q }, { idleUs: false });
    if (r.sumOk !== 1 || r.received !== r.sent) throw new Error(`one-way lost data: ${JSON.stringify(r)}`);
    runs.push(r.received / (r.elapsed / tickRate));
  }
  const pm: number[] = [];
  for (let i = 0; i < 3; i++) pm.push(await postMessageOneWay(2_000_000 * Q));
  results.oneway = {
    framework_msgs_per_s: runs.map(Math.round),
    postMessage_msgs_per_s: pm.map(Math.round),
    best_ratio: Number((Math.max(...runs) / Math.max(...pm)).toFixed(1)),
  };
  console.log('one-way', JSON.stringify(results.oneway));
  report('one-way messages between two pinned reactors (best of 3)', [
    { name: 'framework, one way', value: Math.round(Math.max(...runs)), unit: 'msg/s', better: 'higher' },
    {
      name: 'postMessage, one way',
      value: Math.round(Math.max(...pm)),
      unit: 'msg/s',
      better: 'higher',
      baseline: true,
    },
  ]);
}

// Round trips, polling mode, 200 k rounds, vs the baselines (20 k awaited rounds each).
{
  const { report: r } = await reactorRun(
    { kind: 'rtt', rounds: 200_000 * Q, warmup: 20_000 * Q },
    { idleUs: false },
  );
  const fw = {
    name: 'framework (2 polling reactors)',
    p50_ns: Math.round(ns(r.p50Ticks)),
    p99_ns: Math.round(ns(r.p99Ticks)),
    min_ns: Math.round(ns(r.minTicks)),
  };
  // The same with both reactors sleeping whenever idle: every hop pays a doorbell wake-up.
  const { report: w } = await reactorRun(
    { kind: 'rtt', rounds: 20_000 * Q, warmup: 2000 * Q },
    { idleUs: 0 },
  );
  const rows = [
    fw,
    {
      name: 'framework, both asleep between hops (interrupt wake)',
      p50_ns: Math.round(ns(w.p50Ticks)),
      p99_ns: Math.round(ns(w.p99Ticks)),
      min_ns: Math.round(ns(w.minTicks)),
    },
    rttRow('postMessage (MessageChannel, awaited)', await postMessageRtt(20_000 * Q)),
    rttRow('comlink call', await comlinkRtt(20_000 * Q)),
    rttRow('piscina.run', await piscinaRtt(20_000 * Q)),
  ];
  results.rtt = rows;
  console.table(rows);
  report(
    'round trip between two threads, p50',
    rows.map((row, i) => ({
      name: String(row.name),
      value: Number(row.p50_ns),
      unit: 'ns round trip (p50)',
      better: 'lower' as const,
      baseline: i >= 2,
      extra: { p99_ns: Number(row.p99_ns), min_ns: Number(row.min_ns) },
    })),
  );
}

// Idle CPU of each reactor over 3 s: interrupt mode (default), with a 10 ms timed poller, and
// polling mode (SPDK's default) as the baseline.
{
  const rows = [
    { mode: 'interrupt, no pollers', cpu_pct: await idleCpu({}, 0, 3 * Q) },
    { mode: 'interrupt, 10 ms timed poller', cpu_pct: await idleCpu({}, 10_000, 3 * Q) },
    { mode: 'polling (idleUs: false)', cpu_pct: await idleCpu({ idleUs: false }, 0, 3 * Q) },
  ];
  results.idle = rows;
  console.table(rows.map((r) => ({ mode: r.mode, reactor0: r.cpu_pct[0], reactor1: r.cpu_pct[1] })));
  report(
    'CPU of an idle reactor',
    rows.map((row, i) => ({
      name: `idle reactor, ${row.mode}`,
      value: Math.max(...row.cpu_pct),
      unit: '% CPU',
      better: 'lower' as const,
      baseline: i === 2,
    })),
  );
}

// What yielding to libuv costs: iterations per second of an idle polling reactor against the
// slice length (each slice ends with a setImmediate yield; longer slices also delay comlink calls).
{
  const rows: Record<string, unknown>[] = [];
  for (const sliceUs of [50, 500, 5000]) {
    const { extra } = await reactorRun(
      { kind: 'idle', timerUs: 0 },
      { idleUs: false, sliceUs },
      async (snap) => {
        const a = await snap();
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, 1000 * Q));
        const b = await snap();
        const s = (performance.now() - t0) / 1000;
        return {
          iterations: (b[1].iterations - a[1].iterations) / s,
          slices: (b[1].slices - a[1].slices) / s,
        };
      },
    );
    const e = extra as { iterations: number; slices: number };
    rows.push({
      slice_us: sliceUs,
      iterations_per_s: Math.round(e.iterations),
      yields_per_s: Math.round(e.slices),
    });
  }
  results.yield = rows;
  console.table(rows);
  report(
    'idle polling reactor, yielding to libuv after each slice',
    rows.map((row) => ({
      name: `loop iterations, ${row.slice_us} us slices`,
      value: Number(row.iterations_per_s),
      unit: 'iterations/s',
      better: 'higher' as const,
    })),
  );
}

console.log(JSON.stringify({ bench: 'reactor.messaging', date: new Date().toISOString(), results }));
