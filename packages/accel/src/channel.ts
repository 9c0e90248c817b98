// A thread's channel to the accel framework (SPDK's accel_io_channel): its pool of tasks, each
// module's per-thread context, the completions waiting for their callbacks, and its counters.
// Nothing here allocates per operation: tasks, sequences and the completion ring are made once.
import { crc32cRange } from '@storkit/native';
import type { Poller, Thread } from '@storkit/reactor';

import { ACCEL_EAGAIN, ACCEL_ENOMEM } from './errors.js';
import type { AccelIovecs } from './iovecs.js';
import type { AccelModule } from './module.js';
import { ACCEL_OPC, ACCEL_OPC_COUNT } from './opcodes.js';
import {
  checkCompare,
  checkCopy,
  checkCrc,
  checkCrcv,
  checkDualcast,
  checkFill,
  checkSeed,
  setCompare,
  setCopy,
  setCrc,
  setCrcv,
  setDualcast,
  setFill,
} from './ops.js';
import { AccelBatch, AccelSequence, type GroupOwner } from './sequence.js';
import { type AccelCallback, AccelTask, type TaskSink } from './task.js';

/** Where an operation done inline (the *Now calls) leaves its outcome. */
class InlineSink implements TaskSink {
  taskDone(): void {}
}

/** One channel's counters (accel_get_stats sums them over every channel). */
export interface AccelChannelStats {
  /** Per opcode: operations completed without error, failed, and bytes they covered. */
  executed: Float64Array;
  failed: Float64Array;
  bytes: Float64Array;
  sequenceExecuted: number;
  sequenceFailed: number;
  /** Submits refused for want of a free task / sequence (SPDK's retry counters). */
  retryTask: number;
  retrySequence: number;
}

export class AccelChannel implements TaskSink, GroupOwner {
  readonly thread: Thread;
  readonly stats: AccelChannelStats = {
    executed: new Float64Array(ACCEL_OPC_COUNT),
    failed: new Float64Array(ACCEL_OPC_COUNT),
    bytes: new Float64Array(ACCEL_OPC_COUNT),
    sequenceExecuted: 0,
    sequenceFailed: 0,
    retryTask: 0,
    retrySequence: 0,
  };
  /** The module each opcode goes to. */
  readonly modules: readonly AccelModule[];
  readonly #uniq: AccelModule[] = [];
  readonly #mch: unknown[] = [];
  readonly #opIdx = new Int32Array(ACCEL_OPC_COUNT);
  readonly #polled: number[] = [];
  readonly #free: AccelTask[];
  #nfree: number;
  readonly #done: (AccelTask | null)[];
  readonly #doneMask: number;
  #dh = 0;
  #dt = 0;
  #inflight = 0;
  // Made on first use, up to sequence_count each, then reused.
  readonly #seqs: AccelSequence[] = [];
  readonly #batches: AccelBatch[] = [];
  #seqsMade = 0;
  #batchesMade = 0;
  readonly #maxGroups: number;
  readonly #poller: Poller;
  readonly #now = new AccelTask(new InlineSink());
  #destroyed = false;

  /** @internal the framework's io_device makes channels */
  constructor(
    thread: Thread,
    modules: readonly AccelModule[],
    opts: { task_count: number; sequence_count: number },
  ) {
    this.thread = thread;
    this.modules = modules;
    for (let op = 0; op < ACCEL_OPC_COUNT; op++) {
      const m = modules[op];
      let i = this.#uniq.indexOf(m);
      if (i < 0) {
        i = this.#uniq.push(m) - 1;
        this.#mch.push(m.createChannel(thread));
        if (m.poll !== undefined) this.#polled.push(i);
      }
      this.#opIdx[op] = i;
    }
    this.#free = [];
    for (let i = 0; i < opts.task_count; i++) this.#free.push(new AccelTask(this));
    this.#nfree = opts.task_count;
    let cap = 1;
    while (cap <= opts.task_count) cap <<= 1;
    this.#done = new Array(cap).fill(null);
    this.#doneMask = cap - 1;
    this.#maxGroups = opts.sequence_count;
    this.#poller = thread.registerPoller(() => this.#poll(), 0, 'accel_poll');
  }

