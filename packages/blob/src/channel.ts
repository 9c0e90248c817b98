// Blob I/O on any thread (spdk_blob_io_readv and friends): a blob offset becomes a cluster of the
// base device through the blob's shared cluster map, its snapshot's, and so on up the chain;
// unallocated clusters of thin blobs read as zeroes, and a write to one asks the metadata thread
// for a cluster, then goes to it. The request objects are pooled per channel: steady-state I/O
// allocates nothing.
import {
  type BdevChannel,
  type BdevDesc,
  bdevFlush,
  bdevGetIoChannel,
  bdevReadv,
  bdevUnmap,
  bdevWritev,
  bdevWriteZeroes,
  ENOMEM,
  IoStatus,
  IoType,
  IoWaitEntry,
  queueIoWait,
} from '@storkit/bdev';
import type { IoChannel, Thread } from '@storkit/reactor';
import { BlobError } from './errors.js';
import { type BlobView, requestAlloc, type StoreView } from './views.js';

/** Completion of a blob I/O: status 0, or a negative errno (SPDK's bserrno). */
export type BlobIoCb<A> = (status: number, arg: A) => void;

export const BlobOp = { READ: 1, WRITE: 2, WRITE_ZEROES: 3, UNMAP: 4, FLUSH: 5 } as const;
export type BlobOp = (typeof BlobOp)[keyof typeof BlobOp];

const EIO = -5;
const EPERM = -1;
const EINVAL = -22;

/** @internal one blob I/O in progress (pooled per channel) */
export class BlobReq {
  readonly ch: BlobChannel;
  readonly token: number;
  view: BlobView | null = null;
  op: BlobOp = BlobOp.READ;
  iovs: readonly Uint8Array[] = [];
  offset = 0;
  num = 0;
  /** Blocks finished. */
  done = 0;
  /** Blocks of the chunk in flight. */
  cur = 0;
  status = 0;
  cb: BlobIoCb<unknown> | null = null;
  arg: unknown = undefined;
  /** Counted in its view's inflight. */
  counted = false;
  next: BlobReq | null = null;
  /** The external snapshot's channel while a chunk reads from it. */
  esnapCh: IoChannel<BdevChannel> | null = null;
  /** The chunk's buffers when the request spans clusters. */
  readonly part: Uint8Array[] = [];
  readonly wait: IoWaitEntry;
  constructor(ch: BlobChannel, token: number) {
    this.ch = ch;
    this.token = token;
    this.wait = new IoWaitEntry(retry as (a: unknown) => void, this);
  }
}

/** A blobstore's I/O channel on one thread (spdk_bs_channel): its base bdev channel and pools. */
export class BlobChannel {
  readonly store: StoreView;
  readonly base: IoChannel<BdevChannel>;
  readonly thread: Thread;
  #reqs: BlobReq[] = [];
  #free: BlobReq[] = [];
  /** Requests held back by a freeze, in order. */
  #frozen: BlobReq[] = [];

  constructor(store: StoreView, base: IoChannel<BdevChannel>, thread: Thread) {
    this.store = store;
    this.base = base;
    this.thread = thread;
    store.channels.set(thread, this);
    this.#grow(64);
  }

  #grow(n: number): void {
    for (let i = 0; i < n; i++) {
      const r = new BlobReq(this, this.#reqs.length);
      this.#reqs.push(r);
      this.#free.push(r);
    }
  }

