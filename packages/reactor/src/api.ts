import { requireThread } from './current.js';
import type { MsgFn } from './msg-queue.js';
import type { Poller, PollerFn } from './poller.js';

/** Register a poller on the current thread (spdk_poller_register). */
export function registerPoller(fn: PollerFn, periodUs = 0, name?: string): Poller {
  return requireThread('registerPoller').registerPoller(fn, periodUs, name);
}

/** Queue fn(arg) on the current thread: runs on its next poll, never inside this call. */
export function defer<A>(fn: MsgFn<A>, arg?: A): void {
  requireThread('defer').sendMsg(fn, arg);
}