  /** Operations submitted and not yet called back. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Each module's extra counters, by module name. */
  moduleStats(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (let i = 0; i < this.#uniq.length; i++) {
      const s = this.#uniq[i].stats?.(this.#mch[i]);
      if (s !== undefined) out[this.#uniq[i].name] = s;
    }
    return out;
  }

  // --- operations (SPDK's spdk_accel_submit_*). Each returns 0 (the callback runs later, exactly
  // once, on this thread) or ACCEL_ENOMEM (no free task: retry after completions); a bad argument
  // throws AccelError EINVAL and the callback never runs.

  /** Copy `len` bytes from `src[srcOff..]` to `dst[dstOff..]` (overlapping ranges: as memmove). */
  submitCopy(
    dst: Uint8Array,
    dstOff: number,
    src: Uint8Array,
    srcOff: number,
    len: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkCopy(dst, dstOff, src, srcOff, len);
    const t = this.#task(ACCEL_OPC.COPY, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setCopy(t, dst, dstOff, src, srcOff, len);
    return this.#submit(t);
  }

  /** Fill `len` bytes at `dst[dstOff..]` with `byte`. */
  submitFill(
    dst: Uint8Array,
    dstOff: number,
    len: number,
    byte: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkFill(dst, dstOff, len, byte);
    const t = this.#task(ACCEL_OPC.FILL, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setFill(t, dst, dstOff, len, byte);
    return this.#submit(t);
  }

  /** Copy `src[srcOff..]` to two destinations. */
  submitDualcast(
    dst1: Uint8Array,
    dst1Off: number,
    dst2: Uint8Array,
    dst2Off: number,
    src: Uint8Array,
    srcOff: number,
    len: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkDualcast(dst1, dst1Off, dst2, dst2Off, src, srcOff, len);
    const t = this.#task(ACCEL_OPC.DUALCAST, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setDualcast(t, dst1, dst1Off, dst2, dst2Off, src, srcOff, len);
    return this.#submit(t);
  }

  /** Compare two ranges: status 0 when equal, ACCEL_EMISCOMPARE when not. */
  submitCompare(
    a: Uint8Array,
    aOff: number,
    b: Uint8Array,
    bOff: number,
    len: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkCompare(a, aOff, b, bOff, len);
    const t = this.#task(ACCEL_OPC.COMPARE, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setCompare(t, a, aOff, b, bOff, len);
    return this.#submit(t);
  }

  /**
   * CRC32C (Castagnoli) of `src[srcOff, srcOff+len)` continuing from `seed` (0 to start, or the
   * CRC of what came before): the callback's `result` is the finished CRC, as crc32c() of
   * @storkit/native gives it. (SPDK's accel hands back the register before the final XOR.)
   */
  submitCrc32c(
    src: Uint8Array,
    srcOff: number,
    len: number,
    seed: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkCrc(src, srcOff, len, seed);
    const t = this.#task(ACCEL_OPC.CRC32C, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setCrc(t, src, srcOff, len, seed);
    return this.#submit(t);
  }

  /** CRC32C over a scatter list, as if its pieces were one buffer (spdk_accel_submit_crc32cv). */
  submitCrc32cv(iovs: AccelIovecs, seed: number, cb: AccelCallback, arg?: unknown): number {
    checkCrcv(iovs, seed);
    const t = this.#task(ACCEL_OPC.CRC32C, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setCrcv(t, iovs, seed);
    return this.#submit(t);
  }

  /** Copy, and the CRC32C of what was copied. */
  submitCopyCrc32c(
    dst: Uint8Array,
    dstOff: number,
    src: Uint8Array,
    srcOff: number,
    len: number,
    seed: number,
    cb: AccelCallback,
    arg?: unknown,
  ): number {
    checkCopy(dst, dstOff, src, srcOff, len);
    checkSeed(seed);
    const t = this.#task(ACCEL_OPC.COPY_CRC32C, cb, arg);
    if (t === null) return ACCEL_ENOMEM;
    setCopy(t, dst, dstOff, src, srcOff, len);
    t.seed = seed;
    return this.#submit(t);
  }

  // --- the same operations done now, on this CPU, when the module assigned to them does them so
  // (software always; offload under its minBytes; ioat for memory its engine does not reach).
  // They return what the callback would get, or ACCEL_EAGAIN: then submit the operation, for the
  // module's engine. A data path keeps a synchronous fast path this way, and a faster engine still
  // gets the work once assigned. Counted in accel_get_stats as any operation.

  /** submitCopy now: 0, or ACCEL_EAGAIN. */
  copyNow(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number {
    checkCopy(dst, dstOff, src, srcOff, len);
    const t = this.#now;
    t.op = ACCEL_OPC.COPY;
    setCopy(t, dst, dstOff, src, srcOff, len);
    return this.#runNow(t);
  }

  /** submitFill now: 0, or ACCEL_EAGAIN. */
  fillNow(dst: Uint8Array, dstOff: number, len: number, byte: number): number {
    checkFill(dst, dstOff, len, byte);
    const t = this.#now;
    t.op = ACCEL_OPC.FILL;
    setFill(t, dst, dstOff, len, byte);
    return this.#runNow(t);
  }

  /** submitCompare now: 0, ACCEL_EMISCOMPARE, or ACCEL_EAGAIN. */
  compareNow(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): number {
    checkCompare(a, aOff, b, bOff, len);
    const t = this.#now;
    t.op = ACCEL_OPC.COMPARE;
    setCompare(t, a, aOff, b, bOff, len);
    return this.#runNow(t);
  }

  /** submitCrc32c now: the CRC (0..2^32-1), or ACCEL_EAGAIN. */
  crc32cNow(src: Uint8Array, srcOff: number, len: number, seed: number): number {
    checkCrc(src, srcOff, len, seed);
    const t = this.#now;
    t.op = ACCEL_OPC.CRC32C;
    setCrc(t, src, srcOff, len, seed);
    const rc = this.#runNow(t);
    return rc === 0 ? this.#nowResult : rc;
  }

  /**
   * The shape of native crc32cRange (`buf[start..end)`, continuing `seed`), for a synchronous data
   * path that takes a CRC function (a PDU reader verifying data as it streams in, a PDU encoder):
   * crc32cNow where the assigned module does it on this CPU, else the CPU's crc32cRange (the
   * engine's round trip would not pay for a digest over a socket buffer it cannot reach anyway).
   * A bound property: pass `ch.crc32cRange` itself, nothing is made per call.
   */
  readonly crc32cRange = (buf: Uint8Array, start: number, end: number, seed = 0): number => {
    if (end > start) {
      const crc = this.crc32cNow(buf, start, end - start, seed);
      if (crc >= 0) return crc;
    }
    return crc32cRange(buf, start, end, seed);
  };

  #nowResult = 0;

  #runNow(t: AccelTask): number {
    const i = this.#opIdx[t.op];
    const m = this.#uniq[i];
    if (m.inline === undefined || !m.inline(this.#mch[i], t)) {
      t.reset();
      return ACCEL_EAGAIN;
    }
    const op = t.op;
    const st = t.status;
    if (st === 0) {
      this.stats.executed[op]++;
      this.stats.bytes[op] += t.len;
    } else {
      this.stats.failed[op]++;
    }
    this.#nowResult = t.result;
    t.reset();
    return st;
  }

  /**
   * A sequence: operations appended to it run one after another, in order, with one callback at
   * the end (the first failure stops it). Null when every sequence of this channel is in use.
   */
  sequence(): AccelSequence | null {
    if (this.#seqs.length === 0 && this.#seqsMade < this.#maxGroups) {
      this.#seqsMade++;
      this.#seqs.push(new AccelSequence(this));
    }
    const s = this.#seqs.pop();
    if (s === undefined) {
      this.stats.retrySequence++;
      return null;
    }
    s.pooled = false;
    return s;
  }

  /** A batch: operations appended to it are handed to the engines at once, one callback when all are done. */
  batch(): AccelBatch | null {
    if (this.#batches.length === 0 && this.#batchesMade < this.#maxGroups) {
      this.#batchesMade++;
      this.#batches.push(new AccelBatch(this));
    }
    const b = this.#batches.pop();
    if (b === undefined) {
      this.stats.retrySequence++;
      return null;
    }
    b.pooled = false;
    return b;
  }

  // --- GroupOwner: sequences and batches build and submit their tasks through these.

  /** @internal */
  groupTask(op: number): AccelTask | null {
    return this.#task(op, null, undefined);
  }
  /** @internal hand tasks to their modules without flushing; returns 0 or the first refusal */
  groupSubmit(t: AccelTask): number {
    const i = this.#opIdx[t.op];
    const rc = this.#uniq[i].submit(this.#mch[i], t);
    if (rc !== 0) return rc;
    t.live = true;
    this.#inflight++;
    return 0;
  }

  /** @internal one doorbell per module after a batch */
  groupFlush(): void {
    for (let i = 0; i < this.#uniq.length; i++) this.#uniq[i].flush?.(this.#mch[i]);
  }

  /** @internal give back a task that never ran */
  releaseTask(t: AccelTask): void {
    t.reset();
    this.#free[this.#nfree++] = t;
  }

  /** @internal */
  releaseSequence(s: AccelSequence): void {
    this.#seqs.push(s);
  }

  /** @internal */
  releaseBatch(b: AccelBatch): void {
    this.#batches.push(b);
  }

  /** @internal a sequence or batch finished */
  groupDone(failed: boolean, sequence: boolean): void {
    if (!sequence) return;
    if (failed) this.stats.sequenceFailed++;
    else this.stats.sequenceExecuted++;
  }

  /** @internal TaskSink: a module finished a task (maybe from another thread of this reactor). */
  taskDone(t: AccelTask): void {
    this.#done[this.#dt] = t;
    this.#dt = (this.#dt + 1) & this.#doneMask;
  }

  /**
   * @internal the io_device's destroy: the channel's last put. Operations still in flight finish
   * first (their callbacks run as usual); then the poller and the module channels go.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#inflight === 0) this.#teardown();
  }

  #teardown(): void {
    this.#poller.unregister();
    for (let i = 0; i < this.#uniq.length; i++) this.#uniq[i].destroyChannel?.(this.#mch[i]);
  }

  // --- internals

  #task(op: number, cb: AccelCallback | null, arg: unknown): AccelTask | null {
    if (this.#nfree === 0) {
      this.stats.retryTask++;
      return null;
    }
    const t = this.#free[--this.#nfree];
    t.op = op;
    t.cb = cb;
    t.arg = arg;
    t.status = 0;
    t.result = 0;
    return t;
  }

  #submit(t: AccelTask): number {
    const i = this.#opIdx[t.op];
    const m = this.#uniq[i];
    const rc = m.submit(this.#mch[i], t);
    if (rc !== 0) {
      this.releaseTask(t);
      return rc;
    }
    t.live = true;
    this.#inflight++;
    m.flush?.(this.#mch[i]);
    return 0;
  }

  #poll(): number {
    if (this.#inflight === 0) return 0;
    let n = 0;
    const polled = this.#polled;
    for (let k = 0; k < polled.length; k++) n += this.#uniq[polled[k]].poll?.(this.#mch[polled[k]]) ?? 0;
    // Only what is done now: callbacks that submit again see their completions next time.
    const end = this.#dt;
    while (this.#dh !== end) {
      const t = this.#done[this.#dh] as AccelTask;
      this.#done[this.#dh] = null;
      this.#dh = (this.#dh + 1) & this.#doneMask;
      this.#finish(t);
      n++;
    }
    if (this.#destroyed && this.#inflight === 0) this.#teardown();
    return n;
  }

  #finish(t: AccelTask): void {
    this.#inflight--;
    t.live = false;
    const op = t.op;
    if (t.status === 0) {
      this.stats.executed[op]++;
      this.stats.bytes[op] += t.len;
    } else {
      this.stats.failed[op]++;
    }
    const g = t.group;
    if (g !== null) {
      (g as AccelSequence | AccelBatch).taskFinished(t);
      return;
    }
    const cb = t.cb as AccelCallback;
    const arg = t.arg;
    const status = t.status;
    const result = t.result;
    this.releaseTask(t);
    cb(arg, status, result);
  }
}
