// One accel-perf worker: a thread's accel channel kept busy with one workload. Buffers live in a
// DMA region of its own (engines reach them; SPDK's accel_perf allocates with spdk_dma_zmalloc);
// each completion is counted, verified if asked, and resubmitted until time is up.
import { compareRange, crc32cRange, DmaRegion } from '@storkit/native';
import { getThread, type IoChannel, type Poller, type Thread } from '@storkit/reactor';

import {
  ACCEL_EMISCOMPARE,
  ACCEL_ENOMEM,
  type AccelChannel,
  AccelIovecs,
  accelGetIoChannel,
} from '../index.js';
import type { AccelPerfArgs } from './app.js';

export type PerfWorkload = 'copy' | 'fill' | 'crc32c' | 'copy_crc32c' | 'compare' | 'dualcast';

export interface PerfThreadResult {
  reactor: number;
  thread: number;
  transfers: number;
  bytes: number;
  failed: number;
  miscompares: number;
}

/** One operation's buffers, reused for every submission of it. */
class PerfTask {
  readonly w: PerfWorker;
  readonly src: number;
  readonly dst: number;
  readonly dst2: number;
  readonly iovs: AccelIovecs | null;
  /** compare: whether this task's buffers differ on purpose. */
  readonly differ: boolean;
  constructor(
    w: PerfWorker,
    src: number,
    dst: number,
    dst2: number,
    iovs: AccelIovecs | null,
    differ: boolean,
  ) {
    this.w = w;
    this.src = src;
    this.dst = dst;
    this.dst2 = dst2;
    this.iovs = iovs;
    this.differ = differ;
  }
}

function completed(t: PerfTask, status: number, result: number): void {
  t.w.done(t, status, result);
}

export class PerfWorker {
  readonly #a: AccelPerfArgs;
  readonly #thread: Thread;
  readonly #io: IoChannel<AccelChannel>;
  readonly #ch: AccelChannel;
  readonly #mem: DmaRegion;
  readonly #buf: Uint8Array;
  readonly #tasks: PerfTask[] = [];
  readonly #free: PerfTask[] = [];
  readonly #retry: PerfTask[] = [];
  readonly #op: number;
  readonly #len: number;
  readonly #onEnd: (r: PerfThreadResult) => void;
  readonly #r: PerfThreadResult;
  #running = true;
  #inflight = 0;
  #timer: Poller | null = null;
  #retryPoller: Poller | null = null;

