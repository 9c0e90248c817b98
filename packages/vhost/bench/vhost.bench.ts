// vhost-blk, whole-run measurement: storkit's virtio-user initiator (this thread) against
// (1) storkit's vhost-blk target on a RAM backend, polled by one reactor in a worker thread, and
// (2) qemu-storage-daemon's vhost-user-blk export of a tmpfs file (same size), in the same run.
// 4 KiB random reads and writes at QD 128. Also both sides polled by one thread (case 0), which
// shows the per-core cost without cross-thread scheduling. Env: VHOST_BENCH_SECONDS (default 3).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { report, runSeconds } from '@storkit/bench';
import { IoStatus } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { cpuCount, pinThread } from '@storkit/native';

import { BlkDevice, VhostController, VirtioUserBlk } from '../src/index.js';
import { pumpFor, wallClockReactor } from './pump.js';

const SECONDS = runSeconds('VHOST_BENCH_SECONDS', 3);
const MIB = 64;
const QD = 128;
const BS = 4096;

const { h, pump } = wallClockReactor();

/** QD outstanding 4 KiB random I/Os for SECONDS; returns IOPS and mean latency (µs). */
async function run(dev: VirtioUserBlk, write: boolean): Promise<{ iops: number; latUs: number }> {
  const blocks = dev.numBlocks / (BS / dev.blockSize);
  // Buffers in the initiator's shared area: the initiator moves no data (zero copy).
  const bufs = Array.from({ length: QD }, (_, i) => dev.sharedBuffer(i * BS, BS).fill(0x5a));
  let done = 0;
  let errors = 0;
  let latSum = 0;
  let stop = false;
  let active = 0;
  const submit = (i: number) => {
    const lba = Math.floor(Math.random() * blocks) * (BS / dev.blockSize);
    const t0 = performance.now();
    active++;
    const cb = (s: IoStatus) => {
      active--;
      if (s === IoStatus.SUCCESS) {
        done++;
        latSum += performance.now() - t0;
      } else if (s !== IoStatus.NOMEM) errors++;
      if (!stop) submit(i);
    };
    if (write) dev.writev([bufs[i]], lba, BS / dev.blockSize, cb, null);
    else dev.readv([bufs[i]], lba, BS / dev.blockSize, cb, null);
  };
  for (let i = 0; i < QD; i++) submit(i);
  const d0 = done;
  const secs = await pumpFor(
    pump,
    SECONDS,
    () => (stop = true),
    () => active === 0,
  );
  if (errors > 0) throw new Error(`${errors} I/O errors`);
  return { iops: (done - d0) / secs, latUs: (latSum / Math.max(1, done)) * 1000 };
}

/** CPU seconds (user + system) of a process or thread from its /proc stat file. */
function cpuOf(stat: string): number {
  const f = readFileSync(stat, 'latin1');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

async function measure(name: string, path: string, stat: string, baseline = false): Promise<void> {
  const dev = await VirtioUserBlk.attach({
    path,
    name,
    queueSize: 128,
    maxTransfer: BS,
    bufferBytes: QD * BS,
    pump,
  });
  for (const write of [false, true]) {
    const c0 = cpuOf(stat);
    const r = await run(dev, write);
    const cpu = cpuOf(stat) - c0;
    console.log(
      `${name.padEnd(28)} 4 KiB ${write ? 'randwrite' : 'randread '} QD ${QD}: ${Math.round(r.iops / 1000)} k IOPS, ` +
        `avg ${r.latUs.toFixed(0)} µs, target CPU ${(cpu / SECONDS).toFixed(2)} cores, ` +
        `${Math.round((r.iops * SECONDS) / Math.max(cpu, 0.01) / 1000)} k IOPS per target CPU-second`,
    );
    report(`vhost-user-blk through storkit's virtio-user initiator, 4 KiB QD ${QD}`, [
      {
        name: `${name}, ${write ? 'randwrite' : 'randread'}`,
        value: Math.round(r.iops),
        unit: 'IOPS',
        better: 'higher',
        baseline,
        extra: {
          'avg us': Number(r.latUs.toFixed(1)),
          'target CPU cores': Number((cpu / SECONDS).toFixed(2)),
        },
      },
    ]);
  }
  dev.detach();
}

// 0. storkit initiator and target polled by the same thread (one core does both sides).
{
  const path = `/tmp/storkit-vhost-bench-1t-${process.pid}.sock`;
  const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: (MIB << 20) / 512 });
  const ctrl = new VhostController({ name: 'bench1t', socketPath: path, device: new BlkDevice(ram) });
  ctrl.start();
  await measure('storkit, one thread for both', path, `/proc/self/task/${process.pid}/stat`);
  ctrl.close();
}

// 1. storkit target in a worker pinned to the last CPU, the initiator pinned to CPU 0.
if (cpuCount() > 1) pinThread(0);
const sPath = `/tmp/storkit-vhost-bench-${process.pid}.sock`;
const worker = new Worker(new URL('./target-worker.js', import.meta.url), {
  workerData: { path: sPath, mib: MIB },
});
worker.on('error', (e) => {
  console.error('target worker failed:', e);
  process.exitCode = 1;
});
const { tid } = (await new Promise((r) => worker.once('message', r))) as { tid: number };
await measure('storkit vhost-blk (RAM)', sPath, `/proc/self/task/${tid}/stat`);
worker.postMessage('stop');
await new Promise((r) => worker.once('message', r));
await worker.terminate();

// 2. qemu-storage-daemon on a tmpfs file of the same size.
const img = `/dev/shm/storkit-vhost-bench-${process.pid}.img`;
const qPath = `/tmp/storkit-vhost-bench-qsd-${process.pid}.sock`;
writeFileSync(img, Buffer.alloc(MIB << 20));
const qsd = spawn(
  'qemu-storage-daemon',
  [
    '--blockdev',
    `driver=file,node-name=f,filename=${img}`,
    '--export',
    `type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=${qPath},writable=on`,
  ],
  { stdio: 'inherit' },
);
try {
  for (let i = 0; i < 100 && !existsSync(qPath); i++) await new Promise((r) => setTimeout(r, 50));
  await measure('qemu-storage-daemon (tmpfs)', qPath, `/proc/${qsd.pid}/stat`, true);
} finally {
  qsd.kill();
  rmSync(img, { force: true });
}
h.close();
