import { ReactorError } from './errors.js';
import type { Handler } from './handlers.js';
import { localReactor } from './local-reactors.js';

/** Names a thread anywhere in the app: plain numbers, so it can travel in payloads. */
export interface ThreadRef {
  readonly id: number;
  readonly reactor: number;
}

/** Carries messages to reactors in other workers (the worker runtime installs the ring mesh). */
export interface RemoteTransport {
  send<T>(to: ThreadRef, h: Handler<T>, payload: T): void;
  trySend<T>(to: ThreadRef, h: Handler<T>, payload: T): boolean;
}

let transport: RemoteTransport | null = null;

/** @internal */
export function setTransport(t: RemoteTransport | null): void {
  transport = t;
}

/**
 * Run handler `h` with `payload` on thread `to`, wherever it lives. On the same isolate (same
 * reactor, or any reactor of the test harness) the payload object itself is queued, with no
 * encoding: do not mutate it after sending. Across workers it is encoded into the ring to that
 * reactor now. Messages from one sender to one thread run in the order sent. Throws ESHUTDOWN when
 * the target thread is known to be gone, ENOENT for a reactor this isolate cannot reach.
 */
export function send<T>(to: ThreadRef, h: Handler<T>, payload: T): void {
  const r = localReactor(to.reactor);
  if (r !== undefined) {
    const t = r.thread(to.id);
    if (t === undefined)
      throw new ReactorError('ESHUTDOWN', `thread ${to.id} on reactor ${to.reactor} is gone`);
    t.sendMsg(h.fn, payload);
    return;
  }
  if (transport === null)
    throw new ReactorError('ENOENT', `reactor ${to.reactor} is not reachable from here`);
  transport.send(to, h, payload);
}

/**
 * Like send, but for senders that pace themselves: returns false, sending nothing, when the ring to
 * the target's reactor is full (or still has a backlog); try again on a later poll. Always sends
 * on the same isolate. Keeps the sender's memory flat where send would queue without bound.
 */
export function trySend<T>(to: ThreadRef, h: Handler<T>, payload: T): boolean {
  const r = localReactor(to.reactor);
  if (r !== undefined) {
    send(to, h, payload);
    return true;
  }
  if (transport === null)
    throw new ReactorError('ENOENT', `reactor ${to.reactor} is not reachable from here`);
  return transport.trySend(to, h, payload);
}

/** The app thread (reactor 0's first thread). */
export const APP_THREAD: ThreadRef = Object.freeze({ id: 1, reactor: 0 });

/** The first thread of reactor `i`: every reactor starts one, with id i + 1. */
export function reactorThread(i: number): ThreadRef {
  return { id: i + 1, reactor: i };
}
