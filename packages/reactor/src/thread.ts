import { type Clock, usToTicksOf } from './clock.js';
import { getThread, setCurrentThread } from './current.js';
import { DeadlineHeap } from './deadline-heap.js';
import { ReactorError } from './errors.js';
import type { AnyChannel } from './io-channel.js';
import { type MsgFn, MsgQueue } from './msg-queue.js';
import { Poller, type PollerFn, PollerState } from './poller.js';
import type { SleepHook } from './reactor.js';

/** What a thread needs from the reactor that runs it. */
export interface ThreadHost {
  /** Reactor index (the SPDK lcore). */
  readonly index: number;
  readonly clock: Clock;
  /** True while the reactor sleeps in interrupt mode: work queued from outside must kick it. */
  readonly sleeping: boolean;
  /** Wake the sleeping reactor. */
  kick(): void;
  /** Arm `h` whenever the reactor goes to sleep (see Reactor.addSleepHook). */
  addSleepHook(h: SleepHook): void;
  removeSleepHook(h: SleepHook): void;
  /** Time every poller run (two clock reads each) into poller.busyTicks / idleTicks. */
  readonly pollerTicks: boolean;
  /** @internal called once when the thread has exited */
  _threadExited(t: Thread): void;
}

export enum ThreadState {
  Running = 0,
  Exiting = 1,
  Exited = 2,
}

/** Messages run per thread per poll: bounds the time one busy sender can hold a reactor. */
export const MSG_BATCH = 32;

/**
 * A lightweight execution context on one reactor (spdk_thread): its own message queue,
 * pollers and io_channels. Everything a thread owns is touched only while it is current.
 */
export class Thread {
  readonly id: number;
  readonly name: string;
  readonly host: ThreadHost;
  busyTicks = 0;
  idleTicks = 0;
  /** Clock reading at the end of the last poll: the reactor starts the next thread from it. */
  lastEnd = 0;
  /** @internal start of the poll in progress (see pollStarted) */ pollStart = 0;
  /**
   * Non-zero while a poller of this thread runs: an id for that run, new for every run. Lets a
   * library read the clock once per poller run (the bdev layer stamps every I/O a poller submits
   * with one reading, as SPDK's modules see one spdk_get_ticks per poll).
   */
  pollerRun = 0;
  #runIds = 0;
  /** @internal */ state: ThreadState = ThreadState.Running;
  /** @internal the io_channels held here, by device */ readonly channels = new Map<object, AnyChannel>();
  /** @internal forEachChannel walks in progress that still have to visit this thread */ pendingIters = 0;
  readonly #queue = new MsgQueue();
  readonly #active: Poller[] = [];
  readonly #timed = new DeadlineHeap();
  readonly #pollers = new Set<Poller>();
  #pollerSeq = 0;
  #iterating = false;
  #activeDirty = false;
  #onExit: (() => void) | null = null;

  /** @internal use reactor.createThread / harness.createThread */
  constructor(host: ThreadHost, id: number, name: string) {
    this.host = host;
    this.id = id;
    this.name = name;
  }

  get reactor(): number {
    return this.host.index;
  }
  get exited(): boolean {
    return this.state === ThreadState.Exited;
  }
  get exiting(): boolean {
    return this.state !== ThreadState.Running;
  }
  /** Messages queued and not yet run. */
  get pendingMessages(): number {
    return this.#queue.length;
  }

  /**
   * Queue `fn(arg)` to run on this thread (spdk_thread_send_msg). Messages from one sender run
   * in the order sent. Closures are fine: this thread lives in the caller's isolate. Throws
   * ESHUTDOWN (and fn never runs) once the thread has exited.
   */
  sendMsg<A>(fn: MsgFn<A>, arg?: A): void {
    if (this.state === ThreadState.Exited) {
      throw new ReactorError('ESHUTDOWN', `thread ${this.name} (${this.id}) has exited`);
    }
    this.#queue.push(fn, arg);
    // Only code outside the loop (a libuv callback, a management call) can find it asleep.
    if (this.host.sleeping) this.host.kick();
  }

