// The I/O path of the bdev layer: submission (QoS, splitting, range locks, module), completion
// (NOMEM retry, children, statistics, the caller's callback) and the deferred queue that keeps
// completions out of submit calls. No allocation on the steady-state read/write path.
import { POLLER_IDLE } from '@storkit/reactor';
import { type BdevIo, Queue, Role } from './bdev-io.js';
import type { BdevChannel } from './channel.js';
import { BdevError } from './errors.js';
import { qosAdmit, qosApplies, qosWaiting } from './qos.js';
import { blockedByLock, cawLocked, lockRelease, rangeLockAcquire, recheckLocks } from './range-lock.js';
import { resetFinish } from './reset.js';
import { IoStatus, IoType, isWriteType } from './types.js';

/**
 * Read the current tick count of the channel's reactor into `ch.shared.now`: the batch's reading
 * inside a batch, else the clock. The per-I/O path uses this, not nowTicks: a function returning
 * a tick count (a double above V8's small-integer range) allocates a heap number per call unless
 * the compiler happened to inline it, while stores into and loads from number fields never do.
 */
export function sampleNow(ch: BdevChannel): void {
  const c = ch.shared;
  if (c.batchNow >= 0) {
    c.now = c.batchNow;
    return;
  }
  // Inside a poller run, one reading serves every I/O the run submits or completes (a vhost
  // queue poller submitting 64 requests, a socket poller parsing a read full of commands): the
  // clock read is a native call, 5% of a vhost target's core when made per I/O.
  const run = c.thread.pollerRun;
  if (run !== 0 && c.runId === run) {
    c.now = c.runNow;
    return;
  }
  const clock = c.thread.host.clock;
  clock.sample();
  c.now = clock.last;
  c.runId = run;
  c.runNow = c.now;
}

/** Current tick count of the channel's reactor (real ticks in a worker, fake in the harness). */
export function nowTicks(ch: BdevChannel): number {
  sampleNow(ch);
  return ch.shared.now;
}

/**
 * Run `fn(arg)` with one clock read shared by every completion and submission inside it (a
 * module's completion poller reaping a batch). Latencies then have the batch's granularity.
 */
export function withBatchClock<A>(ch: BdevChannel, fn: (arg: A) => void, arg: A): void {
  const c = ch.shared;
  if (c.batchNow >= 0) {
    fn(arg);
    return;
  }
  const clock = ch.thread.host.clock;
  clock.sample();
  c.batchNow = clock.last;
  try {
    fn(arg);
  } finally {
    c.batchNow = -1;
  }
}

/** @internal Entry for a freshly filled user bdev_io. */
export function submitIo(io: BdevIo): void {
  const ch = io.ch;
  sampleNow(ch);
  io.submitTick = ch.shared.now;
  if (ch.frozen > 0) {
    deferComplete(io, IoStatus.ABORTED);
    return;
  }
  const q = io.bdev.qos;
  if (q !== null && qosApplies(io.type)) {
    if (ch.qosQueue.head !== null || !qosAdmit(q, io, ch.qosShare)) {
      ch.qosQueue.push(io);
      qosWaiting(q, ch.qosShare, true);
      return;
    }
  }
  submitPastQos(io);
}

/** @internal After QoS admission (also children and released QoS-queued I/O). */
export function submitPastQos(io: BdevIo): void {
  const bdev = io.bdev;
  if (io.type === IoType.COMPARE_AND_WRITE) {
    io.role = Role.CAW;
    io.stage = 0;
    rangeLockAcquire(io);
    return;
  }
  if (io.type === IoType.COMPARE && !bdev.supported[IoType.COMPARE]) {
    compareEmuStart(io);
    return;
  }
  if ((io.type === IoType.READ || io.type === IoType.WRITE) && needsSplit(io)) {
    splitStart(io);
    return;
  }
  submitLocked(io);
}

/** @internal Range-lock check, then the module. */
export function submitLocked(io: BdevIo): void {
  const ch = io.ch;
  if (ch.locks.length > 0 && isWriteType(io.type) && blockedByLock(ch, io)) {
    ch.lockedQueue.push(io);
    return;
  }
  io.pastLock = true;
  submitToModule(io);
}

