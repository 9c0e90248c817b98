// Workers for the baselines measured beside the framework: postMessage over a MessageChannel and
// comlink calls. Pinned like reactors so the comparison is like for like.
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';

import { pinThread } from '@storkit/native';

import { Comlink, nodeEndpoint } from '../src/comlink.js';

export type BaselineJob =
  | { mode: 'sink'; core: number; port: MessagePort; count: number }
  | { mode: 'source'; core: number; port: MessagePort; count: number }
  | { mode: 'echo'; core: number; port: MessagePort }
  | { mode: 'comlink'; core: number };

const job = workerData as BaselineJob;
pinThread(job.core);

if (job.mode === 'sink') {
  // Counts messages from the source; reports the span between the first and the last.
  let n = 0;
  let sum = 0;
  let t0 = 0;
  job.port.on('message', (v: number) => {
    if (n === 0) t0 = performance.now();
    n++;
    sum = (sum + v) | 0;
    if (n === job.count) parentPort!.postMessage({ n, sum, ms: performance.now() - t0 });
  });
} else if (job.mode === 'source') {
  parentPort!.once('message', () => {
    for (let i = 0; i < job.count; i++) job.port.postMessage(i);
  });
} else if (job.mode === 'echo') {
  job.port.on('message', (v: unknown) => job.port.postMessage(v));
} else {
  Comlink.expose({ echo: (v: number) => v }, nodeEndpoint(parentPort!));
}
