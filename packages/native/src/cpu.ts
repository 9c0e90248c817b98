import { binding } from './binding.js';
import { native } from './errors.js';

/** Pin the calling thread (the main thread, or the worker that calls it) to exactly these CPUs. */
export function pinThread(cpus: number | readonly number[]): void {
  const list = typeof cpus === 'number' ? [cpus] : [...cpus];
  native(() => binding.pinThread(list));
}

/** The CPUs the calling thread may run on. */
export function threadAffinity(): number[] {
  return native(() => binding.threadAffinity());
}

/** The CPU the calling thread runs on now. */
export function currentCpu(): number {
  return native(() => binding.currentCpu());
}

/** Kernel thread id of the calling thread (`/proc/self/task/<tid>`). */
export const threadId: () => number = binding.threadId;

/** Number of configured CPUs. */
export const cpuCount: () => number = binding.cpuCount;
