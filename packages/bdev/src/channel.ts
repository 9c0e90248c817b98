import { LinkedFifo } from '@storkit/block';
import {
  type IoChannel,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  registerPoller,
  type Thread,
} from '@storkit/reactor';
import type { Bdev } from './bdev.js';
import { BdevIo, Queue } from './bdev-io.js';
import type { IoWaitEntry } from './io-wait.js';
import { QosShare } from './qos.js';
import type { RangeLock } from './range-lock.js';
import { Histogram, IoStat } from './stats.js';

/**
 * bdev_ios per channel, made up front (SPDK's bdev_io_cache_size), and the most this worker makes
 * over all its channels (its share of bdev_io_pool_size); see setBdevOptions.
 */
export const bdevOptions = {
  ioPoolSize: 1024,
  ioBudget: Number.POSITIVE_INFINITY,
  timeoutPollUs: 1000,
  autoExamine: true,
};

/** bdev_ios this worker's live channels hold (at most bdevOptions.ioBudget, but 1 per channel). */
let ioMade = 0;

/** @internal */
export function bdevIosMade(): number {
  return ioMade;
}

/**
 * @internal per-thread bdev-layer state shared by the thread's bdev channels (SPDK's
 * spdk_bdev_shared_resource): deferred completions, the batch clock reading.
 */
export class SharedResource {
  readonly thread: Thread;
  readonly deferred = new LinkedFifo<BdevIo, Queue>(Queue.DEFERRED, Queue.NONE);
  refs = 0;
  poller: Poller | null = null;
  /** The tick count read once for a batch of completions (-1 outside one): one clock read per batch. */
  batchNow = -1;
  /** The latest reading of sampleNow (a number field: see sampleNow). */
  now = -1;
  /** The thread's pollerRun when `runNow` was read: a poller run reads the clock once. */
  runId = 0;
  runNow = -1;
  run: (io: BdevIo) => void;
  constructor(thread: Thread, run: (io: BdevIo) => void) {
    this.thread = thread;
    this.run = run;
  }
}

const sharedByThread = new Map<Thread, SharedResource>();

/** @internal */
export function acquireShared(t: Thread, run: (io: BdevIo) => void): SharedResource {
  let c = sharedByThread.get(t);
  if (c === undefined) {
    const ctx = new SharedResource(t, run);
    c = ctx;
    sharedByThread.set(t, c);
    c.poller = registerPoller(() => drainDeferred(ctx), 0, 'bdev_deferred');
  }
  c.refs++;
  return c;
}

/**
 * Run `fn(arg)` with one clock read shared by every bdev completion and submission inside it, on
 * thread `t` (for a module's completion poller reaping a batch). Latencies then have the batch's
 * granularity; the steady-state path reads the clock once per batch instead of per I/O.
 */
export function withThreadBatchClock<A>(t: Thread, fn: (arg: A) => number, arg: A): number {
  const c = sharedByThread.get(t);
  if (c === undefined || c.batchNow >= 0) return fn(arg);
  const clock = t.host.clock;
  clock.sample();
  c.batchNow = clock.last;
  try {
    return fn(arg);
  } finally {
    c.batchNow = -1;
  }
}

/** @internal */
export function releaseShared(c: SharedResource): void {
  if (--c.refs > 0) return;
  c.poller?.unregister();
  c.poller = null;
  sharedByThread.delete(c.thread);
}

function drainDeferred(c: SharedResource): number {
  const q = c.deferred;
  if (q.head === null) return POLLER_IDLE;
  // Only what is queued now: completions they cause wait for the next poll.
  let n = q.length;
  const clock = c.thread.host.clock;
  clock.sample();
  c.batchNow = clock.last;
  try {
    while (n-- > 0) {
      const io = q.shift();
      if (io === null) break;
      c.run(io);
    }
  } finally {
    c.batchNow = -1;
  }
  return POLLER_BUSY;
}

/**
 * A bdev's per-thread channel context (spdk_bdev_channel): the bdev_io pool, the module's channel,
 * the queues of I/O held back by the bdev layer, range locks, and statistics.
 */
