// Doorbell and register access: Atomics on the worker's view of the mapping vs one napi call each.

import { micro } from '@storkit/bench';
import { MmioRegion } from '../src/index.js';

const bar = MmioRegion.createShared(4096);
const N = 1000;
let sink = 0;
await micro('MMIO (anonymous shared BAR)', [
  {
    name: 'doorbell32 via Atomics.store on the view',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) bar.doorbell32(0x100, i);
    },
  },
  {
    name: 'doorbell32 via napi (fence + volatile store)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) bar.nativeDoorbell32(0x100, i);
    },
  },
  {
    name: 'read32 via Atomics.load on the view',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += bar.read32(0x104);
    },
  },
  {
    name: 'read32 via napi',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += bar.nativeRead32(0x104);
    },
  },
  {
    name: 'write64 via Atomics (BigInt)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) bar.write64(0x108, 5n);
    },
  },
  {
    name: 'write64 via napi (BigInt)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) bar.nativeWrite64(0x108, 5n);
    },
  },
]);
bar.close();
if (sink === 0.5) console.log(sink);