  /** @internal */
  take(): BlobReq {
    if (this.#free.length === 0) this.#grow(this.#reqs.length);
    return this.#free.pop() as BlobReq;
  }

  /** @internal */
  give(r: BlobReq): void {
    r.view = null;
    r.iovs = EMPTY;
    r.cb = null;
    r.arg = undefined;
    r.part.length = 0;
    this.#free.push(r);
  }

  /** @internal */
  holdFrozen(r: BlobReq): void {
    this.#frozen.push(r);
  }

  /** @internal resubmit the requests a freeze of blob `id` held back */
  resumeFrozen(id: number): void {
    if (this.#frozen.length === 0) return;
    const keep: BlobReq[] = [];
    const go: BlobReq[] = [];
    for (const r of this.#frozen) (r.view?.id === id ? go : keep).push(r);
    this.#frozen = keep;
    for (const r of go) start(r);
  }

  /** @internal the metadata thread answered an allocation */
  allocDone(token: number, status: number): void {
    const r = this.#reqs[token];
    if (r === undefined || r.view === null) return;
    if (status !== 0) finish(r, status);
    else step(r);
  }

  /** @internal */
  destroy(): void {
    for (const r of this.#frozen) finish(r, EIO);
    this.#frozen = [];
    this.store.channels.delete(this.thread);
    this.base.put();
  }
}

const EMPTY: readonly Uint8Array[] = Object.freeze([]);

function submit<A>(
  view: BlobView,
  ch: IoChannel<BlobChannel>,
  op: BlobOp,
  iovs: readonly Uint8Array[],
  offset: number,
  num: number,
  cb: BlobIoCb<A>,
  arg: A,
): void {
  const c = ch.ctx;
  if (c.store !== view.store) throw new BlobError('EINVAL', 'the channel belongs to another blobstore');
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(num) || offset < 0 || num < 0)
    throw new BlobError('EINVAL', `blocks ${offset}+${num}`);
  const r = c.take();
  r.view = view;
  r.op = op;
  r.iovs = iovs;
  r.offset = offset;
  r.num = num;
  r.done = 0;
  r.cur = 0;
  r.status = 0;
  r.cb = cb as BlobIoCb<unknown>;
  r.arg = arg;
  r.counted = false;
  if (op !== BlobOp.READ && op !== BlobOp.FLUSH && view.readOnly) {
    fail(r, EPERM);
    return;
  }
  if (offset + num > view.numBlocks) {
    fail(r, EINVAL);
    return;
  }
  start(r);
}

/** Complete a request that never started: still never inside the submitting call. */
function fail(r: BlobReq, status: number): void {
  r.status = status;
  r.ch.thread.sendMsg(complete, r);
}

function start(r: BlobReq): void {
  const v = r.view as BlobView;
  if (v.frozen > 0) {
    r.ch.holdFrozen(r);
    return;
  }
  v.inflight++;
  r.counted = true;
  if (r.num === 0) {
    r.ch.thread.sendMsg(complete, r);
    return;
  }
  step(r);
}

function retry(r: BlobReq): void {
  step(r);
}

/** Issue the next chunk (the part of the request within one cluster). */
function step(r: BlobReq): void {
  const v = r.view as BlobView;
  const s = v.store;
  const cb = s.clusterBlocks;
  const off = r.offset + r.done;
  const ci = s.clusterShift >= 0 ? Math.floor(off / cb) : Math.floor(off / cb);
  const within = off - ci * cb;
  const n = Math.min(r.num - r.done, cb - within);
  r.cur = n;
  if (r.op === BlobOp.FLUSH) {
    issue(r, IoType.FLUSH, 0, 0);
    return;
  }
  const own = v.map[ci];
  if (own !== 0) {
    issue(r, opType(r.op), own * cb + within, n);
    return;
  }
  const from = locate(v.parent, ci);
  switch (r.op) {
    case BlobOp.READ:
      if (from !== 0) issue(r, IoType.READ, from * cb + within, n);
      else if (esnapOf(v) !== null) readEsnap(r, esnapOf(v) as BlobView, off, n);
      else zeroChunk(r);
      return;
    case BlobOp.WRITE:
      if (!v.thin) finish(r, EIO);
      else requestAlloc(s, r.ch, v.id % 2 ** 32, ci, r.token);
      return;
    case BlobOp.WRITE_ZEROES:
      // Unallocated with nothing below reads as zeroes already; with a snapshot below, the cluster
      // must be copied first (then the zeroes go over the copy).
      if (from === 0 && esnapOf(v) === null) chunkDone(IoStatus.SUCCESS, r);
      else requestAlloc(s, r.ch, v.id % 2 ** 32, ci, r.token);
      return;
    case BlobOp.UNMAP:
      chunkDone(IoStatus.SUCCESS, r);
      return;
  }
}

/** The clone of an external snapshot at the end of `v`'s snapshot chain, if it ends in one. */
function esnapOf(v: BlobView): BlobView | null {
  let p = v;
  while (p.parent !== null) p = p.parent;
  return p.esnap === '' ? null : p;
}

/**
 * Read blocks `off`..+`n` of the blob from its external snapshot (the same offset there, in the
 * external bdev's blocks); past the external bdev's end (the clone grew), zeroes.
 */
function readEsnap(r: BlobReq, e: BlobView, off: number, n: number): void {
  let desc: BdevDesc;
  try {
    desc = e.esnapOpen();
  } catch {
    finish(r, EIO);
    return;
  }
  const k = (r.view as BlobView).store.blockSize / desc.bdev.blockSize;
  if (off * k >= desc.bdev.numBlocks) {
    zeroChunk(r);
    return;
  }
  // Clones are made a whole number of clusters of a device that size: a chunk (within a cluster)
  // is wholly inside unless the external bdev shrank since.
  if ((off + n) * k > desc.bdev.numBlocks) {
    finish(r, EIO);
    return;
  }
  const ch = bdevGetIoChannel(desc);
  r.esnapCh = ch;
  const rc = bdevReadv(desc, ch, chunkIovs(r), off * k, n * k, esnapDone, r);
  if (rc === ENOMEM) {
    // Retried as a whole chunk: give this channel reference back first.
    r.esnapCh = null;
    ch.put();
    queueIoWait(r.ch.base, r.wait);
  }
}

function esnapDone(status: IoStatus, r: BlobReq): void {
  r.esnapCh?.put();
  r.esnapCh = null;
  chunkDone(status, r);
}

/** The base cluster holding blob cluster `ci` in the snapshot chain from `p`, or 0 (zeroes). */
function locate(p: BlobView | null, ci: number): number {
  while (p !== null) {
    if (ci >= p.numClusters) return 0;
    const c = p.map[ci];
    if (c !== 0) return c;
    p = p.parent;
  }
  return 0;
}

function opType(op: BlobOp): IoType {
  switch (op) {
    case BlobOp.READ:
      return IoType.READ;
    case BlobOp.WRITE:
      return IoType.WRITE;
    case BlobOp.WRITE_ZEROES:
      return IoType.WRITE_ZEROES;
    case BlobOp.UNMAP:
      return IoType.UNMAP;
    default:
      return IoType.FLUSH;
  }
}

function chunkIovs(r: BlobReq): readonly Uint8Array[] {
  if (r.done === 0 && r.cur === r.num) return r.iovs;
  const bs = (r.view as BlobView).store.blockSize;
  let skip = r.done * bs;
  let want = r.cur * bs;
  const out = r.part;
  out.length = 0;
  for (const iov of r.iovs) {
    if (want === 0) break;
    if (skip >= iov.length) {
      skip -= iov.length;
      continue;
    }
    const take = Math.min(iov.length - skip, want);
    out.push(iov.subarray(skip, skip + take));
    want -= take;
    skip = 0;
  }
  return out;
}

function issue(r: BlobReq, type: IoType, lba: number, n: number): void {
  const s = (r.view as BlobView).store;
  const desc = s.desc as BdevDesc;
  const ch = r.ch.base;
  let rc: number;
  switch (type) {
    case IoType.READ:
      rc = bdevReadv(desc, ch, chunkIovs(r), lba, n, chunkDone, r);
      break;
    case IoType.WRITE:
      rc = bdevWritev(desc, ch, chunkIovs(r), lba, n, chunkDone, r);
      break;
    case IoType.WRITE_ZEROES:
      rc = bdevWriteZeroes(desc, ch, lba, n, chunkDone, r);
      break;
    case IoType.UNMAP:
      if (!desc.bdev.ioTypeSupported(IoType.UNMAP)) {
        r.ch.thread.sendMsg(unmapNoop, r);
        return;
      }
      rc = bdevUnmap(desc, ch, lba, n, chunkDone, r);
      break;
    default:
      rc = bdevFlush(desc, ch, 0, desc.bdev.numBlocks, chunkDone, r);
      r.cur = r.num;
      break;
  }
  if (rc === ENOMEM) queueIoWait(ch, r.wait);
}

function unmapNoop(r: BlobReq): void {
  chunkDone(IoStatus.SUCCESS, r);
}

function zeroChunk(r: BlobReq): void {
  for (const iov of chunkIovs(r)) iov.fill(0);
  r.ch.thread.sendMsg(zeroDone, r);
}

function zeroDone(r: BlobReq): void {
  chunkDone(IoStatus.SUCCESS, r);
}

function chunkDone(status: IoStatus, r: BlobReq): void {
  if (status !== IoStatus.SUCCESS) {
    finish(r, EIO);
    return;
  }
  r.done += r.cur;
  if (r.done >= r.num) finish(r, 0);
  else step(r);
}

function finish(r: BlobReq, status: number): void {
  r.status = status;
  complete(r);
}

function complete(r: BlobReq): void {
  const cb = r.cb as BlobIoCb<unknown>;
  const arg = r.arg;
  const status = r.status;
  const v = r.view;
  const counted = r.counted;
  r.ch.give(r);
  if (counted) v?.done();
  cb(status, arg);
}

/**
 * Read `num` blocks at block `offset` of the blob into `iovs` (spdk_blob_io_readv). `cb(0 | -errno,
 * arg)` runs once, on this thread, never inside the call. Throws (and never calls back) for a
 * channel of another blobstore or a malformed range.
 */
export function blobReadv<A>(
  view: BlobView,
  ch: IoChannel<BlobChannel>,
  iovs: readonly Uint8Array[],
  offset: number,
  num: number,
  cb: BlobIoCb<A>,
  arg: A,
): void {
  submit(view, ch, BlobOp.READ, iovs, offset, num, cb, arg);
}

/** Write (spdk_blob_io_writev); a thin blob's unallocated cluster is allocated first. */
export function blobWritev<A>(
  view: BlobView,
  ch: IoChannel<BlobChannel>,
  iovs: readonly Uint8Array[],
  offset: number,
  num: number,
  cb: BlobIoCb<A>,
  arg: A,
): void {
  submit(view, ch, BlobOp.WRITE, iovs, offset, num, cb, arg);
}

/** Write zeroes (spdk_blob_io_write_zeroes). */
export function blobWriteZeroes<A>(
  view: BlobView,
  ch: IoChannel<BlobChannel>,
  offset: number,
  num: number,
  cb: BlobIoCb<A>,
  arg: A,
): void {
  submit(view, ch, BlobOp.WRITE_ZEROES, EMPTY, offset, num, cb, arg);
}

/** Unmap (spdk_blob_io_unmap): passed to the base for allocated clusters when it can unmap. */
export function blobUnmap<A>(
  view: BlobView,
  ch: IoChannel<BlobChannel>,
  offset: number,
  num: number,
  cb: BlobIoCb<A>,
  arg: A,
): void {
  submit(view, ch, BlobOp.UNMAP, EMPTY, offset, num, cb, arg);
}

/** Flush the base device's volatile cache. */
export function blobFlush<A>(view: BlobView, ch: IoChannel<BlobChannel>, cb: BlobIoCb<A>, arg: A): void {
  submit(view, ch, BlobOp.FLUSH, EMPTY, 0, 1, cb, arg);
}