/** @internal */
export function submitToModule(io: BdevIo): void {
  const ch = io.ch;
  io.inModule = true;
  ch.inModule++;
  io.inSubmit = true;
  try {
    io.bdev.fn.submitRequest(ch.moduleCh, io);
  } catch (e) {
    io.bdev.submitErrors.record(e);
    if (io.inModule && io.queued === Queue.NONE) {
      io.deferStatus = IoStatus.FAILED;
      io.deferToUser = false;
      ch.shared.deferred.push(io);
    }
  } finally {
    io.inSubmit = false;
  }
}

/**
 * Finish an I/O a module was given (spdk_bdev_io_complete), exactly once. Safe to call inside
 * submitRequest: the bdev layer then defers it to the next poll. NOMEM: retried later.
 */
export function bdevIoComplete(io: BdevIo, status: IoStatus): void {
  if (!io.inModule || io.queued === Queue.DEFERRED) {
    throw new BdevError('EINVAL', `bdev_io of ${io.bdev.name} completed twice or never submitted`);
  }
  if (io.inSubmit) {
    io.deferStatus = status;
    io.deferToUser = false;
    io.ch.shared.deferred.push(io);
    return;
  }
  moduleDone(io, status);
}

/** @internal Run by the thread's deferred-completion poller. */
export function runDeferred(io: BdevIo): void {
  if (io.deferToUser) {
    io.deferToUser = false;
    finishIo(io, io.deferStatus);
  } else {
    moduleDone(io, io.deferStatus);
  }
}

/** @internal Complete `io` with `status` on a later poll (bdev-layer outcomes: aborts, failures). */
export function deferComplete(io: BdevIo, status: IoStatus): void {
  io.deferStatus = status;
  io.deferToUser = true;
  io.ch.shared.deferred.push(io);
}

function moduleDone(io: BdevIo, status: IoStatus): void {
  const ch = io.ch;
  io.inModule = false;
  ch.inModule--;
  if (status === IoStatus.NOMEM) {
    ch.nomemQueue.push(io);
    if (ch.inModule === 0) scheduleNomemRetry(ch);
    return;
  }
  io.pastLock = false;
  finishIo(io, status);
  if (ch.nomemQueue.head !== null) retryNomem(ch);
  if (ch.locks.length > 0) recheckLocks(ch);
  if (ch.zombie) maybeReleaseZombie(ch);
}

function retryNomem(ch: BdevChannel): void {
  let n = ch.nomemQueue.length;
  while (n-- > 0) {
    const io = ch.nomemQueue.shift();
    if (io === null) return;
    submitToModule(io);
  }
}

function scheduleNomemRetry(ch: BdevChannel): void {
  if (ch.nomemRetryPending) return;
  ch.nomemRetryPending = true;
  // Nothing in flight would trigger a retry: try again after a short pause (SPDK's nomem poller).
  const p = ch.thread.registerPoller(
    () => {
      p.unregister();
      ch.nomemRetryPending = false;
      retryNomem(ch);
      if (ch.zombie) maybeReleaseZombie(ch);
      return POLLER_IDLE;
    },
    100,
    'bdev_nomem_retry',
  );
}

/** @internal An I/O is done (module, bdev layer or children): to its parent or to the caller. */
export function finishIo(io: BdevIo, status: IoStatus): void {
  const p = io.parent;
  if (p !== null) {
    childDone(p, io, status);
    return;
  }
  if (io.type === IoType.RESET && io.stage === 1) {
    resetFinish(io, status);
    return;
  }
  completeUser(io, status);
}

/** @internal Statistics, back to the pool, the caller's callback, then queueIoWait entries. */
export function completeUser(io: BdevIo, status: IoStatus): void {
  const ch = io.ch;
  sampleNow(ch);
  const ticks = ch.shared.now - io.submitTick;
  ch.stat.record(io.type, io.numBlocks * io.bdev.blockSize, ticks, status);
  if (ch.histogram !== null) ch.histogram.tally(ticks);
  const cb = io.cb;
  const arg = io.cbArg;
  ch.putIo(io);
  if (cb !== null) cb(status, arg);
  if (ch.ioWait.head !== null) ch.runIoWaits();
  if (ch.zombie) maybeReleaseZombie(ch);
}

/** @internal set by channel destroy: the module channel is put once the last I/O is done. */
export let releaseZombie: (ch: BdevChannel) => void = () => {};
export function setReleaseZombie(f: (ch: BdevChannel) => void): void {
  releaseZombie = f;
}
function maybeReleaseZombie(ch: BdevChannel): void {
  if (ch.outstandingCount === 0 && ch.inModule === 0) releaseZombie(ch);
}

