// Main module of the messaging benchmarks: imported by every reactor; its default export runs on
// the app thread (reactor 0) and talks to reactor 1's first thread.
import { ticks } from '@storkit/native';

import {
  APP_THREAD,
  appReport,
  codec,
  defineHandler,
  defineSubsystem,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  reactorThread,
  registerPoller,
  send,
  trySend,
} from '../src/index.js';

export type BenchScenario =
  | { kind: 'oneway'; durationUs: number }
  | { kind: 'rtt'; rounds: number; warmup: number }
  | { kind: 'idle'; timerUs: number };

// --- one-way: the app thread streams u32s as fast as the ring takes them; reactor 1 counts and sums.
let rxCount = 0;
let rxSum = 0;
let rxStart = 0;
const onewayResult = defineHandler('bench.oneway.result', codec.json<Record<string, number>>(), (r) =>
  appReport(r),
);
const item = defineHandler('bench.oneway.item', codec.u32, (v) => {
  if (rxCount === 0) rxStart = ticks();
  rxCount++;
  rxSum = (rxSum + v) | 0;
});
const finish = defineHandler(
  'bench.oneway.finish',
  codec.struct('bench.sent', { sent: 'u32', sum: 'i32' }),
  (s) => {
    const elapsed = ticks() - rxStart;
    send(APP_THREAD, onewayResult, {
      kind: 1,
      received: rxCount,
      sent: s.sent,
      sumOk: rxSum === s.sum ? 1 : 0,
      elapsed,
    });
  },
);

function oneway(durationUs: number): void {
  const to = reactorThread(1);
  let seq = 0;
  let sum = 0;
  const pump: Poller = registerPoller(
    () => {
      for (let i = 0; i < 4096; i++) {
        if (!trySend(to, item, seq)) break;
        sum = (sum + seq) | 0;
        seq++;
      }
      return POLLER_BUSY;
    },
    0,
    'pump',
  );
  const stop: Poller = registerPoller(
    () => {
      pump.unregister();
      stop.unregister();
      send(to, finish, { sent: seq, sum });
      return POLLER_BUSY;
    },
    durationUs,
    'stop',
  );
}

// --- round trip: one message in flight; the app thread timestamps, reactor 1 echoes.
const rtts = new Float64Array(1 << 20);
let rounds = 0;
let warmup = 0;
let done = 0;
const rttResult = defineHandler('bench.rtt.result', codec.json<Record<string, number>>(), (r) =>
  appReport(r),
);
const pong = defineHandler('bench.rtt.pong', codec.float64, (sentAt) => {
  const now = ticks();
  if (done >= warmup) rtts[done - warmup] = now - sentAt;
  done++;
  if (done < warmup + rounds) {
    send(reactorThread(1), ping, ticks());
    return;
  }
  const a = rtts.subarray(0, rounds).sort();
  let sum = 0;
  for (const x of a) sum += x;
  send(APP_THREAD, rttResult, {
    kind: 2,
    rounds,
    minTicks: a[0],
    p50Ticks: a[Math.floor(rounds * 0.5)],
    p99Ticks: a[Math.floor(rounds * 0.99)],
    p999Ticks: a[Math.floor(rounds * 0.999)],
    meanTicks: sum / rounds,
  });
});
const ping = defineHandler('bench.rtt.ping', codec.float64, (sentAt) => {
  send(APP_THREAD, pong, sentAt);
});

// --- idle: optionally one timed poller, then nothing.
let timer: Poller | null = null;
defineSubsystem({
  name: 'bench.idle',
  fini(done) {
    timer?.unregister();
    timer = null;
    done();
  },
});
function idle(timerUs: number): void {
  if (timerUs > 0) timer = registerPoller(() => POLLER_IDLE, timerUs, 'timer');
  appReport({ kind: 3 });
}

export default function main(s: BenchScenario): void {
  if (s.kind === 'oneway') oneway(s.durationUs);
  else if (s.kind === 'rtt') {
    rounds = s.rounds;
    warmup = s.warmup;
    send(reactorThread(1), ping, ticks());
  } else idle(s.timerUs);
}
