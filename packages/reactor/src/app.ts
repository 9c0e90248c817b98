import { EventEmitter } from 'node:events';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { cpuCount } from '@storkit/native';
import type { Remote } from 'comlink';

import { Comlink, nodeEndpoint } from './comlink.js';
import { type Control, ControlError } from './control.js';
import { parseCoreMask } from './cores.js';
import { ReactorError } from './errors.js';
import type { ReactorInfo, ThreadIoChannels, ThreadPollers, ThreadStats } from './introspect.js';
import type { LoopOptions } from './loop.js';
import { createMeshMemory } from './mesh.js';
import type { ReactorApi, ReactorSnapshot, WorkerEvent, WorkerInit } from './worker-protocol.js';

export interface AppOptions {
  /** CPUs to run reactors on, one reactor each (reactor i on cores[i]). */
  cores?: number[];
  /** Or an SPDK core mask: "0x3", "[0,1]". Default: CPU 0 only. */
  mask?: string;
  /** Module (path or URL) every reactor imports; its default export runs on the app thread. */
  main?: string | URL;
  /** The argument main receives (structured-clone safe). */
  mainArg?: unknown;
  /** More modules every reactor imports first (handlers, io_devices, subsystems). */
  modules?: (string | URL)[];
  /**
   * Slots per ring (power of two, multiple of 8). Default 4096 (64 KiB per ordered pair) up to 8
   * reactors, 1024 above (the mesh has n*(n-1) rings): a deeper ring rides out a peer descheduled
   * on a busy machine.
   */
  ringSlots?: number;
  loop?: LoopOptions;
  /** Pin each reactor to its CPU (default true). Unpinned, `cores` may repeat a CPU. */
  pin?: boolean;
  /** Stop in order on SIGINT/SIGTERM (default true). */
  signals?: boolean;
  /** Receives appReport values (attached before main starts, so none is missed). */
  onReport?: (value: unknown, reactor: number) => void;
  /** How long threads get to exit at shutdown before being reported as leaked (default 5000). */
  shutdownTimeoutMs?: number;
}

export interface AppResult {
  /** 0 on an orderly stop (also after SIGINT/SIGTERM), the code given to appStop, 1 on failure. */
  code: number;
  /** Why the app failed, when it did. */
  error?: string;
  /** Threads that had not exited at the shutdown timeout, with what they still held. */
  leaked: string[];
}

function toUrl(m: string | URL): string {
  if (m instanceof URL) return m.href;
  return /^[a-z]+:/i.test(m) ? m : pathToFileURL(m).href;
}

/** A running app: reactors in pinned workers, managed from the main thread. Emits 'report'. */
export class App extends EventEmitter {
  readonly cores: number[];
  readonly reactors: Remote<ReactorApi>[];
  readonly workers: Worker[];
  /** Resolves when the app has shut down and every worker has ended. */
  readonly done: Promise<AppResult>;
  #resolve!: (r: AppResult) => void;
  #stopping: Promise<AppResult> | null = null;
  #terminating = false;
  #lateError: string | undefined;
  #signals: (() => void) | null = null;
  readonly #timeoutMs: number;
  // Rejects when a worker fails or exits before the shutdown is through: every shutdown step races
  // it, so a dead reactor ends the wait at once instead of at the timeout.
  #died!: (reason: Error) => void;
  readonly #death = new Promise<never>((_, reject) => {
    this.#died = reject;
  });

  /** @internal use startApp */
  constructor(cores: number[], workers: Worker[], timeoutMs: number) {
    super();
    this.cores = cores;
    this.workers = workers;
    this.reactors = workers.map((w) => Comlink.wrap<ReactorApi>(nodeEndpoint(w)));
    this.#timeoutMs = timeoutMs;
    this.done = new Promise((r) => {
      this.#resolve = r;
    });
    this.#death.catch(() => {});
  }

  #fail(message: string): void {
    this.#died(new ReactorError('EWORKER', message));
    void this.stop(1, message);
  }

  /** @internal */
  _watch(signals: boolean): void {
    for (const w of this.workers) {
      w.on('message', (e: WorkerEvent) => {
        if (e?.storkit === 'stop') void this.stop(e.rc);
        else if (e?.storkit === 'fatal') this.#fail(e.message);
        else if (e?.storkit === 'report') this.emit('report', e.value, e.reactor);
      });
      w.on('error', (e) => this.#fail(e.stack ?? e.message));
      w.on('exit', (code) => {
        if (!this.#terminating) this.#fail(`reactor worker exited early with code ${code}`);
      });
    }
    if (signals) {
      const onSignal = () => void this.stop(0);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      this.#signals = () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      };
    }
  }

  /** Run a control operation on reactor `i`'s first thread; rejects with ControlError (carrying the code). */
  async control<P, R>(i: number, op: Control<P, R>, params: NoInfer<P>): Promise<R> {
    const r = this.reactors[i];
    if (r === undefined) throw new ReactorError('EINVAL', `no reactor ${i}`);
    const res = await r.control(op.name, params);
    if (!res.ok) throw new ControlError(i, res.code, res.message);
    return res.value as R;
  }

  /** Snapshots of every reactor (the data behind framework_get_reactors and thread_get_*). */
  snapshot(): Promise<ReactorSnapshot[]> {
    return Promise.all(this.reactors.map((r) => r.snapshot()));
  }

  /** The answer of SPDK's framework_get_reactors. */
  async getReactors(): Promise<{ tick_rate: number; reactors: ReactorInfo[] }> {
    const s = await this.snapshot();
    return { tick_rate: s[0]?.tickRate ?? 0, reactors: s.map((x) => x.reactor) };
  }

  /** The answer of SPDK's thread_get_stats. */
  async getThreadStats(): Promise<{ tick_rate: number; threads: ThreadStats[] }> {
    const s = await this.snapshot();
    return { tick_rate: s[0]?.tickRate ?? 0, threads: s.flatMap((x) => x.threads) };
  }

  /** The answer of SPDK's thread_get_pollers. */
  async getPollers(): Promise<{ tick_rate: number; threads: ThreadPollers[] }> {
    const s = await this.snapshot();
    return { tick_rate: s[0]?.tickRate ?? 0, threads: s.flatMap((x) => x.pollers) };
  }

  /** The answer of SPDK's thread_get_io_channels. */
  async getIoChannels(): Promise<{ tick_rate: number; threads: ThreadIoChannels[] }> {
    const s = await this.snapshot();
    return { tick_rate: s[0]?.tickRate ?? 0, threads: s.flatMap((x) => x.channels) };
  }

  /**
   * Shut down in order: subsystems' fini in reverse order on every reactor, then every thread
   * exits once its queue is drained and its pollers and channels are released, then the loops stop
   * and the workers end. Idempotent: later calls get the first call's result.
   */
  stop(code = 0, error?: string): Promise<AppResult> {
    if (this.#stopping !== null) {
      if (error !== undefined) this.#lateError ??= error;
      return this.#stopping;
    }
    this.#stopping = this.#shutdown(code, error).then((r) => {
      this.#signals?.();
      this.#resolve(r);
      return r;
    });
    return this.#stopping;
  }

  async #shutdown(code: number, error?: string): Promise<AppResult> {
    const leaked: string[] = [];
    const alive = this.workers.map((w) => w.threadId !== -1);
    const live = this.reactors.filter((_, i) => alive[i]);
    try {
      const ms = this.#timeoutMs;
      await withTimeout(Promise.all(live.map((r) => r.fini())), ms, 'subsystem fini', this.#death);
      const drained = Promise.all(live.map((r) => r.drain(ms)));
      const left = await withTimeout(drained, ms * 2, 'thread drain', this.#death);
      for (const l of left) leaked.push(...l);
      await withTimeout(Promise.all(live.map((r) => r.stopLoop())), ms, 'loop stop', this.#death);
    } catch (e) {
      code = code || 1;
      error = error ?? (e instanceof Error ? e.message : String(e));
    }
    this.#terminating = true;
    for (const r of this.reactors) r[Comlink.releaseProxy]();
    await Promise.all(this.workers.map((w) => w.terminate()));
    error ??= this.#lateError;
    if (error !== undefined) code = code || 1;
    const result: AppResult = { code, leaked };
    if (error !== undefined) result.error = error;
    return result;
  }
}

const ENDED: unique symbol = Symbol('ended');

function withTimeout<T>(p: Promise<T>, ms: number, what: string, death: Promise<never>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReactorError('EWORKER', `${what} did not finish in ${ms} ms`)), ms);
  });
  return Promise.race([p, t, death]).finally(() => clearTimeout(timer));
}

