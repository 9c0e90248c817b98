// Per-operation costs of the reactor core in one thread (tinybench): ring records, the mesh
// transport's encode + dispatch, same-reactor messages, an empty thread poll, and the setImmediate
// yield the worker loop takes between slices. Baseline: a plain array push/shift queue.
import { micro } from '@storkit/bench';

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
await micro(
  'Reactor core, one thread',
  [
    {
      name: `ring: ${BATCH} records write+publish+read+release`,
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) prod.words[prod.reserve(1, 3)] = i;
        prod.publish();
        for (let off = cons.read(); off >= 0; off = cons.read()) sink += cons.words[off];
        cons.release();
      },
    },
    {
      name: `mesh: ${BATCH} messages send+flush+dispatch (u32 handler)`,
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) a.send(to, h, i);
        a.flush();
        rb.poll(0);
      },
    },
    {
      name: `thread.sendMsg + poll: ${BATCH} closures-free messages`,
      batch: BATCH,
      fn: () => {
        for (let i = 0; i < BATCH; i++) t.sendMsg(inc, i);
        for (let i = 0; i < BATCH / 32; i++) t.poll(0);
      },
    },
    {
      name: `baseline: array push+shift x${BATCH}`,
      batch: BATCH,
      baseline: true,
      fn: () => {
        for (let i = 0; i < BATCH; i++) q.push(i);
        while (q.length) sink += q.shift()!;
      },
    },
    { name: 'thread.poll, one idle active poller', fn: () => empty.threads[0].poll(0) },
    {
      name: 'setImmediate yield (worker loop slice boundary)',
      baseline: true,
      fn: async () => {
        await new Promise((r) => setImmediate(r));
      },
    },
  ],
  { time: 500 },
);
if (got < 0 || sink < 0) console.log('unreachable');
rb.close();
