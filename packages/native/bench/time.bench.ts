// Cost of reading the tick source through napi vs performance.now() and process.hrtime.bigint().
import { ticks } from '../src/index.js';
import { runSuite } from './report.js';

const N = 1000;
let sink = 0;
await runSuite('Time sources', [
  {
    name: 'ticks() (napi, TSC)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += ticks();
    },
  },
  {
    name: 'performance.now()',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += performance.now();
    },
  },
  {
    name: 'process.hrtime.bigint()',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += Number(process.hrtime.bigint() & 1n);
    },
  },
]);
if (sink === 0.5) console.log(sink);