function childDone(p: BdevIo, child: BdevIo, status: IoStatus): void {
  const ch = child.ch;
  ch.putIo(child);
  switch (p.role) {
    case Role.SPLIT:
      splitChildDone(p, status);
      break;
    case Role.CAW:
      cawChildDone(p, status);
      break;
    case Role.COMPARE_EMU:
      compareEmuDone(p, status);
      break;
    case Role.ABORT:
      if (status !== IoStatus.SUCCESS) p.childStatus = IoStatus.FAILED;
      if (--p.childOutstanding === 0) finishIo(p, p.childStatus);
      break;
  }
  if (ch.ioWait.head !== null) ch.runIoWaits();
}

/** @internal A parent waiting for a free bdev_io gets one (its IoWaitEntry fired). */
export function resumeIo(io: BdevIo): void {
  if (io.role === Role.SPLIT) splitContinue(io);
  else if (io.role === Role.CAW) cawStep(io);
  else if (io.role === Role.COMPARE_EMU) compareEmuStart(io);
}

// ---- splitting ---------------------------------------------------------------------------

function needsSplit(io: BdevIo): boolean {
  const b = io.bdev;
  const boundary = b.optimalIoBoundary;
  if (b.splitOnOptimalIoBoundary && boundary > 0 && (io.offsetBlocks % boundary) + io.numBlocks > boundary)
    return true;
  if (b.maxRwBlocks > 0 && io.numBlocks > b.maxRwBlocks) return true;
  const iovs = io.iovs;
  if (b.maxSegments > 0 && iovs.length > b.maxSegments) return true;
  if (b.maxSegmentSize > 0) {
    for (let i = 0; i < iovs.length; i++) if (iovs[i].length > b.maxSegmentSize) return true;
  }
  return false;
}

function splitStart(p: BdevIo): void {
  p.role = Role.SPLIT;
  p.splitOffset = p.offsetBlocks;
  p.splitRemaining = p.numBlocks;
  p.splitIovIdx = 0;
  p.splitIovOff = 0;
  p.childOutstanding = 0;
  p.childStatus = IoStatus.SUCCESS;
  splitContinue(p);
}

function splitDoneIfIdle(p: BdevIo): boolean {
  if (p.childOutstanding > 0) return false;
  if (p.splitRemaining > 0 && p.childStatus === IoStatus.SUCCESS && !p.aborted) return false;
  finishIo(p, p.aborted ? IoStatus.ABORTED : p.childStatus);
  return true;
}

/** Submit children until the parent is covered, a child failed, or the pool is empty. */
function splitContinue(p: BdevIo): void {
  const ch = p.ch;
  const b = p.bdev;
  const bs = b.blockSize;
  while (p.splitRemaining > 0 && p.childStatus === IoStatus.SUCCESS && !p.aborted) {
    const c = ch.getIo();
    if (c === null) {
      if (p.childOutstanding === 0 && !p.waitEntry.queued) ch.ioWait.push(p.waitEntry);
      return;
    }
    let lim = p.splitRemaining;
    if (b.splitOnOptimalIoBoundary && b.optimalIoBoundary > 0) {
      lim = Math.min(lim, b.optimalIoBoundary - (p.splitOffset % b.optimalIoBoundary));
    }
    if (b.maxRwBlocks > 0) lim = Math.min(lim, b.maxRwBlocks);
    const got = fillChildIovs(p, c, lim * bs);
    if (got === 0) {
      ch.putIo(c);
      p.childStatus = IoStatus.FAILED; // one block spans more iovecs than the module takes
      break;
    }
    const blocks = got / bs;
    c.type = p.type;
    c.desc = p.desc;
    c.offsetBlocks = p.splitOffset;
    c.numBlocks = blocks;
    c.iovs = c.childIovs;
    c.parent = p;
    c.lockOwner = p.lockOwner;
    c.submitTick = p.submitTick;
    p.splitOffset += blocks;
    p.splitRemaining -= blocks;
    p.childOutstanding++;
    submitPastQos(c);
  }
  splitDoneIfIdle(p);
}

