import { json } from './codec.js';
import { requireThread } from './current.js';
import { ReactorError } from './errors.js';
import { defineHandler } from './handlers.js';
import { localReactor } from './local-reactors.js';
import { reactorCountOrLocal } from './runtime.js';
import { reactorThread, send, type ThreadRef } from './send.js';

interface CreateReq {
  req: number;
  name: string;
  origin: ThreadRef;
}
interface CreateRep {
  req: number;
  thread: ThreadRef | null;
  error: string;
}

let nextReq = 1;
const pending = new Map<number, (err: Error | null, t: ThreadRef | null) => void>();

// Runs on the target reactor's first thread, which creates the new thread on its own reactor.
const createReq = defineHandler<CreateReq>('storkit.thread.create', json<CreateReq>(), (q) => {
  const self = requireThread('thread create');
  let rep: CreateRep;
  try {
    const r = localReactor(self.reactor);
    if (r === undefined || !('createThread' in r))
      throw new Error(`reactor ${self.reactor} cannot create threads`);
    const t = (r as { createThread(name: string): { id: number; reactor: number } }).createThread(q.name);
    rep = { req: q.req, thread: { id: t.id, reactor: t.reactor }, error: '' };
  } catch (e) {
    rep = { req: q.req, thread: null, error: e instanceof Error ? e.message : String(e) };
  }
  send(q.origin, createRep, rep);
});

const createRep = defineHandler<CreateRep>('storkit.thread.created', json<CreateRep>(), (r) => {
  const done = pending.get(r.req);
  pending.delete(r.req);
  done?.(r.thread === null ? new ReactorError('EINVAL', r.error) : null, r.thread);
});

/**
 * Create a thread on reactor `reactor` (spdk_thread_create with a one-core cpumask), from any
 * thread. `done(err, ref)` runs later on the calling thread with a ThreadRef to send to.
 */
export function createThreadOn(
  reactor: number,
  name: string,
  done: (err: Error | null, thread: ThreadRef | null) => void,
): void {
  const origin = requireThread('createThreadOn');
  if (!Number.isInteger(reactor) || reactor < 0 || reactor >= reactorCountOrLocal()) {
    throw new ReactorError('ENOENT', `no reactor ${reactor}`);
  }
  const req = (origin.reactor << 24) | (nextReq++ & 0xffffff);
  pending.set(req, done);
  send(reactorThread(reactor), createReq, { req, name, origin: { id: origin.id, reactor: origin.reactor } });
}
