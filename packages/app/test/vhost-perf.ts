// vhost-blk through the whole app, side by side in one run: storkit's virtio-user initiator
// (VirtioUserBlk, this thread, pinned to CPU 0, zero-copy buffers) at QD 128, 4 KiB randread and
// randwrite, against
//   1. `storkit tgt` on one core (CPU 1): vhost_create_blk_controller on a malloc bdev, served
//      through the bdev layer (BdevBlockBackend on the reactor's bdev channel);
//   2. qemu-storage-daemon's vhost-user-blk export of a tmpfs file of the same size, on CPU 1.
// Not a test (mocha skips it): `node packages/app/dist/test/vhost-perf.js` (VHOST_PERF_SECONDS,
// default 5).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IoStatus } from '@storkit/block';
import { cpuCount, pinThread } from '@storkit/native';
import { VirtioUserBlk } from '@storkit/vhost';
import { Logger, Target } from '../src/index.js';
import { Host, removeDir } from './vhost-helpers.js';

const SECONDS = Number(process.env.VHOST_PERF_SECONDS ?? 5);
const MIB = 64;
const QD = 128;
const BS = 4096;

async function run(host: Host, dev: VirtioUserBlk, write: boolean): Promise<{ iops: number; latUs: number }> {
  const blocks = dev.numBlocks / (BS / dev.blockSize);
  const bufs = Array.from({ length: QD }, (_, i) => dev.sharedBuffer(i * BS, BS).fill(0x5a));
  let done = 0;
  let errors = 0;
  let latSum = 0;
  let stop = false;
  let active = 0;
  const t = new Float64Array(QD);
  const cbs = bufs.map((_, i) => (s: number) => {
    active--;
    if (s === IoStatus.SUCCESS) {
      done++;
      latSum += performance.now() - t[i];
    } else if (s !== IoStatus.NOMEM) errors++;
    if (!stop) submit(i);
  });
  const submit = (i: number) => {
    const lba = Math.floor(Math.random() * blocks) * (BS / dev.blockSize);
    t[i] = performance.now();
    active++;
    if (write) dev.writev([bufs[i]], lba, BS / dev.blockSize, cbs[i], null);
    else dev.readv([bufs[i]], lba, BS / dev.blockSize, cbs[i], null);
  };
  for (let i = 0; i < QD; i++) submit(i);
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      for (let k = 0; k < 8; k++) host.poll();
      if (performance.now() - t0 >= SECONDS * 1000) stop = true;
      if (stop && active === 0) resolve();
      else setImmediate(tick);
    };
    tick();
  });
  const secs = (performance.now() - t0) / 1000;
  if (errors > 0) throw new Error(`${errors} I/O errors`);
  return { iops: done / secs, latUs: (latSum / Math.max(1, done)) * 1000 };
}

async function measure(name: string, path: string): Promise<void> {
  const host = new Host();
  const dev = await VirtioUserBlk.attach({
    path,
    name,
    queueSize: QD,
    maxTransfer: BS,
    bufferBytes: QD * BS,
    pump: () => host.poll(),
  });
  for (const write of [false, true]) {
    const r = await run(host, dev, write);
    console.log(
      `${name.padEnd(46)} 4 KiB ${write ? 'randwrite' : 'randread '} QD ${QD}: ${(r.iops / 1000).toFixed(0).padStart(4)} k IOPS, avg ${r.latUs.toFixed(0)} µs`,
    );
  }
  dev.detach();
  host.close();
}

const targetCpu = cpuCount() > 1 ? 1 : 0;
pinThread(0);
const dir = mkdtempSync(join(tmpdir(), 'storkit-vhost-perf-'));
try {
  // 1. storkit tgt, one reactor on the target CPU.
  const target = new Target({
    cores: [targetCpu],
    rpcSocket: join(dir, 'rpc.sock'),
    vhostDir: dir,
    signals: false,
    log: new Logger('error', () => {}),
    config: {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_malloc_create',
              params: { name: 'Malloc0', num_blocks: (MIB << 20) / 512, block_size: 512 },
            },
          ],
        },
        {
          subsystem: 'vhost_blk',
          config: [
            { method: 'vhost_create_blk_controller', params: { ctrlr: 'vhost.0', dev_name: 'Malloc0' } },
          ],
        },
      ],
    },
  });
  await target.start();
  await measure(`storkit tgt vhost-blk, Malloc0 bdev (core ${targetCpu})`, join(dir, 'vhost.0'));
  await target.stop();

  // 2. qemu-storage-daemon on a tmpfs file of the same size, on the same CPU.
  const img = `/dev/shm/storkit-vhost-perf-${process.pid}.img`;
  writeFileSync(img, Buffer.alloc(MIB << 20));
  const sock = join(dir, 'qsd.sock');
  const qsd = spawn(
    'taskset',
    [
      '-c',
      String(targetCpu),
      'qemu-storage-daemon',
      '--blockdev',
      `driver=file,node-name=f,filename=${img}`,
      '--export',
      `type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=${sock},writable=on`,
    ],
    { stdio: 'inherit' },
  );
  try {
    for (let i = 0; !existsSync(sock); i++) {
      if (i > 400) throw new Error('qemu-storage-daemon did not start');
      await new Promise((r) => setTimeout(r, 25));
    }
    await measure(`qemu-storage-daemon vhost-user-blk, tmpfs (CPU ${targetCpu})`, sock);
  } finally {
    qsd.kill('SIGTERM');
    await new Promise((r) => qsd.once('exit', r));
    removeDir(img);
  }
} finally {
  removeDir(dir);
}
