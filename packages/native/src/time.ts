import { binding } from './binding.js';

/** Current tick count (monotonic, comparable across workers). One napi call (~tens of ns). */
export const ticks: () => number = binding.ticks;

/** Ticks per second of `ticks()`. */
export const tickRate: number = binding.tickRate();

/** Where ticks come from: the invariant TSC or CLOCK_MONOTONIC. */
export const tickSource = binding.tickSource() as 'tsc' | 'monotonic';

/** Convert a tick delta to microseconds. */
export function ticksToUs(t: number): number {
  return (t * 1e6) / tickRate;
}

/** Convert microseconds to ticks. */
export function usToTicks(us: number): number {
  return Math.round((us * tickRate) / 1e6);
}
