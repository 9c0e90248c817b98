// The device model's worker: the engines of every channel of one model, polled in a loop on a
// core of their own (as the hardware runs beside the CPU). Plain-memory BARs ring no doorbell, so
// an idle worker naps between looks, a little longer each time, up to a millisecond.
import { parentPort, workerData } from 'node:worker_threads';

import { type PciDeviceShare, PciFunctionModel, pinThread } from '@storkit/native';

import { CTL_HOLD, CTL_STOP, CTL_UNPLUG, CTL_WAKE } from './control.js';
import { ChannelEngine, type EngineOptions } from './engine.js';

interface Init {
  shares: PciDeviceShare[];
  stats: SharedArrayBuffer[];
  control: SharedArrayBuffer;
  engine: EngineOptions;
  core: number | null;
}

const init = workerData as Init;
if (init.core !== null) pinThread(init.core);
const ctl = new Int32Array(init.control);
const fns = init.shares.map((s) => new PciFunctionModel(s));
const engines = fns.map((f, i) => new ChannelEngine(f, new Float64Array(init.stats[i]), init.engine));
parentPort?.postMessage('ready');

/** Idle polls before the first nap. */
const SPIN = 20_000;

// In a function, not at module top level: V8 optimizes a function's hot loop, not a module's.
function run(): void {
  let idle = 0;
  let nap = 0.02;
  let now = performance.now();
  while (Atomics.load(ctl, CTL_STOP) === 0) {
    if (Atomics.load(ctl, CTL_HOLD) !== 0) {
      Atomics.wait(ctl, CTL_WAKE, 0, 1);
      continue;
    }
    let work = 0;
    let resetting = false;
    for (let i = 0; i < engines.length; i++) {
      if (Atomics.load(ctl, CTL_UNPLUG + i) === 1) {
        engines[i].remove();
        Atomics.store(ctl, CTL_UNPLUG + i, 2);
      }
      work += engines[i].poll(now);
      resetting ||= engines[i].resetting;
    }
    // The clock only matters to a reset in progress (it takes time) and to napping.
    if (resetting) now = performance.now();
    if (work > 0) {
      idle = 0;
      nap = 0.02;
    } else if (++idle > SPIN && !resetting) {
      Atomics.wait(ctl, CTL_WAKE, 0, nap);
      nap = Math.min(nap * 2, 1);
      now = performance.now();
    }
  }
}

run();
for (const f of fns) f.close();
