import type { Thread } from './thread.js';

/** A poller that found no work (SPDK_POLLER_IDLE). */
export const POLLER_IDLE = 0;
/** A poller that did work (SPDK_POLLER_BUSY). */
export const POLLER_BUSY = 1;

/** Returns POLLER_BUSY (any value > 0) when it did work, POLLER_IDLE otherwise. */
export type PollerFn = () => number;

export enum PollerState {
  Running = 0,
  Paused = 1,
  Unregistered = 2,
}

/** A function run repeatedly on one thread: every iteration (period 0) or every `periodUs`. */
export class Poller {
  readonly name: string;
  readonly thread: Thread;
  readonly fn: PollerFn;
  readonly periodUs: number;
  readonly periodTicks: number;
  /** @internal */ state: PollerState = PollerState.Running;
  /** @internal next run, in ticks (timed pollers only) */ deadline = 0;
  /** @internal position in the thread's deadline heap, -1 when not in it */ heapIndex = -1;
  /** @internal registration order: breaks deadline ties so equal deadlines run first-registered first */
  readonly seq: number;
  /** @internal whether the thread's active list holds it */ listed = false;
  runCount = 0;
  busyCount = 0;
  /** Ticks spent in runs that reported busy / idle; counted only when the reactor times pollers. */
  busyTicks = 0;
  idleTicks = 0;

  /** @internal use registerPoller / thread.registerPoller */
  constructor(
    thread: Thread,
    fn: PollerFn,
    periodUs: number,
    periodTicks: number,
    name: string,
    seq: number,
  ) {
    this.thread = thread;
    this.fn = fn;
    this.periodUs = periodUs;
    this.periodTicks = periodTicks;
    this.name = name;
    this.seq = seq;
  }

  get timed(): boolean {
    return this.periodTicks > 0;
  }
  get paused(): boolean {
    return this.state === PollerState.Paused;
  }
  get registered(): boolean {
    return this.state !== PollerState.Unregistered;
  }

  /** Stop running it until resume(); safe from inside its own callback. */
  pause(): void {
    this.thread._pausePoller(this);
  }
  /** Run it again; a timed poller's next run is one period from now. */
  resume(): void {
    this.thread._resumePoller(this);
  }
  /** Remove it for good; safe from inside its own callback. */
  unregister(): void {
    this.thread._unregisterPoller(this);
  }
}
