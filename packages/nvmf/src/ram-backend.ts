// A namespace held in memory: stands in for a malloc bdev until the bdev layer lands, and is the
// test double for the target. Completions are deferred to one setImmediate per batch (SPDK's
// malloc bdev completes from a poller the same way) so callers never re-enter from submit.

import { randomUUID } from 'node:crypto';

import { copyBytes } from '@storkit/nvme-spec/tcp';

import { type BackendDone, BackendStatus, type NamespaceBackend } from './backend.js';

export interface RamBackendOptions {
  name: string;
  blockSize: number;
  numBlocks: number;
  uuid?: string;
  writeCache?: boolean;
}

export class RamBackend implements NamespaceBackend {
  readonly name: string;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly uuid: string;
  readonly writeCache: boolean;
  /** The blocks themselves; tests read and write them directly. */
  readonly data: Uint8Array;
  /** Completed I/O counts, for tests and stats. */
  readonly counts = { read: 0, write: 0, flush: 0, writeZeroes: 0, unmap: 0, compare: 0, compareAndWrite: 0 };

  // Deferred completions: parallel arrays used as a growable queue, reset after each drain.
  #dones: BackendDone<unknown>[] = [];
  #ctxs: unknown[] = [];
  #statuses: BackendStatus[] = [];
  #n = 0;
  #scheduled = false;
  readonly #drain = (): void => {
    this.#scheduled = false;
    const n = this.#n;
    for (let i = 0; i < n; i++) {
      const d = this.#dones[i];
      const c = this.#ctxs[i];
      this.#ctxs[i] = undefined;
      d(c, this.#statuses[i]);
    }
    // Completions may submit more I/O, which appended after n: move those to the front.
    const extra = this.#n - n;
    for (let i = 0; i < extra; i++) {
      this.#dones[i] = this.#dones[n + i];
      this.#ctxs[i] = this.#ctxs[n + i];
      this.#statuses[i] = this.#statuses[n + i];
    }
    this.#n = extra;
    if (extra > 0) this.#schedule();
  };

  constructor(o: RamBackendOptions) {
    if (!Number.isInteger(o.blockSize) || o.blockSize < 512 || (o.blockSize & (o.blockSize - 1)) !== 0)
      throw new RangeError(`block size must be a power of two ≥ 512, got ${o.blockSize}`);
    if (!Number.isInteger(o.numBlocks) || o.numBlocks < 1)
      throw new RangeError('numBlocks must be a positive integer');
    this.name = o.name;
    this.blockSize = o.blockSize;
    this.numBlocks = o.numBlocks;
    this.uuid = o.uuid ?? randomUUID();
    this.writeCache = o.writeCache ?? false;
    this.data = new Uint8Array(o.blockSize * o.numBlocks);
  }

  #schedule(): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
  }

  #complete<C>(done: BackendDone<C>, ctx: C, status: BackendStatus): void {
    const i = this.#n++;
    this.#dones[i] = done as BackendDone<unknown>;
    this.#ctxs[i] = ctx;
    this.#statuses[i] = status;
    this.#schedule();
  }

  #inRange(off: number, n: number): boolean {
    return Number.isInteger(off) && Number.isInteger(n) && off >= 0 && n >= 0 && off + n <= this.numBlocks;
  }

  // Copy between the device and a buffer list; returns false if the lists do not cover the range.
  #copy(iovs: readonly Uint8Array[], off: number, n: number, toDevice: boolean): boolean {
    let p = off * this.blockSize;
    const end = p + n * this.blockSize;
    for (const v of iovs) {
      const len = Math.min(v.length, end - p);
      if (len <= 0) break;
      if (toDevice) copyBytes(v, 0, len, this.data, p);
      else copyBytes(this.data, p, p + len, v, 0);
      p += len;
    }
    return p === end;
  }

  #same(iovs: readonly Uint8Array[], off: number, n: number): boolean {
    let p = off * this.blockSize;
    const end = p + n * this.blockSize;
    for (const v of iovs) {
      const len = Math.min(v.length, end - p);
      for (let i = 0; i < len; i++) if (v[i] !== this.data[p + i]) return false;
      p += len;
      if (p === end) break;
    }
    return p === end;
  }

  read<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    const ok = this.#inRange(off, n) && this.#copy(iovs, off, n, false);
    if (ok) this.counts.read++;
    this.#complete(done, ctx, ok ? BackendStatus.Success : BackendStatus.Failed);
  }

  write<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    const ok = this.#inRange(off, n) && this.#copy(iovs, off, n, true);
    if (ok) this.counts.write++;
    this.#complete(done, ctx, ok ? BackendStatus.Success : BackendStatus.Failed);
  }

  flush<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    this.counts.flush++;
    this.#complete(done, ctx, this.#inRange(off, n) ? BackendStatus.Success : BackendStatus.Failed);
  }

  writeZeroes<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    const ok = this.#inRange(off, n);
    if (ok) {
      this.data.fill(0, off * this.blockSize, (off + n) * this.blockSize);
      this.counts.writeZeroes++;
    }
    this.#complete(done, ctx, ok ? BackendStatus.Success : BackendStatus.Failed);
  }

  unmap<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    // Deallocated blocks read back as zeroes (Identify Namespace DLFEAT says so).
    this.writeZeroes(off, n, done, ctx);
    this.counts.writeZeroes--;
    this.counts.unmap++;
  }

  compare<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    if (!this.#inRange(off, n)) {
      this.#complete(done, ctx, BackendStatus.Failed);
      return;
    }
    this.counts.compare++;
    this.#complete(done, ctx, this.#same(iovs, off, n) ? BackendStatus.Success : BackendStatus.Miscompare);
  }

  compareAndWrite<C>(
    cmp: readonly Uint8Array[],
    wr: readonly Uint8Array[],
    off: number,
    n: number,
    done: BackendDone<C>,
    ctx: C,
  ): void {
    if (!this.#inRange(off, n)) {
      this.#complete(done, ctx, BackendStatus.Failed);
      return;
    }
    // Compare and write happen in this one synchronous step, so no other write can come between.
    if (!this.#same(cmp, off, n)) {
      this.#complete(done, ctx, BackendStatus.Miscompare);
      return;
    }
    this.#copy(wr, off, n, true);
    this.counts.compareAndWrite++;
    this.#complete(done, ctx, BackendStatus.Success);
  }
}
