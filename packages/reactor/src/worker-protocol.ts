import type { ControlResult } from './control.js';
import type { ReactorInfo, ThreadIoChannels, ThreadPollers, ThreadStats } from './introspect.js';
import type { LoopOptions } from './loop.js';

/** workerData of a reactor worker (structured-clone safe). */
export interface WorkerInit {
  index: number;
  /** CPU to pin to, -1 to leave unpinned. */
  core: number;
  sab: SharedArrayBuffer;
  /** Module URLs every reactor imports before starting (handlers, devices, subsystems). */
  modules: string[];
  /** The main module URL: imported everywhere, its default export runs on the app thread. */
  main: string | null;
  loop: LoopOptions;
}

/** A snapshot of one reactor for the introspection RPCs. */
export interface ReactorSnapshot {
  tickRate: number;
  /** Kernel thread id of the worker (/proc/self/task/<tid>), for CPU accounting. */
  tid: number;
  reactor: ReactorInfo;
  threads: ThreadStats[];
  pollers: ThreadPollers[];
  channels: ThreadIoChannels[];
  sleptTicks: number;
  slices: number;
  iterations: number;
  lastDrop: string;
  /** This worker's V8 heap (v8.getHeapStatistics), in bytes: for memory checks, never the I/O path. */
  heap: { used: number; total: number; external: number };
}

/** Management calls the main thread makes through comlink (never on the I/O path). */
export interface ReactorApi {
  /** Resolves once the worker imported its modules; rejects with the import error. */
  ready(): Promise<void>;
  /** Run every subsystem's init on the reactor's first thread; resolves to an error message or null. */
  init(): Promise<string | null>;
  /** Reactor 0: run the main module's default export on the app thread. */
  runMain(arg: unknown): Promise<void>;
  /** Run every subsystem's fini, in reverse order, on the first thread. */
  fini(): Promise<void>;
  /** Ask every thread to exit and wait for them; resolves to what threads still held at the timeout. */
  drain(timeoutMs: number): Promise<string[]>;
  /** Stop the poll loop (after every reactor drained). */
  stopLoop(): Promise<void>;
  snapshot(): ReactorSnapshot;
  /** Run a control operation (defineControl) on the reactor's first thread. */
  control(name: string, params: unknown): Promise<ControlResult>;
}

/** Messages a reactor worker posts to the main thread outside comlink. */
export type WorkerEvent =
  | { storkit: 'stop'; rc: number }
  | { storkit: 'fatal'; message: string }
  | { storkit: 'report'; reactor: number; value: unknown };
