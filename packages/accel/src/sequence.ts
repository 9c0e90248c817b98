// Several operations, one callback. A sequence (SPDK's spdk_accel_sequence) runs them one after
// another, in order, and stops at the first failure; a batch hands them all to the engines at once
// (one doorbell per engine) and reports the first failure once every one has finished. Both are
// pooled per channel; their tasks come from the channel's pool as operations are appended.
import { ACCEL_ENOMEM, AccelError } from './errors.js';
import type { AccelIovecs } from './iovecs.js';
import { ACCEL_OPC } from './opcodes.js';
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
import type { AccelCallback, AccelTask } from './task.js';

/** What a sequence or batch needs from its channel. @internal */
export interface GroupOwner {
  groupTask(op: number): AccelTask | null;
  groupSubmit(t: AccelTask): number;
  groupFlush(): void;
  releaseTask(t: AccelTask): void;
  releaseSequence(s: AccelSequence): void;
  releaseBatch(b: AccelBatch): void;
  groupDone(failed: boolean, sequence: boolean): void;
}

/** Operations one sequence or batch holds at most. */
export const ACCEL_GROUP_MAX = 32;

const NO_OUT = new Uint32Array(0);

abstract class AccelGroup {
  protected readonly owner: GroupOwner;
  protected readonly tasks: (AccelTask | null)[] = new Array(ACCEL_GROUP_MAX).fill(null);
  readonly #outs: Uint32Array[] = new Array(ACCEL_GROUP_MAX).fill(NO_OUT);
  readonly #outIdx = new Int32Array(ACCEL_GROUP_MAX).fill(-1);
  protected n = 0;
  protected cb: AccelCallback | null = null;
  protected arg: unknown = undefined;
  protected status = 0;
  protected result = 0;
  protected started = false;
  /** @internal in its channel's pool (not handed out) */
  pooled = true;

  constructor(owner: GroupOwner) {
    this.owner = owner;
  }

  /** Operations appended so far. */
  get length(): number {
    return this.n;
  }

  // Each append returns 0, or ACCEL_ENOMEM when the channel has no free task (abort() or finish
  // what is there). Bad arguments throw AccelError EINVAL; the group is unchanged then.

  appendCopy(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): number {
    checkCopy(dst, dstOff, src, srcOff, len);
    const t = this.#add(ACCEL_OPC.COPY);
    if (t === null) return ACCEL_ENOMEM;
    setCopy(t, dst, dstOff, src, srcOff, len);
    return 0;
  }

  appendFill(dst: Uint8Array, dstOff: number, len: number, byte: number): number {
    checkFill(dst, dstOff, len, byte);
    const t = this.#add(ACCEL_OPC.FILL);
    if (t === null) return ACCEL_ENOMEM;
    setFill(t, dst, dstOff, len, byte);
    return 0;
  }

  appendDualcast(
    dst1: Uint8Array,
    dst1Off: number,
    dst2: Uint8Array,
    dst2Off: number,
    src: Uint8Array,
    srcOff: number,
    len: number,
  ): number {
    checkDualcast(dst1, dst1Off, dst2, dst2Off, src, srcOff, len);
    const t = this.#add(ACCEL_OPC.DUALCAST);
    if (t === null) return ACCEL_ENOMEM;
    setDualcast(t, dst1, dst1Off, dst2, dst2Off, src, srcOff, len);
    return 0;
  }

  appendCompare(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): number {
    checkCompare(a, aOff, b, bOff, len);
    const t = this.#add(ACCEL_OPC.COMPARE);
    if (t === null) return ACCEL_ENOMEM;
    setCompare(t, a, aOff, b, bOff, len);
    return 0;
  }

  /** CRC32C; its result also goes to `out[outIndex]` when given (the callback gets the last one). */
  appendCrc32c(
    src: Uint8Array,
    srcOff: number,
    len: number,
    seed: number,
    out?: Uint32Array,
    outIndex = 0,
  ): number {
    checkCrc(src, srcOff, len, seed);
    const t = this.#add(ACCEL_OPC.CRC32C, out, outIndex);
    if (t === null) return ACCEL_ENOMEM;
    setCrc(t, src, srcOff, len, seed);
    return 0;
  }

  appendCrc32cv(iovs: AccelIovecs, seed: number, out?: Uint32Array, outIndex = 0): number {
    checkCrcv(iovs, seed);
    const t = this.#add(ACCEL_OPC.CRC32C, out, outIndex);
    if (t === null) return ACCEL_ENOMEM;
    setCrcv(t, iovs, seed);
    return 0;
  }

  appendCopyCrc32c(
    dst: Uint8Array,
    dstOff: number,
    src: Uint8Array,
    srcOff: number,
    len: number,
    seed: number,
    out?: Uint32Array,
    outIndex = 0,
  ): number {
    checkCopy(dst, dstOff, src, srcOff, len);
    checkSeed(seed);
    const t = this.#add(ACCEL_OPC.COPY_CRC32C, out, outIndex);
    if (t === null) return ACCEL_ENOMEM;
    setCopy(t, dst, dstOff, src, srcOff, len);
    t.seed = seed;
    return 0;
  }

  /** Drop it unstarted: its tasks go back to the channel, no callback runs. */
  abort(): void {
    if (this.pooled) throw new AccelError('EINVAL', 'this sequence or batch was already released');
    if (this.started) throw new AccelError('EBUSY', 'a started sequence or batch cannot be aborted');
    this.#releaseFrom(0);
    this.#recycle();
  }

