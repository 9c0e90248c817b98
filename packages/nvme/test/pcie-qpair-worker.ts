// An I/O qpair on another thread (as on another reactor): opened from a grant the controller's
// thread made, writing and reading back its own range of a namespace.
import { parentPort, workerData } from 'node:worker_threads';

import { DmaRegion } from '@storkit/native';

import { pcieTransport } from '../src/index.js';
import type { PcieQpairGrant } from '../src/pcie/qpair.js';

const { grant, nsid, firstLba, blocks, blockSize, seed } = workerData as {
  grant: PcieQpairGrant;
  nsid: number;
  firstLba: number;
  blocks: number;
  blockSize: number;
  seed: number;
};

const qp = await pcieTransport.openIoQpair(grant, {});
const region = DmaRegion.create(2 * blocks * blockSize, { hugepages: 'never' });
const out = region.bytes.subarray(0, blocks * blockSize);
const back = region.bytes.subarray(blocks * blockSize);
for (let i = 0; i < out.length; i++) out[i] = (i * 31 + seed) & 0xff;

function run(submit: (cb: (c: null, s: number) => void) => boolean): Promise<number> {
  return new Promise((resolve) => {
    if (!submit((_c, s) => resolve(s))) resolve(-1);
    const loop = (): void => {
      qp.processCompletions();
      if (qp.outstanding > 0) setImmediate(loop);
    };
    loop();
  });
}

let errors = 0;
// One command per block, QD up to the whole range: many in flight at once.
let pending = blocks;
await new Promise<void>((resolve) => {
  for (let b = 0; b < blocks; b++) {
    const ok = qp.write(
      nsid,
      firstLba + b,
      1,
      out.subarray(b * blockSize, (b + 1) * blockSize),
      (_c: null, s: number) => {
        if (s !== 0) errors++;
        if (--pending === 0) resolve();
      },
      null,
    );
    if (!ok) errors++;
  }
  const loop = (): void => {
    qp.processCompletions();
    if (pending > 0) setImmediate(loop);
  };
  loop();
});
const st = await run((cb) => qp.read(nsid, firstLba, blocks, back, cb, null));
const same = Buffer.compare(Buffer.from(out), Buffer.from(back)) === 0;
const stats = { ...qp.stats };
qp.close();
region.close();
parentPort!.postMessage({ errors, readStatus: st, same, stats });
