// The software NVMe controller's own thread: polls the model, sleeping briefly when idle unless
// it spins (the benchmark gives it a core of its own). Control messages (faults, reads of the
// media, stats, removal, stop) arrive between polling chunks.
import { parentPort, workerData } from 'node:worker_threads';

import { type PciDeviceShare, PciFunctionModel, pinThread } from '@storkit/native';

import { NvmeControllerModel, type NvmeModelFault, type NvmeModelOptions } from './controller-model.js';

export interface ModelWorkerData {
  share: PciDeviceShare;
  options: NvmeModelOptions;
  spin: boolean;
  cpu: number | null;
  /** Words shared with the starter: [HOLD] nonzero stops polling; [COMMANDS] commands done. */
  sync: SharedArrayBuffer;
}

export const SYNC_HOLD = 0;
export const SYNC_COMMANDS = 1;

export type ModelRequest =
  | { id: number; op: 'inject'; fault: NvmeModelFault }
  | { id: number; op: 'media'; nsid: number; offset: number; length: number }
  | { id: number; op: 'fill'; nsid: number; offset: number; data: Uint8Array }
  | { id: number; op: 'stats' }
  | { id: number; op: 'held' }
  | { id: number; op: 'remove' }
  | { id: number; op: 'stop' };

const d = workerData as ModelWorkerData;
const port = parentPort!;
if (d.cpu !== null) pinThread(d.cpu);
const fn = new PciFunctionModel(d.share);
const model = new NvmeControllerModel(fn, d.options);
const nap = new Int32Array(new SharedArrayBuffer(4));
const sync = new Int32Array(d.sync);
let stopped = false;

port.on('message', (m: ModelRequest) => {
  let result: unknown = null;
  switch (m.op) {
    case 'inject':
      model.inject(m.fault);
      break;
    case 'media': {
      const b = model.media(m.nsid);
      result = b === null ? null : b.slice(m.offset, m.offset + m.length);
      break;
    }
    case 'fill':
      model.media(m.nsid)?.set(m.data, m.offset);
      break;
    case 'stats':
      result = { ...model.stats, faults: fn.dmaFaults };
      break;
    case 'held':
      result = model.held;
      break;
    case 'remove':
      fn.remove();
      break;
    case 'stop':
      stopped = true;
      break;
  }
  port.postMessage({ id: m.id, result });
});

async function run(): Promise<void> {
  while (!stopped) {
    const t0 = performance.now();
    let idle = 0;
    while (performance.now() - t0 < 2) {
      if (Atomics.load(sync, SYNC_HOLD) !== 0) continue;
      if (model.poll() > 0) {
        idle = 0;
        Atomics.store(sync, SYNC_COMMANDS, model.stats.commands);
      } else if (++idle > 256 && !d.spin) {
        // Nothing to do for a while: nap 100 µs at a time (tests share the machine).
        Atomics.wait(nap, 0, 0, 0.1);
      }
    }
    await new Promise((r) => setImmediate(r));
  }
  fn.close();
  port.postMessage({ id: -1, result: 'stopped' });
}

void run();
