import { ReactorError } from './errors.js';
import type { Thread } from './thread.js';

// One isolate runs one thread at a time, so "the current thread" is a plain module variable,
// set by Thread.poll (and by the test harness) and restored afterwards.
let current: Thread | null = null;

/** The thread running now (spdk_get_thread), or null outside any thread. */
export function getThread(): Thread | null {
  return current;
}

/** The thread running now; throws ENOTHREAD when there is none. */
export function requireThread(what: string): Thread {
  if (current === null) throw new ReactorError('ENOTHREAD', `${what} needs a current thread`);
  return current;
}

/** Swap the current thread; returns the previous one so the caller can restore it. */
export function setCurrentThread(t: Thread | null): Thread | null {
  const prev = current;
  current = t;
  return prev;
}
