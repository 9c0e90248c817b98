// CRC32C: the native (SSE4.2 crc32 instruction) path vs a pure-JS slice-by-8 table, side by side.

import { micro } from '@storkit/bench';
import { crc32c } from '../src/index.js';
import { crc32cJs } from './crc32c-js.js';

const small = new Uint8Array(4096).map((_, i) => (i * 31) & 0xff);
const big = new Uint8Array(1 << 20).map((_, i) => (i * 17) & 0xff);
if (crc32c(big) !== crc32cJs(big) || crc32c(small, 7) !== crc32cJs(small, 7)) {
  throw new Error('JS baseline disagrees with native CRC32C');
}
let sink = 0;
await micro('CRC32C', [
  {
    name: 'native crc32c, 4 KiB',
    batch: 100,
    bytes: 4096,
    fn: () => {
      for (let i = 0; i < 100; i++) sink ^= crc32c(small);
    },
  },
  {
    name: 'JS slice-by-8, 4 KiB',
    baseline: true,
    batch: 10,
    bytes: 4096,
    fn: () => {
      for (let i = 0; i < 10; i++) sink ^= crc32cJs(small);
    },
  },
  {
    name: 'native crc32c, 1 MiB',
    batch: 1,
    bytes: 1 << 20,
    fn: () => {
      sink ^= crc32c(big);
    },
  },
  {
    name: 'JS slice-by-8, 1 MiB',
    baseline: true,
    batch: 1,
    bytes: 1 << 20,
    fn: () => {
      sink ^= crc32cJs(big);
    },
  },
]);
if (sink === 0.5) console.log(sink);