/** Views of the parent's buffers for the next child: at most `want` bytes, a whole number of blocks. */
function fillChildIovs(p: BdevIo, c: BdevIo, want: number): number {
  const b = p.bdev;
  const bs = b.blockSize;
  const maxSegs = b.maxSegments > 0 ? b.maxSegments : Number.MAX_SAFE_INTEGER;
  const maxSeg = b.maxSegmentSize > 0 ? b.maxSegmentSize : Number.MAX_SAFE_INTEGER;
  const iovs = p.iovs;
  const out = c.childIovs;
  out.length = 0;
  let idx = p.splitIovIdx;
  let off = p.splitIovOff;
  let got = 0;
  while (got < want && idx < iovs.length && out.length < maxSegs) {
    const buf = iovs[idx];
    let take = Math.min(buf.length - off, want - got, maxSeg);
    if (out.length === maxSegs - 1 && got + take < want) {
      take = Math.floor((got + take) / bs) * bs - got;
      if (take <= 0) break;
    }
    out.push(off === 0 && take === buf.length ? buf : buf.subarray(off, off + take));
    got += take;
    off += take;
    if (off === buf.length) {
      idx++;
      off = 0;
    }
  }
  if (got % bs !== 0) {
    // Trim to whole blocks (only possible when maxSegmentSize is not a block multiple).
    return 0;
  }
  p.splitIovIdx = idx;
  p.splitIovOff = off;
  return got;
}

function splitChildDone(p: BdevIo, status: IoStatus): void {
  p.childOutstanding--;
  if (status !== IoStatus.SUCCESS && p.childStatus === IoStatus.SUCCESS) p.childStatus = status;
  if (splitDoneIfIdle(p)) return;
  splitContinue(p);
}

// ---- compare emulation (module without COMPARE: read into a bounce buffer, then memcmp) --------

function compareEmuStart(p: BdevIo): void {
  p.role = Role.COMPARE_EMU;
  const c = p.ch.getIo();
  if (c === null) {
    if (!p.waitEntry.queued) p.ch.ioWait.push(p.waitEntry);
    return;
  }
  const bytes = p.numBlocks * p.bdev.blockSize;
  if (p.bounce === null || p.bounce.length < bytes) p.bounce = new Uint8Array(bytes);
  p.bounceIovs.length = 1;
  p.bounceIovs[0] = p.bounce.length === bytes ? p.bounce : p.bounce.subarray(0, bytes);
  c.type = IoType.READ;
  c.desc = p.desc;
  c.offsetBlocks = p.offsetBlocks;
  c.numBlocks = p.numBlocks;
  c.iovs = p.bounceIovs;
  c.parent = p;
  c.submitTick = p.submitTick;
  p.childOutstanding = 1;
  submitPastQos(c);
}

function compareEmuDone(p: BdevIo, status: IoStatus): void {
  p.childOutstanding = 0;
  if (status !== IoStatus.SUCCESS) {
    finishIo(p, status);
    return;
  }
  finishIo(p, iovsEqual(p.bounceIovs[0], p.iovs) ? IoStatus.SUCCESS : IoStatus.MISCOMPARE);
}

/** Whether the bytes of `iovs` equal `flat`. */
export function iovsEqual(flat: Uint8Array, iovs: readonly Uint8Array[]): boolean {
  let pos = 0;
  for (let i = 0; i < iovs.length; i++) {
    const v = iovs[i];
    for (let j = 0; j < v.length; j++) if (v[j] !== flat[pos + j]) return false;
    pos += v.length;
  }
  return true;
}

// ---- compare-and-write: lock the range everywhere, compare, write, unlock ---------------------

/** @internal the range lock is held: compare (stage 1), then write (stage 2). */
export function cawStep(p: BdevIo): void {
  const c = p.ch.getIo();
  if (c === null) {
    if (!p.waitEntry.queued) p.ch.ioWait.push(p.waitEntry);
    return;
  }
  p.stage++;
  c.type = p.stage === 1 ? IoType.COMPARE : IoType.WRITE;
  c.iovs = p.stage === 1 ? p.cmpIovs : p.iovs;
  c.desc = p.desc;
  c.offsetBlocks = p.offsetBlocks;
  c.numBlocks = p.numBlocks;
  c.parent = p;
  c.lockOwner = p.lockOwner;
  c.submitTick = p.submitTick;
  p.childOutstanding = 1;
  submitPastQos(c);
}

function cawChildDone(p: BdevIo, status: IoStatus): void {
  p.childOutstanding = 0;
  if (status === IoStatus.SUCCESS && p.stage === 1 && !p.aborted) {
    cawStep(p);
    return;
  }
  p.childStatus = p.aborted && status === IoStatus.SUCCESS && p.stage === 1 ? IoStatus.ABORTED : status;
  lockRelease(p);
}

export { cawLocked };