  /** Register a poller on this thread: every iteration when periodUs is 0, else every periodUs. */
  registerPoller(fn: PollerFn, periodUs = 0, name = fn.name || 'poller'): Poller {
    this.#own('registerPoller');
    if (this.state === ThreadState.Exited) {
      throw new ReactorError('ESHUTDOWN', `thread ${this.name} (${this.id}) has exited`);
    }
    if (!(periodUs >= 0) || !Number.isFinite(periodUs)) {
      throw new ReactorError('EINVAL', `poller period must be a finite number of us >= 0, got ${periodUs}`);
    }
    // A timed poller never rounds down to 0 ticks: that would make it an active poller.
    const periodTicks = periodUs === 0 ? 0 : Math.max(1, usToTicksOf(this.host.clock, periodUs));
    const p = new Poller(this, fn, periodUs, periodTicks, name, this.#pollerSeq++);
    this.#pollers.add(p);
    this.#schedule(p);
    return p;
  }

  /**
   * Ask the thread to exit (spdk_thread_exit), from the thread itself. It keeps running messages
   * until its pollers are unregistered, its io_channels put and its queue empty, then exits and
   * `onExit` runs (on no thread).
   */
  exit(onExit?: () => void): void {
    this.#own('exit');
    if (this.state !== ThreadState.Running) return;
    this.state = ThreadState.Exiting;
    this.#onExit = onExit ?? null;
  }

  /** Why the thread cannot exit yet, or '' when it can. */
  exitBlocker(): string {
    if (this.#pollers.size > 0) return `${this.#pollers.size} poller(s) still registered`;
    if (this.channels.size > 0) return `${this.channels.size} io_channel(s) still held`;
    if (this.#queue.length > 0) return `${this.#queue.length} message(s) queued`;
    if (this.pendingIters > 0) return `${this.pendingIters} forEachChannel walk(s) pending`;
    return '';
  }

  /**
   * One iteration (spdk_thread_poll): up to `maxMsgs` queued messages, every active poller, then
   * the expired timed pollers in deadline order. Returns > 0 when anything did work.
   */
  poll(now: number, maxMsgs = MSG_BATCH): number {
    this.pollStart = now;
    return this.pollStarted(maxMsgs);
  }

  /**
   * @internal poll() starting at `pollStart`, which the reactor stores first: a tick count passed
   * as an argument is boxed into a fresh heap number whenever the callee is not inlined.
   */
  pollStarted(maxMsgs = MSG_BATCH): number {
    if (this.state === ThreadState.Exited) return 0;
    const now = this.pollStart;
    const prev = setCurrentThread(this);
    let busy = 0;
    try {
      busy = this.#queue.run(maxMsgs);
      busy += this.#runActive();
      busy += this.#runTimed();
    } finally {
      setCurrentThread(prev);
    }
    const clock = this.host.clock;
    clock.sample();
    const end = clock.last;
    this.lastEnd = end;
    if (busy > 0) this.busyTicks += end - now;
    else this.idleTicks += end - now;
    if (this.state === ThreadState.Exiting && this.exitBlocker() === '') this.#finishExit();
    return busy;
  }

  /** Run `fn(arg)` now as this thread, for messages that arrive through a ring. @internal */
  _runNow<A>(fn: MsgFn<A>, arg: A): void {
    const prev = setCurrentThread(this);
    try {
      fn(arg);
    } finally {
      setCurrentThread(prev);
    }
  }

  /** When the next timed poller is due, in ticks; Infinity when none is registered. */
  nextDeadline(): number {
    const p = this.#timed.peek();
    return p === undefined ? Number.POSITIVE_INFINITY : p.deadline;
  }
  /** Whether an active (period 0) poller is running: the reactor then cannot sleep on its own. */
  get hasActivePollers(): boolean {
    return this.#active.length > 0;
  }

  /** Registered pollers in three lists, as SPDK's thread_get_pollers reports them. */
  pollers(): { active: Poller[]; timed: Poller[]; paused: Poller[] } {
    const active: Poller[] = [];
    const timed: Poller[] = [];
    const paused: Poller[] = [];
    for (const p of this.#pollers) {
      if (p.state === PollerState.Paused) paused.push(p);
      else if (p.timed) timed.push(p);
      else active.push(p);
    }
    return { active, timed, paused };
  }

  /** @internal */
  _pausePoller(p: Poller): void {
    this.#ownPoller(p, 'pause');
    if (p.state !== PollerState.Running) return;
    p.state = PollerState.Paused;
    this.#deschedule(p);
  }

  /** @internal */
  _resumePoller(p: Poller): void {
    this.#ownPoller(p, 'resume');
    if (p.state !== PollerState.Paused) return;
    p.state = PollerState.Running;
    this.#schedule(p);
  }

  /** @internal */
  _unregisterPoller(p: Poller): void {
    this.#ownPoller(p, 'unregister');
    if (p.state === PollerState.Unregistered) return;
    p.state = PollerState.Unregistered;
    this.#deschedule(p);
    this.#pollers.delete(p);
  }

  #schedule(p: Poller): void {
    if (p.timed) {
      if (p.heapIndex < 0) {
        p.deadline = this.host.clock.now() + p.periodTicks;
        this.#timed.push(p);
      }
    } else if (!p.listed) {
      p.listed = true;
      this.#active.push(p);
    }
  }

  #deschedule(p: Poller): void {
    if (p.timed) this.#timed.remove(p);
    else if (this.#iterating) this.#activeDirty = true;
    else this.#compactActive();
  }

  #runActive(): number {
    const list = this.#active;
    // Pollers registered during this pass wait for the next one; removals are compacted after it.
    const n = list.length;
    let busy = 0;
    const timing = this.host.pollerTicks;
    this.#iterating = true;
    try {
      for (let i = 0; i < n; i++) {
        const p = list[i];
        if (p.state !== PollerState.Running) continue;
        p.runCount++;
        this.pollerRun = ++this.#runIds;
        const rc = timing ? this.#timedRun(p) : p.fn();
        this.pollerRun = 0;
        if (rc > 0) {
          p.busyCount++;
          busy++;
        }
      }
    } finally {
      this.pollerRun = 0;
      this.#iterating = false;
      if (this.#activeDirty) this.#compactActive();
    }
    return busy;
  }

  #compactActive(): void {
    const list = this.#active;
    let w = 0;
    for (let r = 0; r < list.length; r++) {
      const p = list[r];
      if (p.state === PollerState.Running) list[w++] = p;
      else p.listed = false;
    }
    list.length = w;
    this.#activeDirty = false;
  }

  #runTimed(): number {
    const now = this.pollStart;
    const heap = this.#timed;
    let busy = 0;
    let p = heap.peek();
    while (p !== undefined && p.deadline <= now) {
      heap.pop();
      p.runCount++;
      this.pollerRun = ++this.#runIds;
      let rc: number;
      try {
        rc = this.host.pollerTicks ? this.#timedRun(p) : p.fn();
      } finally {
        this.pollerRun = 0;
      }
      if (rc > 0) {
        p.busyCount++;
        busy++;
      }
      // Still running and not re-queued by a pause+resume inside its own callback.
      if (p.state === PollerState.Running && p.heapIndex < 0) {
        p.deadline = now + p.periodTicks;
        heap.push(p);
      }
      p = heap.peek();
    }
    return busy;
  }

  // Kept out of the default path: two clock reads per poller run cost more than most pollers.
  #timedRun(p: Poller): number {
    const clock = this.host.clock;
    clock.sample();
    const t0 = clock.last;
    const rc = p.fn();
    clock.sample();
    const dt = clock.last - t0;
    if (rc > 0) p.busyTicks += dt;
    else p.idleTicks += dt;
    return rc;
  }

  #finishExit(): void {
    this.state = ThreadState.Exited;
    this.host._threadExited(this);
    const cb = this.#onExit;
    this.#onExit = null;
    cb?.();
  }

  #own(what: string): void {
    if (getThread() !== this) {
      throw new ReactorError('EWRONGTHREAD', `${what} must be called on thread ${this.name} (${this.id})`);
    }
  }

  #ownPoller(p: Poller, what: string): void {
    if (p.thread !== this || getThread() !== this) {
      throw new ReactorError('EWRONGTHREAD', `poller ${p.name}: ${what} must be called on its own thread`);
    }
  }
}
