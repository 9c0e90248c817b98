// Entry of a reactor worker: pin, join the ring mesh, import the app's modules, start the loop,
// answer management calls from the main thread through comlink.
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';

import { pinThread, threadId, tickRate } from '@storkit/native';

import { realClock } from './clock.js';
import { Comlink, nodeEndpoint } from './comlink.js';
import { type ControlResult, runControl } from './control.js';
import { reactorInfo, threadIoChannels, threadPollers, threadStats } from './introspect.js';
import { ReactorLoop } from './loop.js';
import { MeshEndpoint, ReactorRunState } from './mesh.js';
import { Reactor } from './reactor.js';
import { installRuntime } from './runtime.js';
import { setTransport } from './send.js';
import { localSubsystems, type Subsystem } from './subsystem.js';
import type { Thread } from './thread.js';
import type { ReactorApi, ReactorSnapshot, WorkerEvent, WorkerInit } from './worker-protocol.js';

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (e: WorkerEvent) => port.postMessage(e);

if (init.core >= 0) pinThread(init.core);
const tid = threadId();
const mesh = new MeshEndpoint(init.sab, init.index);
const reactor = new Reactor({
  index: init.index,
  clock: realClock,
  allocThreadId: () => mesh.allocThreadId(),
});
mesh.attach(reactor);
setTransport(mesh);
const first = reactor.createThread(init.index === 0 ? 'app_thread' : `reactor_${init.index}`, init.index + 1);
const loop = new ReactorLoop(reactor, mesh, init.loop);
let stopping = false;
const initialised: Subsystem[] = [];

installRuntime({
  index: init.index,
  count: mesh.n,
  core: init.core,
  stop(rc) {
    if (stopping) return;
    stopping = true;
    post({ storkit: 'stop', rc });
  },
  wake: () => loop.wake(),
  createThread: (name) => reactor.createThread(name),
  report: (value) => post({ storkit: 'report', reactor: init.index, value }),
});

/** Run fn on thread t (waking the reactor) and resolve with what it reports through done. */
function onThread<T>(t: Thread, fn: (done: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    t.sendMsg(() => {
      try {
        fn(resolve);
      } catch (e) {
        reject(e);
      }
    });
  });
}

function fatal(e: unknown): void {
  post({ storkit: 'fatal', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
}

let mainFn: ((arg: unknown) => unknown) | null = null;
const loaded = (async () => {
  for (const m of init.modules) await import(m);
  if (init.main !== null) {
    const mod = (await import(init.main)) as { default?: unknown };
    if (typeof mod.default !== 'function') throw new Error(`${init.main} has no default export function`);
    mainFn = mod.default as (arg: unknown) => unknown;
  }
})();

async function runSteps(steps: ((done: (err?: Error) => void) => void)[]): Promise<string | null> {
  for (const step of steps) {
    const err = await onThread<Error | undefined>(first, (done) => step(done));
    if (err) return err.message;
  }
  return null;
}

const api: ReactorApi = {
  async ready() {
    await loaded;
    mesh.setState(ReactorRunState.Running);
    loop.start();
  },
  init() {
    // Count each subsystem as initialised once its init reported success: shutdown finishes only
    // those, in reverse (a failed or never-run init has nothing to undo).
    const steps = localSubsystems().map((s) => (done: (err?: Error) => void) => {
      const ok = (err?: Error) => {
        if (!err) initialised.push(s);
        done(err);
      };
      if (s.init) s.init(ok);
      else ok();
    });
    return runSteps(steps);
  },
  async runMain(arg) {
    const fn = mainFn;
    if (fn === null) return;
    await onThread<void>(first, (done) => {
      done();
      try {
        const r = fn(arg);
        if (r instanceof Promise) r.catch(fatal);
      } catch (e) {
        fatal(e);
      }
    });
  },
  async fini() {
    stopping = true;
    const steps = initialised
      .splice(0)
      .reverse()
      .filter((s) => s.fini)
      .map((s) => (done: (err?: Error) => void) => s.fini!(() => done()));
    await runSteps(steps);
  },
  async drain(timeoutMs) {
    for (const t of [...reactor.threads]) t.sendMsg(() => t.exit());
    const until = Date.now() + timeoutMs;
    while (reactor.threads.length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
    return reactor.threads.map((t) => `reactor ${init.index} thread ${t.name} (${t.id}): ${t.exitBlocker()}`);
  },
  async stopLoop() {
    await loop.stop();
    mesh.setState(ReactorRunState.Stopped);
    reactor.close();
  },
  control(name, params) {
    return onThread<ControlResult>(first, (done) => runControl(name, params, done));
  },
  snapshot() {
    const info = reactorInfo(reactor, {
      core: init.core,
      inInterrupt: loop.asleep,
      interruptMode: init.loop.idleUs !== false,
      sleeps: loop.sleeps,
      messagesIn: mesh.received,
      messagesOut: mesh.sent,
      dropped: mesh.dropped,
    });
    return {
      tickRate,
      tid,
      reactor: info,
      threads: reactor.threads.map((t) => threadStats(t, init.core)),
      pollers: reactor.threads.map(threadPollers),
      channels: reactor.threads.map(threadIoChannels),
      sleptTicks: loop.sleptTicks,
      slices: loop.slices,
      iterations: reactor.iterations,
      lastDrop: mesh.lastDrop,
      heap: heapOf(),
    };
  },
};

function heapOf(): ReactorSnapshot['heap'] {
  const h = getHeapStatistics();
  return { used: h.used_heap_size, total: h.total_heap_size, external: h.external_memory };
}

Comlink.expose(api, nodeEndpoint(port));