  /** @internal a task of this group finished (on the channel's thread) */
  abstract taskFinished(t: AccelTask): void;

  protected abstract recycle(): void;

  /** Record a finished task's outcome and give it back. */
  protected settle(t: AccelTask, i: number): void {
    if (t.op === ACCEL_OPC.CRC32C || t.op === ACCEL_OPC.COPY_CRC32C) {
      this.result = t.result;
      const o = this.#outs[i];
      if (o !== NO_OUT) o[this.#outIdx[i]] = t.result;
    }
    if (t.status !== 0 && this.status === 0) this.status = t.status;
    this.tasks[i] = null;
    this.owner.releaseTask(t);
  }

  /** Give back tasks i.. that never ran. */
  #releaseFrom(i: number): void {
    for (let k = i; k < this.n; k++) {
      const t = this.tasks[k];
      if (t !== null) {
        this.tasks[k] = null;
        this.owner.releaseTask(t);
      }
    }
  }

  protected releaseFrom(i: number): void {
    this.#releaseFrom(i);
  }

  /** The callback, once; the group goes back to its channel first, so the callback may reuse it. */
  protected complete(sequence: boolean): void {
    const cb = this.cb as AccelCallback;
    const arg = this.arg;
    const status = this.status;
    const result = this.result;
    this.owner.groupDone(status !== 0, sequence);
    this.#recycle();
    cb(arg, status, result);
  }

  protected begin(cb: AccelCallback, arg: unknown): void {
    if (this.pooled) throw new AccelError('EINVAL', 'this sequence or batch was released');
    if (this.started) throw new AccelError('EBUSY', 'this sequence or batch was already started');
    if (this.n === 0) throw new AccelError('EINVAL', 'nothing was appended');
    this.started = true;
    this.cb = cb;
    this.arg = arg;
    this.status = 0;
    this.result = 0;
  }

  #recycle(): void {
    for (let i = 0; i < this.n; i++) {
      this.#outs[i] = NO_OUT;
      this.#outIdx[i] = -1;
    }
    this.n = 0;
    this.cb = null;
    this.arg = undefined;
    this.started = false;
    this.pooled = true;
    this.recycle();
  }

  #add(op: number, out?: Uint32Array, outIndex = 0): AccelTask | null {
    if (this.pooled) throw new AccelError('EINVAL', 'this sequence or batch was released');
    if (this.started) throw new AccelError('EBUSY', 'operations cannot be appended once started');
    if (this.n === ACCEL_GROUP_MAX) {
      throw new AccelError('EINVAL', `a sequence or batch holds at most ${ACCEL_GROUP_MAX} operations`);
    }
    if (out !== undefined && !(outIndex >= 0 && outIndex < out.length && Number.isInteger(outIndex))) {
      throw new AccelError('EINVAL', `result index ${outIndex} is outside its array`);
    }
    const t = this.owner.groupTask(op);
    if (t === null) return null;
    t.group = this;
    this.tasks[this.n] = t;
    if (out !== undefined) {
      this.#outs[this.n] = out;
      this.#outIdx[this.n] = outIndex;
    }
    this.n++;
    return t;
  }
}

/** Operations run in order; the first failure stops the rest (which never run). */
export class AccelSequence extends AccelGroup {
  #next = 0;

  /**
   * Start it (spdk_accel_sequence_finish): `cb(arg, status, result)` runs once when the last
   * operation is done or one fails; `result` is the last CRC computed. Returns 0, or the first
   * operation's refusal (the callback then never runs and the sequence is released).
   */
  finish(cb: AccelCallback, arg?: unknown): number {
    this.begin(cb, arg);
    this.#next = 0;
    const rc = this.#run();
    if (rc !== 0) {
      this.started = false;
      this.abort();
    }
    return rc;
  }

  #run(): number {
    const t = this.tasks[this.#next] as AccelTask;
    const rc = this.owner.groupSubmit(t);
    if (rc === 0) this.owner.groupFlush();
    return rc;
  }

  taskFinished(t: AccelTask): void {
    this.settle(t, this.#next++);
    if (this.status === 0 && this.#next < this.n) {
      const rc = this.#run();
      if (rc === 0) return;
      this.status = rc;
    }
    this.releaseFrom(this.#next);
    this.complete(true);
  }

  protected recycle(): void {
    this.owner.releaseSequence(this);
  }
}

/** Operations handed to the engines together; one callback once all are done. */
export class AccelBatch extends AccelGroup {
  #pending = 0;

  /**
   * Submit every operation, then flush each engine once. `cb(arg, status, result)` runs when all
   * are done: status is the first failure, result the last CRC. Returns 0, or the refusal of the
   * first operation (then nothing ran and no callback comes); a later refusal fails the batch
   * through its callback once the operations already submitted are done.
   */
  submit(cb: AccelCallback, arg?: unknown): number {
    this.begin(cb, arg);
    let k = 0;
    let rc = 0;
    for (; k < this.n; k++) {
      rc = this.owner.groupSubmit(this.tasks[k] as AccelTask);
      if (rc !== 0) break;
    }
    if (k === 0) {
      this.started = false;
      this.abort();
      return rc;
    }
    this.#pending = k;
    if (rc !== 0) {
      this.status = rc;
      this.releaseFrom(k);
    }
    this.owner.groupFlush();
    return 0;
  }

  taskFinished(t: AccelTask): void {
    this.settle(t, this.tasks.indexOf(t));
    if (--this.#pending === 0) this.complete(false);
  }

  protected recycle(): void {
    this.owner.releaseBatch(this);
  }
}
