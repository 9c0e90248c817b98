// What a reactor pays per poll of an idle ring (one napi call, no syscall), next to the
// bare cost of a napi call (ticks) in the same run.

import { micro } from '@storkit/bench';
import { ticks, Uring } from '../src/index.js';

const ring = new Uring(32);
const N = 1000;
let sink = 0;
const onComplete = (ud: number) => {
  sink += ud;
};
await micro('io_uring poll cost', [
  {
    name: 'Uring.reap on an idle ring',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += ring.reap(onComplete);
    },
  },
  {
    name: 'baseline: ticks() (bare napi call)',
    baseline: true,
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += ticks();
    },
  },
  {
    name: 'Uring nop: prep + submit + wait + reap',
    batch: 1,
    fn: () => {
      ring.nop(1);
      ring.submit();
      ring.wait(1);
      ring.reap(onComplete);
    },
  },
]);
ring.close();
if (sink === 0.5) console.log(sink);
