import { setImmediate } from 'node:timers';

import { ticksToUsOf, usToTicksOf } from './clock.js';
import type { MeshEndpoint } from './mesh.js';
import type { Reactor } from './reactor.js';

// Node 20 has Atomics.waitAsync; TypeScript's ES2023 lib does not declare it.
type WaitAsync = (
  a: Int32Array,
  i: number,
  v: number,
  timeoutMs?: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export interface LoopOptions {
  /** Longest run of iterations before yielding to libuv (sockets, timers, comlink calls). */
  sliceUs?: number;
  /** Sleep after this long without a busy iteration; false: poll forever (SPDK's polling mode). */
  idleUs?: number | false;
  /** Longest sleep while an active poller is registered (active pollers do not run while asleep). */
  maxSleepUs?: number;
  /** Account busy/idle ticks per poller (two clock reads per poller run; default off). */
  pollerTicks?: boolean;
  /**
   * End a slice early once the reactor has been idle this long within it, so libuv reads sockets
   * without waiting out the slice. Apps whose work arrives on sockets (the targets) want 0-20 µs;
   * pure ring traffic does not (a yield costs a few µs). Default: off (only sliceUs ends a slice).
   */
  yieldIdleUs?: number | false;
}

/**
 * The waitAsync timeout for a sleep of `us`. V8 rounds the timeout to whole milliseconds, so one
 * under 0.5 ms returns at once: a reactor whose next timer is that close would spin through the
 * event loop (a 200 us timed poller kept an idle reactor at 100% CPU). Sleep at least 1 ms then (a
 * sub-millisecond timer of an idle reactor runs up to 1 ms late), and never past the deadline
 * otherwise.
 */
export function waitMs(us: number): number {
  return Math.max(1, Math.floor(us / 1000));
}

export const LOOP_DEFAULTS = { sliceUs: 500, idleUs: 500, maxSleepUs: 10_000 } as const;

/**
 * Drives one reactor in a worker: iterations in bounded slices between setImmediate yields, and
 * interrupt-mode sleep on the doorbell when idle. Sleep protocol (no lost wake-ups):
 *   sleeper: v = bell; store sleeping = 1; if rings or queues hold work: clear and run;
 *            else waitAsync(bell, v, until the next timed poller)
 *   sender:  publish ring index; if sleeping == 1 and exchange(sleeping, 0) == 1: bell++, notify
 * Both sides store then load with seq-cst Atomics, so either the sleeper sees the record or the
 * sender sees the flag; a bell bumped before waitAsync starts makes it return at once.
 */
export class ReactorLoop {
  readonly reactor: Reactor;
  readonly mesh: MeshEndpoint;
  readonly #sliceTicks: number;
  readonly #yieldIdleTicks: number;
  readonly #idleTicks: number;
  readonly #maxSleepUs: number;
  #idleSince = 0;
  #running = false;
  #asleep = false;
  #stopped: (() => void) | null = null;
  slices = 0;
  sleeps = 0;
  /** Ticks spent asleep. */
  sleptTicks = 0;
  #sleepStart = 0;

  constructor(reactor: Reactor, mesh: MeshEndpoint, opts: LoopOptions = {}) {
    this.reactor = reactor;
    this.mesh = mesh;
    const c = reactor.clock;
    this.#sliceTicks = usToTicksOf(c, opts.sliceUs ?? LOOP_DEFAULTS.sliceUs);
    const y = opts.yieldIdleUs ?? false;
    this.#yieldIdleTicks = y === false ? Number.POSITIVE_INFINITY : usToTicksOf(c, y);
    const idle = opts.idleUs ?? LOOP_DEFAULTS.idleUs;
    this.#idleTicks = idle === false ? Number.POSITIVE_INFINITY : usToTicksOf(c, idle);
    this.#maxSleepUs = opts.maxSleepUs ?? LOOP_DEFAULTS.maxSleepUs;
    reactor.kick = () => this.wake();
    reactor.pollerTicks = opts.pollerTicks ?? false;
  }

  get running(): boolean {
    return this.#running;
  }
  /** Whether the reactor waits on its doorbell now. */
  get asleep(): boolean {
    return this.#asleep;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#idleSince = this.reactor.clock.now();
    setImmediate(this.#slice);
  }

  /** Stop after the current slice; resolves once the loop no longer runs. */
  stop(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stopped = resolve;
      this.wake();
    });
  }

  /** Wake the reactor from this worker (a libuv callback that fed an active poller). */
  wake(): void {
    if (this.#asleep) this.mesh.ring(this.mesh.self);
  }

  readonly #slice = (): void => {
    if (this.#stopped !== null) {
      this.#finish();
      return;
    }
    this.slices++;
    const r = this.reactor;
    const clock = r.clock;
    clock.sample();
    const start = clock.last;
    r.lastEnd = start; // pollNext starts the slice's first iteration here
    const yieldIdle = this.#yieldIdleTicks;
    let now = start;
    let idleFrom = -1; // start of the current idle run within this slice
    do {
      if (r.pollNext() > 0) {
        this.#idleSince = now;
        idleFrom = -1;
      } else {
        if (now - this.#idleSince >= this.#idleTicks && this.#trySleep(now)) return;
        if (idleFrom < 0) idleFrom = now;
        if (now - idleFrom >= yieldIdle) break;
      }
      now = r.lastEnd;
    } while (now - start < this.#sliceTicks);
    setImmediate(this.#slice);
  };

  #trySleep(now: number): boolean {
    const m = this.mesh;
    const ctl = m.ctl;
    const v = Atomics.load(ctl, m.bellIndex);
    Atomics.store(ctl, m.sleepIndex, 1);
    const r = this.reactor;
    let timeoutUs = Number.POSITIVE_INFINITY;
    const due = r.nextDeadline();
    if (due !== Number.POSITIVE_INFINITY) timeoutUs = ticksToUsOf(r.clock, due - now);
    if (r.hasActivePollers()) timeoutUs = Math.min(timeoutUs, this.#maxSleepUs);
    if (timeoutUs <= 0 || m.hasInbound() || r.hasQueuedMessages() || m.backlog > 0) {
      Atomics.store(ctl, m.sleepIndex, 0);
      return false;
    }
    // Native wake sources (socket groups) arm now: what became ready since the last poll still
    // fires them (level-triggered), so nothing between that poll and this sleep is lost.
    r.beforeSleep();
    this.#asleep = true;
    r.sleeping = true;
    this.sleeps++;
    this.#sleepStart = now;
    const w = waitAsync(
      ctl,
      m.bellIndex,
      v,
      timeoutUs === Number.POSITIVE_INFINITY ? undefined : waitMs(timeoutUs),
    );
    // 'not-equal' (a bell rung since we read it) continues from a macrotask: #onWake runs the next
    // slice directly, and that must not nest inside this one.
    if (w.async) w.value.then(this.#onWake);
    else setImmediate(this.#onWake);
    return true;
  }

  readonly #onWake = (): void => {
    Atomics.store(this.mesh.ctl, this.mesh.sleepIndex, 0);
    this.#asleep = false;
    this.reactor.sleeping = false;
    this.reactor.afterWake();
    const now = this.reactor.clock.now();
    this.sleptTicks += now - this.#sleepStart;
    // Eligible to sleep again at once: a timer that finds nothing to do costs one iteration, not a
    // whole idle period of spinning. A busy iteration after the wake restarts the idle period.
    this.#idleSince = now - this.#idleTicks;
    // Run the next slice now: the wake-up already cost a trip through the event loop, and the slice
    // yields to libuv when it ends anyway.
    this.#slice();
  };

  #finish(): void {
    this.#running = false;
    const done = this.#stopped!;
    this.#stopped = null;
    done();
  }
}
