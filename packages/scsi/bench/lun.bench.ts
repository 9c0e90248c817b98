// The SCSI layer alone: one LogicalUnit over the RAM backend, 4 KiB READ(10)/WRITE(10) tasks
// issued 32 at a time (reused tasks, as a transport pools them), completions from the backend's
// batched setImmediate.
import { micro } from '@storkit/bench';
import { RamBackend } from '@storkit/block/testing';

import { Nexus, Op, ScsiDevice, ScsiTask } from '../src/index.js';

const BATCH = 32;
const ram = new RamBackend({ name: 'Malloc0', blockSize: 4096, numBlocks: 4096 });
const dev = new ScsiDevice('iqn.bench:t');
dev.addLun(0, ram);
const nexus = new Nexus('iqn.bench:i', 'iqn.bench:i,i,0x1', 'iqn.bench:t', 1);

let left = 0;
let wake: (() => void) | null = null;
const done = () => {
  if (--left === 0 && wake) wake();
};
function makeTasks(op: number): ScsiTask[] {
  return Array.from({ length: BATCH }, (_, i) => {
    const t = new ScsiTask();
    t.cdb = Uint8Array.from([op, 0, 0, 0, (i * 97) >>> 8, (i * 97) & 0xff, 0, 0, 1, 0]);
    t.nexus = nexus;
    t.onDone = done;
    if (op === Op.Write10) {
      t.ensureDataOut(4096).fill(i);
      t.dataOutLength = 4096;
    }
    return t;
  });
}
const reads = makeTasks(Op.Read10);
const writes = makeTasks(Op.Write10);

function batch(tasks: ScsiTask[]): Promise<void> {
  left = BATCH;
  const p = new Promise<void>((r) => {
    wake = r;
  });
  for (const t of tasks) {
    t.status = 0;
    t.senseLength = 0;
    dev.execute(t);
  }
  return p;
}

await micro(
  'SCSI layer alone: one LogicalUnit over the RAM backend',
  [
    { name: `LUN: ${BATCH} x 4 KiB READ(10) (per command)`, batch: BATCH, fn: () => batch(reads) },
    { name: `LUN: ${BATCH} x 4 KiB WRITE(10) (per command)`, batch: BATCH, fn: () => batch(writes) },
  ],
  { time: 1500, warmupTime: 300 },
);
