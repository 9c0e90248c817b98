// The app's main module. Every reactor imports it (so the handlers below exist in every worker);
// its default export runs once, on the app thread (reactor 0).
import { ticks, ticksToUs } from '@storkit/native';
import {
  APP_THREAD,
  appReport,
  appStop,
  codec,
  defineHandler,
  forEachChannelGlobal,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  reactorCount,
  reactorIndex,
  reactorThread,
  registerPoller,
  send,
} from '@storkit/reactor';

import { COUNTER, counter, sumCounters } from './counter-device.js';

export interface HelloArgs {
  /** Tokens circulating at once. */
  tokens: number;
  /** Laps each token makes around all reactors. */
  laps: number;
}

// A token: which one, how many hops it made, and when it started (f64 ticks).
const Token = codec.struct('hello.token', { id: 'u32', hops: 'u32', started: 'f64' });
let hopsPerToken = 0;
let finished = 0;
let tokenCount = 0;
let latencyUs = 0;

// Runs on whichever reactor the token reached: count it on this thread's channel and pass it on.
const token = defineHandler('hello.token', Token, (t) => {
  counter().ctx.tokens++;
  const hops = t.hops + 1;
  if (reactorIndex() === 0 && hops >= hopsPerToken) {
    latencyUs += ticksToUs(ticks() - t.started);
    if (++finished === tokenCount) send(APP_THREAD, allHome, undefined);
    return;
  }
  // The decoded struct is the codec's scratch object: send a fresh one onward.
  send(reactorThread((reactorIndex() + 1) % reactorCount()), token, { id: t.id, hops, started: t.started });
});

const allHome = defineHandler('hello.all-home', codec.none, () => {
  forEachChannelGlobal(COUNTER, sumCounters, { total: 0, perReactor: [] as number[] }, (status, sum) => {
    appReport({
      tokens: tokenCount,
      hops: sum.total,
      perReactor: sum.perReactor,
      meanLapUs: Number((latencyUs / tokenCount / (hopsPerToken / reactorCount())).toFixed(2)),
      status,
    });
    appStop(status === 0 ? 0 : 1);
  });
});

export default function main(args: HelloArgs): void {
  const n = reactorCount();
  tokenCount = args.tokens;
  hopsPerToken = args.laps * n;
  // An active poller that does nothing but count iterations: shows up in thread_get_pollers.
  let spins = 0;
  const spin = registerPoller(
    () => {
      spins++;
      return POLLER_IDLE;
    },
    0,
    'hello.spin',
  );
  // A timed poller: progress once every 100 ms.
  const progress: Poller = registerPoller(
    () => {
      appReport({ progress: { finished, spins } });
      if (finished === tokenCount) {
        progress.unregister();
        spin.unregister();
      }
      return POLLER_BUSY;
    },
    100_000,
    'hello.progress',
  );
  const start = ticks();
  for (let i = 0; i < args.tokens; i++) send(reactorThread(1 % n), token, { id: i, hops: 0, started: start });
}
