// Main module of the offload benchmark (one reactor): hash a buffer over and over, inline on the
// reactor or through an OffloadPool, while a 200 us timed probe measures how late the reactor runs.
import { createHash } from 'node:crypto';

import { ticks, ticksToUs } from '@storkit/native';

import {
  appReport,
  OffloadPool,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  registerPoller,
} from '../src/index.js';

export interface OffloadScenario {
  mode: 'inline' | 'offload';
  size: number;
  durationUs: number;
  inFlight: number;
}

const PROBE_US = 200;

export default function main(s: OffloadScenario): void {
  const sab = new SharedArrayBuffer(s.size);
  const view = new Uint8Array(sab);
  for (let i = 0; i < view.length; i++) view[i] = (i * 2654435761) >>> 24;
  const pool =
    s.mode === 'offload' ? new OffloadPool({ filename: new URL('./sha-task.js', import.meta.url) }) : null;
  let done = 0;
  let inFlight = 0;
  const late = new Float64Array(1 << 16);
  let probes = 0;
  let last = ticks();
  const probe = registerPoller(
    () => {
      const now = ticks();
      if (probes < late.length) late[probes++] = Math.max(0, ticksToUs(now - last) - PROBE_US);
      last = now;
      return POLLER_IDLE;
    },
    PROBE_US,
    'probe',
  );
  const onHash = (err: Error | null) => {
    if (err) throw err;
    inFlight--;
    done++;
  };
  const work = registerPoller(
    () => {
      if (pool === null) {
        createHash('sha256').update(view).digest();
        done++;
        return POLLER_BUSY;
      }
      while (inFlight < s.inFlight && pool.run({ sab, len: s.size }, onHash)) inFlight++;
      return POLLER_IDLE;
    },
    0,
    'work',
  );
  const t0 = ticks();
  // Warm up for 100 ms, then measure.
  let measuredFrom = 0;
  let doneAtStart = 0;
  const warm: Poller = registerPoller(
    () => {
      warm.unregister();
      measuredFrom = ticks();
      doneAtStart = done;
      probes = 0;
      return POLLER_BUSY;
    },
    100_000,
    'warmup',
  );
  const stop: Poller = registerPoller(
    () => {
      const elapsedS = ticksToUs(ticks() - measuredFrom) / 1e6;
      work.unregister();
      probe.unregister();
      stop.unregister();
      const l = late.subarray(0, probes).sort();
      appReport({
        mode: s.mode,
        size: s.size,
        hashesPerS: Math.round((done - doneAtStart) / elapsedS),
        probeP50LateUs: Math.round(l[Math.floor(probes * 0.5)]),
        probeP99LateUs: Math.round(l[Math.floor(probes * 0.99)]),
        probeMaxLateUs: Math.round(l[probes - 1]),
        probes,
        totalUs: Math.round(ticksToUs(ticks() - t0)),
      });
      // Close the pool once the tasks in flight have come back.
      if (pool !== null) {
        const closer: Poller = registerPoller(
          () => {
            if (inFlight > 0) return POLLER_IDLE;
            closer.unregister();
            void pool.close();
            return POLLER_BUSY;
          },
          1000,
          'close',
        );
      }
      return POLLER_BUSY;
    },
    100_000 + s.durationUs,
    'stop',
  );
}
