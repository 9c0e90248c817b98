import { getThread } from './current.js';
import { ReactorError } from './errors.js';
import { localReactors } from './local-reactors.js';
import type { Thread } from './thread.js';

/** What code running inside a reactor worker can ask of the app. */
export interface Runtime {
  readonly index: number;
  readonly count: number;
  readonly core: number;
  stop(rc: number): void;
  wake(): void;
  createThread(name: string): Thread;
  report(value: unknown): void;
}

let runtime: Runtime | null = null;

/** @internal installed once by the reactor worker entry */
export function installRuntime(r: Runtime): void {
  runtime = r;
}

function need(what: string): Runtime {
  if (runtime === null) throw new ReactorError('ENOENT', `${what}: not running inside a reactor worker`);
  return runtime;
}

/** This worker's reactor index (the SPDK lcore number), or the current thread's in the harness. */
export function reactorIndex(): number {
  if (runtime !== null) return runtime.index;
  const t = getThread();
  if (t === null) throw new ReactorError('ENOTHREAD', 'reactorIndex outside a reactor');
  return t.reactor;
}

/** How many reactors the app runs. */
export function reactorCount(): number {
  return need('reactorCount').count;
}

/** The CPU this reactor is pinned to (-1 when unpinned). */
export function reactorCore(): number {
  return need('reactorCore').core;
}

/** Ask the app to shut down in order and exit with `rc` (spdk_app_stop). */
export function appStop(rc = 0): void {
  need('appStop').stop(rc);
}

/** Wake this reactor if it sleeps: for libuv callbacks that fed work to an active poller. */
export function wakeReactor(): void {
  need('wakeReactor').wake();
}

/** Create a thread on this worker's reactor (spdk_thread_create). */
export function createThread(name: string): Thread {
  return need('createThread').createThread(name);
}

/** Reactors of the app in a worker; of this isolate in the test harness. */
export function reactorCountOrLocal(): number {
  return runtime !== null ? runtime.count : localReactors().length;
}

/** Send a JSON value to the main thread's App ('report' event): for examples and tests. */
export function appReport(value: unknown): void {
  need('appReport').report(value);
}
