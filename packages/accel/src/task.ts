import type { AccelIovecs } from './iovecs.js';

/** Runs once per operation: status 0 or a negative errno; `result` is the CRC32C of crc ops. */
// biome-ignore lint/suspicious/noExplicitAny: channels hold callbacks of every argument type
export type AccelCallback<A = any> = (arg: A, status: number, result: number) => void;

/** What a task's owner does with a finished task (the channel). @internal */
export interface TaskSink {
  taskDone(task: AccelTask): void;
}

const EMPTY = new Uint8Array(0);

/**
 * One operation in flight (spdk_accel_task). Tasks are made once per channel and reused: the
 * fields are the operation's arguments as the submitter gave them. A module reads them, does the
 * work, and calls `complete()` exactly once, from any thread of the task's reactor; the callback
 * runs later on the task's own thread (never inside submit).
 */
export class AccelTask {
  /** Opcode (ACCEL_OPC). */
  op = 0;
  dst: Uint8Array = EMPTY;
  dstOff = 0;
  /** Second destination (dualcast). */
  dst2: Uint8Array = EMPTY;
  dst2Off = 0;
  /** Source; for compare, the first buffer (dst is the second). */
  src: Uint8Array = EMPTY;
  srcOff = 0;
  /** Bytes (for crc over iovecs: their total). */
  len = 0;
  /** crc32c: the CRC of what came before (0 to start). */
  seed = 0;
  /** fill: the byte. */
  fill = 0;
  /** crc32c over a scatter list (src unused then). */
  iovs: AccelIovecs | null = null;
  status = 0;
  /** crc ops: the CRC32C. */
  result = 0;
  /** @internal */ cb: AccelCallback | null = null;
  /** @internal */ arg: unknown = undefined;
  /** @internal */ owner: TaskSink;
  /** @internal a sequence or batch this task belongs to */ group: unknown = null;
  /** @internal while in flight */ live = false;

  constructor(owner: TaskSink) {
    this.owner = owner;
  }

  /** The module is done with it: status 0 or a negative errno, and the CRC for crc ops. */
  complete(status: number, result = 0): void {
    this.status = status;
    this.result = result >>> 0;
    this.owner.taskDone(this);
  }

  /** @internal drop buffer references so a pooled task keeps nothing alive */
  reset(): void {
    this.dst = EMPTY;
    this.dst2 = EMPTY;
    this.src = EMPTY;
    this.iovs = null;
    this.cb = null;
    this.arg = undefined;
    this.group = null;
  }
}