  constructor(args: AccelPerfArgs, reactor: number, index: number, onEnd: (r: PerfThreadResult) => void) {
    this.#a = args;
    this.#thread = getThread() as Thread;
    this.#io = accelGetIoChannel();
    this.#ch = this.#io.ctx;
    this.#onEnd = onEnd;
    this.#r = { reactor, thread: index, transfers: 0, bytes: 0, failed: 0, miscompares: 0 };
    const w = args.workload;
    this.#op = ['copy', 'fill', 'dualcast', 'compare', 'crc32c', 'copy_crc32c'].indexOf(w);
    const vec = w === 'crc32c' || w === 'copy_crc32c' ? args.vectors : 1;
    this.#len = args.size * vec;
    // Per task: a source, a destination, a second destination for dualcast; 64-byte aligned.
    const slot = Math.ceil(this.#len / 64) * 64;
    const per = w === 'dualcast' ? 3 : w === 'crc32c' ? 1 : 2;
    this.#mem = DmaRegion.create(slot * per * args.allocDepth);
    this.#buf = this.#mem.bytes;
    let seed = args.seed * 2654435761 + reactor * 97 + index;
    for (let i = 0; i < this.#mem.size; i += 4) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      this.#buf[i] = seed >>> 24;
    }
    for (let i = 0; i < args.allocDepth; i++) {
      const base = i * slot * per;
      const src = base;
      const dst = base + slot;
      let iovs: AccelIovecs | null = null;
      if (vec > 1) {
        iovs = new AccelIovecs(vec);
        for (let k = 0; k < vec; k++) iovs.add(this.#buf, src + k * args.size, args.size);
      }
      const differ = w === 'compare' && (i * 100) / args.allocDepth < args.miscompare;
      if (w === 'compare') {
        this.#buf.copyWithin(dst, src, src + this.#len);
        if (differ) this.#buf[dst + (i % this.#len)] ^= 0xff;
      }
      const t = new PerfTask(this, src, dst, base + 2 * slot, iovs, differ);
      this.#tasks.push(t);
      this.#free.push(t);
    }
  }

  start(): void {
    this.#timer = this.#thread.registerPoller(() => this.#stop(), this.#a.seconds * 1e6, 'accel_perf_timer');
    this.#retryPoller = this.#thread.registerPoller(() => this.#retrySome(), 0, 'accel_perf_retry');
    for (let i = 0; i < this.#a.queueDepth && this.#free.length > 0; i++)
      this.#submit(this.#free.pop() as PerfTask);
  }

  /** @internal the completion of `t` */
  done(t: PerfTask, status: number, result: number): void {
    this.#inflight--;
    const r = this.#r;
    if (this.#op === 3) {
      // compare: a miscompare is what a task with different buffers should give.
      if ((status === ACCEL_EMISCOMPARE) !== t.differ) r.miscompares++;
      else r.transfers++;
    } else if (status !== 0) {
      r.failed++;
    } else {
      if (this.#a.verify && !this.#verify(t, result)) r.miscompares++;
      r.transfers++;
    }
    r.bytes += this.#len;
    if (this.#running) this.#submit(t);
    else {
      this.#free.push(t);
      if (this.#inflight === 0) this.#end();
    }
  }

  #submit(t: PerfTask): void {
    const ch = this.#ch;
    const b = this.#buf;
    const n = this.#len;
    let rc = 0;
    switch (this.#op) {
      case 0:
        rc = ch.submitCopy(b, t.dst, b, t.src, n, completed, t);
        break;
      case 1:
        rc = ch.submitFill(b, t.dst, n, this.#a.fill, completed, t);
        break;
      case 2:
        rc = ch.submitDualcast(b, t.dst, b, t.dst2, b, t.src, n, completed, t);
        break;
      case 3:
        rc = ch.submitCompare(b, t.src, b, t.dst, n, completed, t);
        break;
      case 4:
        rc =
          t.iovs === null
            ? ch.submitCrc32c(b, t.src, n, this.#a.seed, completed, t)
            : ch.submitCrc32cv(t.iovs, this.#a.seed, completed, t);
        break;
      case 5:
        rc = ch.submitCopyCrc32c(b, t.dst, b, t.src, n, this.#a.seed, completed, t);
        break;
    }
    if (rc === 0) this.#inflight++;
    else if (rc === ACCEL_ENOMEM) this.#retry.push(t);
    else {
      this.#r.failed++;
      this.#free.push(t);
    }
  }

  #retrySome(): number {
    const q = this.#retry;
    if (q.length === 0) return 0;
    const n = q.length;
    for (let i = 0; i < n; i++) {
      const t = q.shift() as PerfTask;
      if (this.#running) this.#submit(t);
      else this.#free.push(t);
    }
    if (!this.#running && this.#inflight === 0 && q.length === 0) this.#end();
    return n;
  }

  #verify(t: PerfTask, result: number): boolean {
    const b = this.#buf;
    const n = this.#len;
    switch (this.#op) {
      case 0:
        return compareRange(b, t.dst, b, t.src, n) === 0;
      case 1:
        for (let i = 0; i < n; i++) if (b[t.dst + i] !== this.#a.fill) return false;
        return true;
      case 2:
        return compareRange(b, t.dst, b, t.src, n) === 0 && compareRange(b, t.dst2, b, t.src, n) === 0;
      case 4:
        return result === crc32cRange(b, t.src, t.src + n, this.#a.seed);
      case 5:
        return (
          result === crc32cRange(b, t.src, t.src + n, this.#a.seed) &&
          compareRange(b, t.dst, b, t.src, n) === 0
        );
    }
    return true;
  }

  #stop(): number {
    this.#running = false;
    this.#timer?.unregister();
    this.#timer = null;
    if (this.#inflight === 0 && this.#retry.length === 0) this.#end();
    return 1;
  }

  #end(): void {
    if (this.#retryPoller === null) return;
    this.#retryPoller.unregister();
    this.#retryPoller = null;
    this.#io.put();
    this.#mem.close();
    this.#onEnd(this.#r);
  }
}
