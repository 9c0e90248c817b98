// Allocator costs on the I/O path: pool get/put and aligned malloc/free, with a plain
// JS array free-list as a floor and `new Uint8Array(4096)` as what unpooled code pays.

import { micro } from '@storkit/bench';
import { type DmaAddr, DmaAllocator, DmaPool } from '../src/index.js';

const N = 1000;
const pool = DmaPool.create(1024, 4096, { align: 4096 });
const heap = new DmaAllocator();
const held: number[] = new Array(64).fill(0);
const addrs: DmaAddr[] = new Array(64).fill(0 as DmaAddr);
const arr: number[] = Array.from({ length: 1024 }, (_, i) => i);
const sizes = [512, 4096, 8192, 65536];
let sink = 0;

await micro('DMA allocator', [
  {
    name: 'DmaPool get+put (1 live)',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) pool.put(pool.get());
    },
  },
  {
    name: 'DmaPool 64 gets then 64 puts (per get+put)',
    batch: 64,
    fn: () => {
      for (let i = 0; i < 64; i++) held[i] = pool.get();
      for (let i = 63; i >= 0; i--) pool.put(held[i]);
    },
  },
  {
    name: 'baseline: JS array pop+push',
    baseline: true,
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) arr.push(arr.pop()!);
    },
  },
  {
    name: 'DmaAllocator malloc+free 4 KiB',
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) heap.free(heap.malloc(4096, 4096));
    },
  },
  {
    name: 'DmaAllocator 64 mixed mallocs (512 B-64 KiB) then frees',
    batch: 64,
    fn: () => {
      for (let i = 0; i < 64; i++) addrs[i] = heap.malloc(sizes[i & 3], 512);
      for (let i = 0; i < 64; i++) heap.free(addrs[i]);
    },
  },
  {
    name: 'baseline: new Uint8Array(4096)',
    baseline: true,
    batch: N,
    fn: () => {
      for (let i = 0; i < N; i++) sink += new Uint8Array(4096).length;
    },
  },
]);
pool.close();
heap.close();
if (sink === 0.5) console.log(sink);
