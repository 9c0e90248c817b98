import type { Clock } from './clock.js';
import { ReactorError } from './errors.js';
import { addLocalReactor, type LocalReactor, removeLocalReactor } from './local-reactors.js';
import { Thread, type ThreadHost } from './thread.js';

/**
 * Something outside the rings that must be able to wake a sleeping reactor (a native socket
 * group): armed just before the reactor sleeps, disarmed when it wakes.
 */
export interface SleepHook {
  arm(): void;
  disarm(): void;
}

/**
 * Something polled once per reactor iteration before the threads (inbound rings). The iteration's
 * start is reactor.lastNow (not an argument: that would box a heap number per call).
 */
export type ReactorSource = () => number;

export interface ReactorOptions {
  index: number;
  clock: Clock;
  /** Hands out thread ids unique across every reactor of the app. */
  allocThreadId: () => number;
}

/**
 * The per-core scheduler state (SPDK's struct spdk_reactor) without the loop that drives it: the
 * worker loop calls poll() in real runs, the test harness calls it directly. One iteration polls
 * the sources (inbound rings) and then every thread once.
 */
export class Reactor implements ThreadHost, LocalReactor {
  readonly index: number;
  readonly clock: Clock;
  readonly threads: Thread[] = [];
  busyTicks = 0;
  idleTicks = 0;
  iterations = 0;
  /** Thread by (id & 0xffff): how ring records, which carry 16 bits of thread id, find their target. */
  readonly byTag: (Thread | undefined)[] = new Array(0x10000).fill(undefined);
  readonly #sources: ReactorSource[] = [];
  readonly #flushes: (() => void)[] = [];
  readonly #sleepHooks: SleepHook[] = [];
  readonly #allocThreadId: () => number;
  #closed = false;
  lastNow = 0;
  /** Clock reading at the end of the last iteration. */
  lastEnd = 0;
  /** Set by the loop that drives this reactor while it sleeps on its doorbell. */
  sleeping = false;
  /** Time each poller run (see ThreadHost.pollerTicks); off by default. */
  pollerTicks = false;
  /** How to wake it; the loop installs its doorbell here. */
  kick: () => void = () => {};

  constructor(opts: ReactorOptions) {
    this.index = opts.index;
    this.clock = opts.clock;
    this.#allocThreadId = opts.allocThreadId;
    addLocalReactor(this);
  }

  /**
   * Create a thread on this reactor (spdk_thread_create pinned here). `id` is for the reserved ids
   * of each reactor's first thread; others get the next free app-wide id.
   */
  createThread(name: string, id = this.#allocThreadId()): Thread {
    if (this.#closed) throw new ReactorError('ESHUTDOWN', `reactor ${this.index} is closed`);
    // Ids are unique app-wide, so a tag clash means an old thread still lives: take the next id.
    // Tag 0xffff is the ring's padding marker, never a thread.
    for (let tries = 0; this.byTag[id & 0xffff] !== undefined || (id & 0xffff) === 0xffff; tries++) {
      if (tries > 0x10000) throw new ReactorError('EINVAL', `reactor ${this.index}: 65536 threads alive`);
      id = this.#allocThreadId();
    }
    const t = new Thread(this, id, name);
    this.threads.push(t);
    this.byTag[id & 0xffff] = t;
    return t;
  }

  /** The live thread with this id, if it runs here. */
  thread(id: number): Thread | undefined {
    const t = this.byTag[id & 0xffff];
    return t !== undefined && t.id === id ? t : undefined;
  }

  addSource(s: ReactorSource): void {
    this.#sources.push(s);
  }

  addSleepHook(h: SleepHook): void {
    this.#sleepHooks.push(h);
  }

  removeSleepHook(h: SleepHook): void {
    const i = this.#sleepHooks.indexOf(h);
    if (i >= 0) this.#sleepHooks.splice(i, 1);
  }

  /** The loop is about to sleep (after its last look at the rings): arm every hook. */
  beforeSleep(): void {
    const hs = this.#sleepHooks;
    for (let i = 0; i < hs.length; i++) hs[i].arm();
  }

  /** The loop woke up. */
  afterWake(): void {
    const hs = this.#sleepHooks;
    for (let i = 0; i < hs.length; i++) hs[i].disarm();
  }

  /** Run `f` at the end of every iteration (publishing outbound rings once per iteration). */
  addFlush(f: () => void): void {
    this.#flushes.push(f);
  }

  /**
   * One iteration at `now`: sources, then every thread once, then the flushes (also right after the
   * sources when they did work). Returns > 0 when anything did work.
   */
  poll(now = this.clock.now()): number {
    this.lastNow = now;
    return this.#iterate();
  }

  /**
   * One iteration starting where the last one ended (lastEnd), as the worker loop runs them. No
   * tick count crosses a call here: a double argument is boxed into a fresh heap number whenever
   * the compiler does not inline the callee, once per iteration.
   */
  pollNext(): number {
    this.lastNow = this.lastEnd;
    return this.#iterate();
  }

  #iterate(): number {
    const now = this.lastNow;
    let busy = 0;
    const src = this.#sources;
    for (let i = 0; i < src.length; i++) busy += src[i]();
    const fl = this.#flushes;
    // Replies sent by handlers run from the rings go out now, not after every thread has polled:
    // a round trip between reactors waits for this publish on each hop.
    if (busy > 0) for (let i = 0; i < fl.length; i++) fl[i]();
    const ts = this.threads;
    // One clock read per thread (SPDK passes each thread's end time on as the next one's start):
    // the reactor's own accounting and the loop's next iteration reuse the last reading. Handlers
    // run from the rings count as reactor busy time, not as the first thread's.
    const clock = this.clock;
    let t0 = now;
    if (busy > 0) {
      clock.sample();
      t0 = clock.last;
    }
    let polled = 0;
    // A thread that exits during its poll leaves the array: revisit the index it vacated.
    for (let i = 0; i < ts.length; i++) {
      const t = ts[i];
      t.pollStart = t0;
      busy += t.pollStarted();
      t0 = t.lastEnd;
      polled++;
      if (ts[i] !== t) i--;
    }
    for (let i = 0; i < fl.length; i++) fl[i]();
    let end = t0;
    if (polled === 0) {
      clock.sample();
      end = clock.last;
    }
    this.lastEnd = end;
    if (busy > 0) this.busyTicks += end - now;
    else this.idleTicks += end - now;
    this.iterations++;
    return busy;
  }

  /** The earliest timed-poller deadline over all threads, in ticks (Infinity when none). */
  nextDeadline(): number {
    let d = Number.POSITIVE_INFINITY;
    for (const t of this.threads) d = Math.min(d, t.nextDeadline());
    return d;
  }

  /** Whether any thread has messages queued. */
  hasQueuedMessages(): boolean {
    for (const t of this.threads) if (t.pendingMessages > 0) return true;
    return false;
  }

  /** Whether any thread has a running active (period 0) poller. */
  hasActivePollers(): boolean {
    for (const t of this.threads) if (t.hasActivePollers) return true;
    return false;
  }

  /** @internal */
  _threadExited(t: Thread): void {
    const i = this.threads.indexOf(t);
    if (i >= 0) this.threads.splice(i, 1);
    if (this.byTag[t.id & 0xffff] === t) this.byTag[t.id & 0xffff] = undefined;
  }

  /** Forget this reactor in its isolate (after its threads have exited). */
  close(): void {
    this.#closed = true;
    removeLocalReactor(this);
  }
}
