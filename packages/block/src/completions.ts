import type { IoCb, IoStatus } from './backend.js';

/**
 * Completions a backend decided at submit time (a RAM copy, an I/O that failed before it reached
 * anything, a flush with nothing to flush), delivered later in submission order: one
 * `setImmediate` per batch, so the contract's "never inside the submitting call" holds without a
 * closure or an object per I/O. The ring grows only while the queue depth reaches a new high.
 */
export class DeferredCompletions {
  #cbs: (IoCb<unknown> | undefined)[] = new Array(64);
  #ctxs: unknown[] = new Array(64);
  #status = new Int32Array(64);
  #head = 0;
  #count = 0;
  #scheduled = false;
  readonly #drain = (): void => this.#run();

  /** Completions queued and not yet delivered. */
  get pending(): number {
    return this.#count;
  }

  push<C>(cb: IoCb<C>, ctx: C, status: IoStatus): void {
    if (this.#count === this.#cbs.length) this.#grow();
    const slot = (this.#head + this.#count) % this.#cbs.length;
    this.#cbs[slot] = cb as IoCb<unknown>;
    this.#ctxs[slot] = ctx;
    this.#status[slot] = status;
    this.#count++;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
  }

  #grow(): void {
    const n = this.#cbs.length;
    const cbs: (IoCb<unknown> | undefined)[] = new Array(n * 2);
    const ctxs: unknown[] = new Array(n * 2);
    const status = new Int32Array(n * 2);
    for (let i = 0; i < this.#count; i++) {
      const s = (this.#head + i) % n;
      cbs[i] = this.#cbs[s];
      ctxs[i] = this.#ctxs[s];
      status[i] = this.#status[s];
    }
    this.#cbs = cbs;
    this.#ctxs = ctxs;
    this.#status = status;
    this.#head = 0;
  }

  #run(): void {
    this.#scheduled = false;
    // Only what was queued before this drain runs now; completions queued by callbacks wait.
    let n = this.#count;
    while (n-- > 0) {
      const slot = this.#head;
      const cb = this.#cbs[slot]!;
      const ctx = this.#ctxs[slot];
      this.#cbs[slot] = undefined;
      this.#ctxs[slot] = undefined;
      this.#head = (slot + 1) % this.#cbs.length;
      this.#count--;
      cb(this.#status[slot] as IoStatus, ctx);
    }
  }
}
