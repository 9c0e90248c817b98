// Cost of reading the tick source through napi vs performance.now() and process.hrtime.bigint().

import { micro } from '@storkit/bench';
import { ticks } from '../src/index.js';

const N = 1000;
let sink = 0;
await micro('Time sources', [
  {
    name: 'ticks() (napi, TSC)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += ticks();
    },
  },
  {
    name: 'performance.now()',
    baseline: true,
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += performance.now();
    },
  },
  {
    name: 'process.hrtime.bigint()',
    baseline: true,
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += Number(process.hrtime.bigint() & 1n);
    },
  },
]);
if (sink === 0.5) console.log(sink);
