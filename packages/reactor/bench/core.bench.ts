// Per-operation costs of the reactor core in one thread (tinybench): ring records, the mesh
// transport's encode + dispatch, same-reactor messages, an empty thread poll, and the setImmediate
// yield the worker loop takes between slices. Baseline: a plain array push/shift queue.
import { Bench } from 'tinybench';

import { codec, defineHandler, POLLER_IDLE } from '../src/index.js';
import {
  createMeshMemory,
  MeshEndpoint,
  Reactor,
  RingConsumer,
  RingProducer,
  ringBytes,
} from '../src/module.js';
import { createTestHarness, ManualClock } from '../src/testing.js';

const BATCH = 256;

// Raw ring: 256 one-slot records written, published, read, released.
const sab = new SharedArrayBuffer(ringBytes(1024));
const prod = new RingProducer(sab, 0, 1024);
const cons = new RingConsumer(sab, 0, 1024);
let sink = 0;

// Mesh: reactor 0's endpoint sends to a thread of reactor 1 through a real ring; reactor 1 polls.
const mem = createMeshMemory(2, 1024);
const a = new MeshEndpoint(mem, 0);
const b = new MeshEndpoint(mem, 1);
const rb = new Reactor({ index: 1, clock: new ManualClock(), allocThreadId: () => b.allocThreadId() });
b.attach(rb);
rb.createThread('rx', 2);
let got = 0;
const h = defineHandler('bench.core.count', codec.u32, (v) => {
  got += v;
});
const to = { id: 2, reactor: 1 };

// Same-isolate messages through a thread's queue.
const hs = createTestHarness();
const t = hs.threads[0];
const inc = (v: number) => {
  sink += v;
};
const empty = createTestHarness();
empty.setThread(0);
const idlePoller = empty.threads[0].registerPoller(() => POLLER_IDLE, 0, 'idle');
void idlePoller;

const q: number[] = [];
const bench = new Bench({ time: 500 });
bench
  .add(`ring: ${BATCH} records write+publish+read+release`, () => {
    for (let i = 0; i < BATCH; i++) prod.words[prod.reserve(1, 3)] = i;
    prod.publish();
    for (let off = cons.read(); off >= 0; off = cons.read()) sink += cons.words[off];
    cons.release();
  })
  .add(`mesh: ${BATCH} messages send+flush+dispatch (u32 handler)`, () => {
    for (let i = 0; i < BATCH; i++) a.send(to, h, i);
    a.flush();
    rb.poll(0);
  })
  .add(`thread.sendMsg + poll: ${BATCH} closures-free messages`, () => {
    for (let i = 0; i < BATCH; i++) t.sendMsg(inc, i);
    for (let i = 0; i < BATCH / 32; i++) t.poll(0);
  })
  .add(`baseline: array push+shift x${BATCH}`, () => {
    for (let i = 0; i < BATCH; i++) q.push(i);
    while (q.length) sink += q.shift()!;
  })
  .add('thread.poll, one idle active poller', () => {
    empty.threads[0].poll(0);
  })
  .add('setImmediate yield (worker loop slice boundary)', async () => {
    await new Promise((r) => setImmediate(r));
  });

await bench.run();
console.table(
  bench.tasks.map((task) => {
    const r = task.result as { latency?: { mean: number }; mean?: number } | undefined;
    const meanMs = r?.latency?.mean ?? r?.mean ?? Number.NaN;
    const per = task.name.includes(`${BATCH}`) ? BATCH : 1;
    return {
      task: task.name,
      'ns/op': Math.round((meanMs * 1e6) / per),
      'Mops/s': Number((per / meanMs / 1e3).toFixed(2)),
    };
  }),
);
if (got < 0 || sink < 0) console.log('unreachable');
rb.close();
