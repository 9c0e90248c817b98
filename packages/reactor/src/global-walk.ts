import { json } from './codec.js';
import { requireThread } from './current.js';
import { ReactorError } from './errors.js';
import { type ChannelIter, forEachChannelOn } from './for-each-channel.js';
import { defineHandler } from './handlers.js';
import { ioDeviceByName } from './io-channel.js';
import { localReactors } from './local-reactors.js';
import { reactorCountOrLocal } from './runtime.js';
import { reactorThread, send, type ThreadRef } from './send.js';

/** A forEachChannel callback known by name in every worker, so a walk can run it anywhere. */
export interface ChannelIterator<A> {
  readonly name: string;
  readonly fn: (it: ChannelIter<unknown, A>) => void;
  /**
   * Runs when a global walk reaches a reactor, before it lists that reactor's channels, even when
   * the reactor has none: per-worker state that channels created later must see (SPDK keeps such
   * state on the bdev and copies it into each new channel) is set here. Every channel created
   * after this call sees the state; every one created before it is visited.
   */
  readonly onReactor?: (arg: A, reactor: number) => void;
}

const iterators = new Map<string, ChannelIterator<unknown>>();

/**
 * Define a named channel iterator. Like handlers, define it at the top level of a module every
 * reactor worker imports.
 */
export function defineChannelIterator<A>(
  name: string,
  fn: (it: ChannelIter<unknown, A>) => void,
  onReactor?: (arg: A, reactor: number) => void,
): ChannelIterator<A> {
  if (iterators.has(name)) throw new ReactorError('EEXIST', `channel iterator ${name} is already defined`);
  const it: ChannelIterator<A> = onReactor === undefined ? { name, fn } : { name, fn, onReactor };
  iterators.set(name, it as ChannelIterator<unknown>);
  return it;
}

interface Step {
  walk: number;
  origin: ThreadRef;
  iterator: string;
  device: string;
  reactor: number;
  arg: unknown;
}
interface End {
  walk: number;
  status: number;
  arg: unknown;
}

let nextWalk = 1;
const pending = new Map<number, (status: number, arg: unknown) => void>();

// Each step runs on the first thread of one reactor, which walks its own threads' channels to the
// device of that name, then hands the walk to the next reactor; the last one reports to the origin.
const stepHandler = defineHandler<Step>('storkit.walk.step', json<Step>(), (s) => {
  const finish = (status: number) => {
    const next = s.reactor + 1;
    if (status !== 0 || next >= reactorCountOrLocal()) {
      send(s.origin, endHandler, { walk: s.walk, status, arg: s.arg });
    } else {
      send(reactorThread(next), stepHandler, { ...s, reactor: next });
    }
  };
  const dev = ioDeviceByName(s.device);
  const it = iterators.get(s.iterator);
  if (it === undefined) {
    finish(-2); // -ENOENT: the iterator is not defined in this worker
    return;
  }
  it.onReactor?.(s.arg, s.reactor);
  if (dev === undefined) {
    requireThread('walk').sendMsg(finish, 0);
    return;
  }
  forEachChannelOn(s.reactor, dev, it.fn, (status) => finish(status), s.arg);
});

const endHandler = defineHandler<End>('storkit.walk.end', json<End>(), (e) => {
  const done = pending.get(e.walk);
  pending.delete(e.walk);
  done?.(e.status, e.arg);
});

/**
 * forEachChannel across every reactor of the app (and of the test harness): visits, reactor by
 * reactor, each thread holding a channel to the io_device registered under `deviceName` in that
 * worker, running the named iterator there; then `done(status, arg)` runs on the calling thread.
 * `arg` travels as JSON between workers (each reactor sees its own decoded copy).
 */
export function forEachChannelGlobal<A>(
  deviceName: string,
  iterator: ChannelIterator<A>,
  arg: A,
  done: (status: number, arg: A) => void,
): void {
  const origin = requireThread('forEachChannelGlobal');
  if (localReactors().length === 0) throw new ReactorError('ENOENT', 'no reactor runs here');
  const walk = (origin.reactor << 24) | (nextWalk++ & 0xffffff);
  pending.set(walk, done as (status: number, arg: unknown) => void);
  const step: Step = {
    walk,
    origin: { id: origin.id, reactor: origin.reactor },
    iterator: iterator.name,
    device: deviceName,
    reactor: 0,
    arg,
  };
  send(reactorThread(0), stepHandler, step);
}

/** A step that runs once on every reactor's first thread, in turn, and may finish later. */
export interface ReactorStep<A> {
  readonly name: string;
  readonly fn: (arg: A, reactor: number, done: (status: number) => void) => void;
}

const reactorSteps = new Map<string, ReactorStep<unknown>>();

/**
 * Define a reactor step (at the top level of a module every reactor imports). `fn(arg, reactor,
 * done)` runs on the reactor's first thread; `done(0)` passes the walk on, a non-zero status
 * stops it. In the test harness every reactor shares one isolate: `fn` then runs once per
 * simulated reactor on the same objects.
 */
export function defineReactorStep<A>(
  name: string,
  fn: (arg: A, reactor: number, done: (status: number) => void) => void,
): ReactorStep<A> {
  if (reactorSteps.has(name)) throw new ReactorError('EEXIST', `reactor step ${name} is already defined`);
  const s: ReactorStep<A> = { name, fn };
  reactorSteps.set(name, s as ReactorStep<unknown>);
  return s;
}

interface RStep {
  walk: number;
  origin: ThreadRef;
  step: string;
  reactor: number;
  arg: unknown;
}

const reactorStepHandler = defineHandler<RStep>('storkit.reactor.step', json<RStep>(), (s) => {
  const st = reactorSteps.get(s.step);
  const finish = (status: number) => {
    const next = s.reactor + 1;
    if (status !== 0 || next >= reactorCountOrLocal()) {
      send(s.origin, endHandler, { walk: s.walk, status, arg: s.arg });
    } else {
      send(reactorThread(next), reactorStepHandler, { ...s, reactor: next });
    }
  };
  if (st === undefined) {
    finish(-2);
    return;
  }
  let called = false;
  st.fn(s.arg, s.reactor, (status) => {
    if (called) return;
    called = true;
    finish(status);
  });
});

/**
 * Run `step` on every reactor of the app (and of the test harness) in index order, each after the
 * previous one finished; then `done(status, arg)` on the calling thread. `arg` travels as JSON.
 */
export function forEachReactor<A>(
  step: ReactorStep<A>,
  arg: A,
  done: (status: number, arg: A) => void,
): void {
  const origin = requireThread('forEachReactor');
  if (localReactors().length === 0) throw new ReactorError('ENOENT', 'no reactor runs here');
  const walk = (origin.reactor << 24) | (nextWalk++ & 0xffffff);
  pending.set(walk, done as (status: number, arg: unknown) => void);
  send(reactorThread(0), reactorStepHandler, {
    walk,
    origin: { id: origin.id, reactor: origin.reactor },
    step: step.name,
    reactor: 0,
    arg,
  });
}
