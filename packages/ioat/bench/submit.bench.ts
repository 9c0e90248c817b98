// The I/OAT driver's submission cost per operation: descriptors built into the ring and handed to
// the engine in batches (one DMACOUNT write per batch), timed by this thread's CPU clock while the
// device model (on another core) is held, so nothing but submission is measured; then the engine
// is let go and every operation must complete. Issue 17's bar: <= 100 ns per operation.
import os from 'node:os';

import { quick, report } from '@storkit/bench';
import { cpuCount, DmaRegion, pinThread, threadCpuNs } from '@storkit/native';

import { IoatChannel } from '../src/index.js';
import { IoatModel } from '../src/testing.js';

const cores = cpuCount();
pinThread(0);
const model = await IoatModel.start({ channels: 1, core: cores > 1 ? 1 : 0 });
const ch = await IoatChannel.attach(model.devices[0], { ringOrder: 15 });
ch.claim();
const mem = DmaRegion.create(8 << 20);
const OPS = ch.getMaxDescriptors() - 1;
const ROUNDS = quick() ? 3 : 11;
let ok = 0;
let bad = 0;
const done = (_a: unknown, s: number) => (s === 0 ? ok++ : bad++);

/** CPU ns per operation of one round: OPS copies of `size` bytes, flushed every `batch`. */
function round(size: number, batch: number): number {
  model.hold(true);
  const t0 = threadCpuNs();
  for (let i = 0; i < OPS; ) {
    for (let k = 0; k < batch && i < OPS; k++, i++) {
      ch.buildCopyAt(mem, (4 << 20) + (i & 255) * 8192, mem, (i & 255) * 8192, size, done);
    }
    ch.flush();
  }
  const ns = (threadCpuNs() - t0) / OPS;
  model.hold(false);
  const want = ok + OPS;
  while (ok + bad < want) ch.processEvents();
  return ns;
}

console.log(
  `machine: ${os.cpus()[0]?.model} x${cores}, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const rows: { name: string; ns: number }[] = [];
for (const [size, batch] of [
  [4096, 1],
  [4096, 16],
  [64, 16],
]) {
  round(size, batch); // warm up
  const runs = Array.from({ length: ROUNDS }, () => round(size, batch)).sort((a, b) => a - b);
  const ns = runs[runs.length >> 1];
  rows.push({ name: `submit ${size} B copies, ${batch} per DMACOUNT write`, ns });
  console.log(
    `${rows[rows.length - 1].name}: median ${ns.toFixed(1)} ns/op (min ${runs[0].toFixed(1)}, max ${runs[runs.length - 1].toFixed(1)}) over ${ROUNDS} rounds of ${OPS}`,
  );
}
if (bad > 0) throw new Error(`${bad} operations failed`);
report(
  'I/OAT driver submission (device model on another core, held)',
  rows.map((r) => ({ name: r.name, value: r.ns, unit: 'ns/op', better: 'lower' as const })),
);
await ch.detach();
mem.close();
await model.stop();
