import { tickRate, ticks } from '@storkit/native';

/** A tick source. Reactors read it once per poll iteration; pollers get deadlines in its ticks. */
export interface Clock {
  now(): number;
  /** Ticks per second. */
  readonly rate: number;
}

/** The TSC-based clock of the native core; its ticks are comparable across workers. */
export const realClock: Clock = { now: ticks, rate: tickRate };

/** A clock that only moves when told to (SPDK's spdk_delay_us in ut_multithread, Seastar's manual_clock). */
export class ManualClock implements Clock {
  readonly rate: number;
  #now = 0;
  constructor(rate = 1_000_000) {
    this.rate = rate;
  }
  now(): number {
    return this.#now;
  }
  advance(us: number): void {
    if (!(us >= 0)) throw new RangeError(`cannot move a clock backwards (${us} us)`);
    this.#now += usToTicksOf(this, us);
  }
}

export function usToTicksOf(clock: Clock, us: number): number {
  return Math.round((us * clock.rate) / 1e6);
}

export function ticksToUsOf(clock: Clock, t: number): number {
  return (t * 1e6) / clock.rate;
}