/**
 * Start reactors on the given cores (spdk_app_start): one pinned worker each, joined by a full mesh
 * of rings; every reactor imports `modules` and `main`, runs the subsystems' init, then main's
 * default export runs on the app thread. Resolves once main has been started; `app.done` resolves
 * after shutdown (appStop, app.stop, SIGINT/SIGTERM, or a failure).
 */
export async function startApp(opts: AppOptions): Promise<App> {
  const cores = opts.cores ?? (opts.mask !== undefined ? parseCoreMask(opts.mask) : [0]);
  const pin = opts.pin ?? true;
  // Unpinned reactors may share a core (more reactors than CPUs, for tests of bigger meshes).
  if (cores.length === 0 || (pin && new Set(cores).size !== cores.length)) {
    throw new ReactorError('EINVAL', `cores must be distinct and non-empty: ${cores.join(',')}`);
  }
  const ncpu = cpuCount();
  const bad = cores.find((c) => !Number.isInteger(c) || c < 0 || c >= ncpu);
  if (bad !== undefined) throw new ReactorError('EINVAL', `core ${bad} does not exist (${ncpu} CPUs)`);
  const sab = createMeshMemory(cores.length, opts.ringSlots ?? (cores.length <= 8 ? 4096 : 1024));
  const modules = (opts.modules ?? []).map(toUrl);
  const main = opts.main === undefined ? null : toUrl(opts.main);
  const workers = cores.map((core, index) => {
    const init: WorkerInit = { index, core: pin ? core : -1, sab, modules, main, loop: opts.loop ?? {} };
    return new Worker(new URL('./reactor-worker.js', import.meta.url), { workerData: init });
  });
  const app = new App(cores, workers, opts.shutdownTimeoutMs ?? 5000);
  if (opts.onReport) app.on('report', opts.onReport);
  app._watch(opts.signals ?? true);
  // A failure during startup ends the app (and its workers) at once: stop waiting for them then.
  const ended = app.done.then(() => ENDED);
  try {
    if ((await Promise.race([Promise.all(app.reactors.map((r) => r.ready())), ended])) === ENDED) return app;
    const inits = await Promise.race([Promise.all(app.reactors.map((r) => r.init())), ended]);
    if (inits === ENDED) return app;
    const errs = (inits as (string | null)[]).filter((e) => e !== null);
    if (errs.length > 0) {
      void app.stop(1, `subsystem init failed: ${errs.join('; ')}`);
      return app;
    }
    await Promise.race([app.reactors[0].runMain(opts.mainArg), ended]);
  } catch (e) {
    void app.stop(1, e instanceof Error ? e.message : String(e));
  }
  return app;
}
