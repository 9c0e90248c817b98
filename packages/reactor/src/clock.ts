import { readTicks, tickRate } from '@storkit/native';

/** A tick source. Reactors read it once per poll iteration; pollers get deadlines in its ticks. */
export interface Clock {
  now(): number;
  /**
   * Read the clock into `last`. Hot paths use this pair instead of now(): a call that returns a
   * tick count (above V8's small-integer range) hands back a fresh heap number unless the
   * compiler inlined it; a store into a number field and a field load allocate nothing.
   */
  sample(): void;
  /** The reading of the latest sample(). */
  readonly last: number;
  /** Ticks per second. */
  readonly rate: number;
}

/** The TSC-based clock of the native core; its ticks are comparable across workers. */
class RealClock implements Clock {
  readonly rate = tickRate;
  // A double from the start, so the field never changes representation.
  last = readTicks();
  now(): number {
    return readTicks();
  }
  sample(): void {
    this.last = readTicks();
  }
}

/**
 * The native clock of this isolate. readTicks, not ticks(): each ticks() call returned a new heap
 * number, a scavenge's worth of garbage every few hundred thousand reads.
 */
export const realClock: Clock = new RealClock();

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
  sample(): void {}
  get last(): number {
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
