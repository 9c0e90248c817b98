import { binding } from './binding.js';

/**
 * Current tick count (monotonic, comparable across workers). One napi call (~tens of ns) whose
 * double return is a fresh heap number each time; hot paths use readTicks.
 */
export const ticks: () => number = binding.ticks;

// This thread's tick cell: the napi call stores into it and returns undefined, so reading the
// clock allocates nothing as long as the caller keeps the double unboxed (readTicks inlined,
// the value kept in locals or stored into number fields).
const tickCell = new Float64Array(binding.tickCell() as ArrayBuffer);
const ticksStore: () => void = binding.ticksStore;

/** Current tick count, like ticks(), without a heap number per call. */
export function readTicks(): number {
  ticksStore();
  return tickCell[0];
}

/**
 * CPU time the calling thread (worker) has used, in nanoseconds: a driver's cost per operation
 * measured this way holds on a loaded machine, where wall-clock time also counts the time the
 * thread waited for a core.
 */
export const threadCpuNs: () => number = binding.threadCpuNs;

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
