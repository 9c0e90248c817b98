// Whole-run measurement: 4 KiB random reads, O_DIRECT, queue depth 32, on a 64 MiB file on
// the root filesystem, for a fixed time each, side by side in one process:
// io_uring polled by spinning on reap (a reactor poller), io_uring blocking in wait, and
// Node's fs.read on the libuv threadpool (32 threads) into the same DMA buffers.
process.env.UV_THREADPOOL_SIZE = '32';

import { closeSync, constants, openSync, read, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { report, runSeconds } from '@storkit/bench';

import { DmaRegion, Uring } from '../src/index.js';

const BLOCK = 4096;
const FILE_BLOCKS = (64 * 1024 * 1024) / BLOCK;
const QD = 32;
const SECONDS = runSeconds('STORKIT_BENCH_SECONDS', 3);

const path = join(tmpdir(), `storkit-uring-bench-${process.pid}`);
writeFileSync(path, Buffer.alloc(FILE_BLOCKS * BLOCK, 0x5a));
const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
const region = DmaRegion.create(QD * BLOCK);

let seed = 12345;
function randomBlock(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % FILE_BLOCKS;
}

interface Result {
  name: string;
  ios: number;
  seconds: number;
  cpu: number;
}

function uringRun(name: string, spin: boolean): Result {
  const ring = new Uring(QD);
  const slot = ring.addRegion(region);
  let done = 0;
  let errors = 0;
  const onComplete = (ud: number, res: number) => {
    if (res !== BLOCK) errors++;
    done++;
    ring.read(fd, slot, ud * BLOCK, BLOCK, randomBlock() * BLOCK, ud);
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  for (let i = 0; i < QD; i++) ring.read(fd, slot, i * BLOCK, BLOCK, randomBlock() * BLOCK, i);
  ring.submit();
  let now = t0;
  for (let polls = 0; now < end; polls++) {
    const n = ring.reap(onComplete);
    if (n > 0) ring.submit();
    else if (!spin) ring.wait(1);
    if ((polls & 255) === 0) now = performance.now();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  ring.close();
  if (errors) throw new Error(`${name}: ${errors} I/Os failed`);
  return { name, ios: done, seconds, cpu: (cpu.user + cpu.system) / 1e6 };
}

async function libuvRun(): Promise<Result> {
  let done = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    let live = QD;
    const issue = (i: number) => {
      const view = new Uint8Array(region.buffer, i * BLOCK, BLOCK);
      read(fd, view, 0, BLOCK, randomBlock() * BLOCK, (err, n) => {
        if (err || n !== BLOCK) errors++;
        done++;
        if (performance.now() < end) issue(i);
        else if (--live === 0) resolve();
      });
    };
    for (let i = 0; i < QD; i++) issue(i);
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (errors) throw new Error(`fs.read: ${errors} I/Os failed`);
  return {
    name: 'fs.read (libuv threadpool, 32 threads)',
    ios: done,
    seconds,
    cpu: (cpu.user + cpu.system) / 1e6,
  };
}

try {
  const results = [uringRun('io_uring, spin-polled reap', true), uringRun('io_uring, wait when idle', false)];
  results.push(await libuvRun());
  console.log(`\n4 KiB random read, O_DIRECT, QD ${QD}, 64 MiB file in ${tmpdir()}, ${SECONDS} s each`);
  console.table(
    results.map((r) => ({
      case: r.name,
      'k IOPS': (r.ios / r.seconds / 1e3).toFixed(1),
      'MB/s': ((r.ios * BLOCK) / r.seconds / 1e6).toFixed(0),
      'avg µs (QD/IOPS)': ((QD / (r.ios / r.seconds)) * 1e6).toFixed(0),
      'CPU s / s': (r.cpu / r.seconds).toFixed(2),
      'k IOPS per CPU s': (r.ios / r.cpu / 1e3).toFixed(1),
    })),
  );
  report(
    `4 KiB random read, O_DIRECT, QD ${QD}`,
    results.map((r) => ({
      name: r.name,
      value: Math.round(r.ios / r.seconds),
      unit: 'IOPS',
      better: 'higher' as const,
      baseline: r.name.startsWith('fs.read'),
      extra: {
        'CPU s / s': Number((r.cpu / r.seconds).toFixed(2)),
        'IOPS per CPU s': Math.round(r.ios / r.cpu),
      },
    })),
  );
} finally {
  closeSync(fd);
  region.close();
  rmSync(path);
}
