import { Piscina } from 'piscina';

import { requireThread } from './current.js';
import { ReactorError } from './errors.js';
import type { Thread } from './thread.js';

export interface OffloadOptions {
  /** Module (path or file URL) whose default export is the task function. */
  filename: string | URL;
  /** Pool threads (default 1). They share the machine's cores with the reactors. */
  threads?: number;
  /** Tasks queued beyond the running ones before run() refuses with EBUSY-like false (default 256). */
  maxQueue?: number;
}

/**
 * A piscina pool a reactor uses for work that must leave it (CPU-heavy hashing, compression,
 * blocking library calls). run() never blocks the reactor: the result comes back as a message on
 * the calling thread. The dispatch costs tens of microseconds (see docs/perf-history.md, "Reactor"),
 * so it pays off only for tasks much longer than that, or whose latency spike a reactor cannot take.
 */
export class OffloadPool {
  readonly #pool: Piscina;
  readonly #maxQueue: number;
  #inFlight = 0;
  #closed = false;

  constructor(opts: OffloadOptions) {
    const threads = opts.threads ?? 1;
    const filename = opts.filename instanceof URL ? opts.filename.href : opts.filename;
    this.#pool = new Piscina({ filename, minThreads: threads, maxThreads: threads });
    this.#maxQueue = opts.maxQueue ?? 256;
  }

  /** Tasks submitted and not yet completed. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Run the pool's task with `arg` (structured-cloned: pass SharedArrayBuffer views for big data);
   * `done(err, result)` runs later on the calling thread, exactly once. Returns false, and done never
   * runs, when maxQueue tasks are already in flight: retry later (SPDK's queueIoWait pattern).
   */
  run<A, R>(arg: A, done: (err: Error | null, result?: R) => void): boolean {
    if (this.#closed) throw new ReactorError('ESHUTDOWN', 'offload pool is closed');
    const t: Thread = requireThread('OffloadPool.run');
    if (this.#inFlight >= this.#maxQueue) return false;
    this.#inFlight++;
    this.#pool.run(arg).then(
      (r: R) => this.#complete(t, done, null, r),
      (e: unknown) => this.#complete(t, done, e instanceof Error ? e : new Error(String(e))),
    );
    return true;
  }

  #complete<R>(t: Thread, done: (err: Error | null, result?: R) => void, err: Error | null, r?: R): void {
    this.#inFlight--;
    // Back on the thread that asked (sendMsg wakes its reactor if it sleeps).
    if (!t.exited) t.sendMsg(() => done(err, r));
  }

  /** Wait for running tasks and end the pool's threads. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool.destroy();
  }
}