export class BdevChannel {
  readonly bdev: Bdev;
  readonly thread: Thread;
  readonly moduleCh: IoChannel<unknown>;
  readonly shared: SharedResource;
  readonly #free: BdevIo[] = [];
  #freeCount = 0;
  readonly poolSize: number;
  readonly ioWait = new LinkedFifo<IoWaitEntry>();
  readonly nomemQueue = new LinkedFifo<BdevIo, Queue>(Queue.NOMEM, Queue.NONE);
  readonly qosQueue = new LinkedFifo<BdevIo, Queue>(Queue.QOS, Queue.NONE);
  readonly lockedQueue = new LinkedFifo<BdevIo, Queue>(Queue.LOCKED, Queue.NONE);
  /** Range locks held or being acquired, as this channel knows them. */
  readonly locks: RangeLock[] = [];
  /** Outstanding I/O (taken from the pool, not yet completed), oldest first. */
  oHead: BdevIo | null = null;
  oTail: BdevIo | null = null;
  /** I/O handed to the module and not completed. */
  inModule = 0;
  /** Resets freezing this channel (I/O submitted meanwhile is aborted). */
  frozen = 0;
  readonly stat = new IoStat();
  histogram: Histogram | null = null;
  qosPoller: Poller | null = null;
  readonly qosShare = new QosShare();
  timeoutPoller: Poller | null = null;
  /** Destroyed by its last put while I/O was in flight: released when that I/O is done. */
  zombie = false;
  nomemRetryPending = false;

  constructor(bdev: Bdev, thread: Thread, shared: SharedResource, resume: (io: BdevIo) => void) {
    this.bdev = bdev;
    this.thread = thread;
    this.shared = shared;
    this.moduleCh = bdev.fn.getIoChannel();
    // A channel made when the worker's share of bdev_io_pool_size is spent gets what is left, and
    // at least one (its I/O then waits on ENOMEM more often, but runs).
    this.poolSize = Math.max(1, Math.min(bdevOptions.ioPoolSize, bdevOptions.ioBudget - ioMade));
    ioMade += this.poolSize;
    for (let i = 0; i < this.poolSize; i++) {
      this.#free.push(new BdevIo(bdev, this, bdev.fn.createIoCtx?.(), resume));
    }
    this.#freeCount = this.poolSize;
    if (bdev.histogramEnabled) this.histogram = new Histogram();
    // Each channel keeps its own copy (the wait state is per channel). A lock behind an earlier
    // overlapping one holds nothing yet (see RangeLock.blocking) until that one is released here.
    for (const l of bdev.locks) {
      const behind = this.locks.some((o) => o.offset < l.offset + l.num && l.offset < o.offset + o.num);
      this.locks.push({ id: l.id, offset: l.offset, num: l.num, waitIt: null, blocking: !behind });
    }
  }

  get freeCount(): number {
    return this.#freeCount;
  }

  /** @internal the channel is gone: its bdev_ios no longer count against the worker's share */
  released(): void {
    ioMade -= this.poolSize;
  }

  /** Outstanding I/O count (user and internal). */
  get outstandingCount(): number {
    return this.poolSize - this.#freeCount;
  }

  /** A clean bdev_io from the pool, on the outstanding list; null when the pool is empty. */
  getIo(): BdevIo | null {
    if (this.#freeCount === 0) return null;
    const io = this.#free[--this.#freeCount];
    io.outstanding = true;
    io.oNext = null;
    io.oPrev = this.oTail;
    if (this.oTail === null) this.oHead = io;
    else this.oTail.oNext = io;
    this.oTail = io;
    return io;
  }

  /** Back to the pool (off the outstanding list). */
  putIo(io: BdevIo): void {
    if (io.oPrev === null) this.oHead = io.oNext;
    else io.oPrev.oNext = io.oNext;
    if (io.oNext === null) this.oTail = io.oPrev;
    else io.oNext.oPrev = io.oPrev;
    io.oNext = null;
    io.oPrev = null;
    io.outstanding = false;
    io.clear();
    this.#free[this.#freeCount++] = io;
  }

  /** Run queueIoWait entries while bdev_ios are free (spdk_bdev_free_io's io_wait pass). */
  runIoWaits(): void {
    while (this.#freeCount > 0 && this.ioWait.head !== null) {
      const e = this.ioWait.shift();
      if (e !== null) e.cb(e.cbArg);
    }
  }
}
