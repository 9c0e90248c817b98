// The measurement behind alloc.test.ts, run in a worker of its own: heap growth is read from this
// isolate alone, so timers, sockets and garbage left by other tests in the mocha process cannot
// count as the engine's allocation.

import v8 from 'node:v8';
import { parentPort } from 'node:worker_threads';

import { writeU64 } from '@storkit/nvme-spec';

import { base, capsule, connected, ramTarget, tick } from './engine-helpers.js';

export interface AllocResult {
  /** Smallest heap growth per command over the windows with no scavenge, reads then writes. */
  read: number[];
  write: number[];
  /** 64 KiB reads: their data in buffers of the iobuf pool. */
  read64: number[];
  closed: boolean;
  internalErrors: number;
}

const BATCH = 32;

async function bytesPerCommand(send: () => void): Promise<number[]> {
  const samples: number[] = [];
  for (let attempt = 0; attempt < 20 && samples.length < 5; attempt++) {
    const before = v8.getHeapStatistics().used_heap_size;
    for (let i = 0; i < 20; i++) {
      send();
      await tick();
    }
    const grew = v8.getHeapStatistics().used_heap_size - before;
    // A scavenge in the window shrinks the heap: drop that sample.
    if (grew > 0) samples.push(grew / (20 * BATCH));
  }
  return samples;
}

async function measure(): Promise<AllocResult> {
  const { tgt } = ramTarget({ max_queue_depth: 64 }, { blockSize: 4096, numBlocks: 1024 });
  const { io } = await connected(tgt);
  const batch = (write: boolean, blocks = 1): Uint8Array =>
    Buffer.concat(
      Array.from({ length: BATCH }, (_, i) =>
        capsule(
          {
            ...base,
            opcode: write ? 0x01 : 0x02,
            cid: i,
            nsid: 1,
            cdws: [0, 0, blocks - 1],
            sglId: write ? 0x01 : 0x5a,
            sglLen: 4096 * blocks,
            icd: write ? 4096 : 0,
          },
          (dv, s) => writeU64(dv, s + 40, (i * 37) % 1008),
        ),
      ),
    );
  const reads = batch(false);
  const writes = batch(true);
  const reads64 = batch(false, 16);
  for (let i = 0; i < 300; i++) {
    io.send(i % 3 === 0 ? reads : i % 3 === 1 ? writes : reads64);
    await tick();
  }
  const read = await bytesPerCommand(() => io.send(reads));
  const write = await bytesPerCommand(() => io.send(writes));
  const read64 = await bytesPerCommand(() => io.send(reads64));
  const res = { read, write, read64, closed: io.closed, internalErrors: io.qp.stats.internalErrors };
  await tgt.close();
  return res;
}

parentPort!.postMessage(await measure());
