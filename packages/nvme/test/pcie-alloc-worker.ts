// The measurement behind pcie-alloc.test.ts, in a worker of its own so only this isolate's heap
// counts: a PCIe I/O qpair against the software controller (which runs in a worker of its own, on
// a null namespace) doing 4 KiB reads and writes from DMA buffers. Heap growth per command between
// scavenges is the driver's own allocation on the I/O path: submit, data pointer, doorbells,
// completion polling, callback. (A heap sampling profile of the same loop shows none.)
import v8 from 'node:v8';
import { parentPort } from 'node:worker_threads';

import { DmaRegion } from '@storkit/native';
import type { Completion } from '../src/host/qpair.js';
import { NvmeController } from '../src/index.js';
import { NvmeModelWorker } from '../src/pcie/model/index.js';

export interface PcieAllocResult {
  read: number[];
  write: number[];
  completed: number;
  errors: number;
}

const BATCH = 32;
const IO = 4096;
const tick = () => new Promise((r) => setImmediate(r));

async function measure(): Promise<PcieAllocResult> {
  const m = await NvmeModelWorker.start({
    namespaces: [{ nsid: 1, blockSize: 512, blocks: 1 << 20, null: true }],
  });
  const c = await NvmeController.connect(`trtype:PCIe traddr:${m.address}`);
  const qp = await c.allocIoQpair({ depth: BATCH + 1 });
  const region = DmaRegion.create(BATCH * IO);
  const bufs = Array.from({ length: BATCH }, (_, i) => region.bytes.subarray(i * IO, (i + 1) * IO));
  let completed = 0;
  let errors = 0;
  let left = 0;
  const done: Completion<null> = (_c, status) => {
    completed++;
    left--;
    if (status !== 0) errors++;
  };
  const batch = (write: boolean): void => {
    left = BATCH;
    for (let i = 0; i < BATCH; i++)
      if (write) qp.write(1, i * 8, 8, bufs[i], done, null);
      else qp.read(1, i * 8, 8, bufs[i], done, null);
    while (left > 0) qp.processCompletions();
  };
  const bytesPerCommand = async (write: boolean): Promise<number[]> => {
    const samples: number[] = [];
    for (let attempt = 0; attempt < 20 && samples.length < 5; attempt++) {
      await tick();
      // No await inside the window: the polling loop spins against the model's thread, so what
      // grows is the driver's own.
      const before = v8.getHeapStatistics().used_heap_size;
      for (let i = 0; i < 20; i++) batch(write);
      const grew = v8.getHeapStatistics().used_heap_size - before;
      // A scavenge in the window shrinks the heap: drop that sample.
      if (grew > 0) samples.push(grew / (20 * BATCH));
    }
    return samples;
  };
  for (let i = 0; i < 300; i++) {
    batch(i % 2 === 0);
    await tick();
  }
  const read = await bytesPerCommand(false);
  const write = await bytesPerCommand(true);
  await c.freeIoQpair(qp);
  await c.close();
  region.close();
  await m.stop();
  return { read, write, completed, errors };
}

parentPort!.postMessage(await measure());
