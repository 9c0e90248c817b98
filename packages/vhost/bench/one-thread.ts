// The vhost-blk request path's cost per CPU-second, with as little else as possible: storkit's
// virtio-user initiator and a VhostController (virtio-blk over a 64 MiB RAM backend) polled by
// this one thread, 4 KiB random I/O at QD 128, buffers in the initiator's shared area (no copy on
// its side). Prints IOPS and IOPS per CPU-second of the process for randread, randwrite, twice.
// A/B tool for the target's per-request path (a busy machine moves IOPS, much less the ratio).
// Usage: npx tsc -b packages/vhost && node packages/vhost/dist/bench/one-thread.js [SECONDS]

import { IoStatus } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';

import { BlkDevice, VhostController, VirtioUserBlk } from '../src/index.js';
import { pumpFor, wallClockReactor } from './pump.js';

const SECONDS = Number(process.argv[2] ?? 3);
const QD = 128;
const BS = 4096;

const { pump } = wallClockReactor();
const path = `/tmp/storkit-vhost-one-thread-${process.pid}.sock`;
const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: (64 << 20) / 512 });
const ctrl = new VhostController({ name: 'one', socketPath: path, device: new BlkDevice(ram) });
ctrl.start();
const dev = await VirtioUserBlk.attach({
  path,
  name: 'one',
  queueSize: 128,
  maxTransfer: BS,
  bufferBytes: QD * BS,
  pump,
});
const bufs = Array.from({ length: QD }, (_, i) => dev.sharedBuffer(i * BS, BS));
const blocks = dev.numBlocks / (BS / dev.blockSize);
for (const write of [false, true, false, true]) {
  let done = 0;
  let errors = 0;
  let active = 0;
  let stop = false;
  const submit = (i: number) => {
    const lba = Math.floor(Math.random() * blocks) * (BS / dev.blockSize);
    active++;
    const cb = (s: IoStatus) => {
      active--;
      if (s === IoStatus.SUCCESS) done++;
      else errors++;
      if (!stop) submit(i);
    };
    if (write) dev.writev([bufs[i]], lba, BS / dev.blockSize, cb, null);
    else dev.readv([bufs[i]], lba, BS / dev.blockSize, cb, null);
  };
  for (let i = 0; i < QD; i++) submit(i);
  const c0 = process.cpuUsage();
  const secs = await pumpFor(
    pump,
    SECONDS,
    () => (stop = true),
    () => active === 0,
  );
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  if (errors > 0) throw new Error(`${errors} I/O errors`);
  console.log(
    `${write ? 'randwrite' : 'randread '} QD ${QD}: ${Math.round(done / secs / 1000)} k IOPS, ` +
      `${Math.round(done / cpu / 1000)} k IOPS per CPU-second (controller counted ${ctrl.stats.requests} requests)`,
  );
}
dev.detach();
ctrl.close();
process.exit(0);
