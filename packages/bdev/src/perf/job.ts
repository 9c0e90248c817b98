// One bdevperf job: a bdev driven at a queue depth from the current thread. Tasks, buffers and
// callbacks are made up front; the I/O path allocates nothing.
import { DmaRegion } from '@storkit/native';
import type { IoChannel } from '@storkit/reactor';
import type { BdevChannel } from '../channel.js';
import type { BdevDesc } from '../desc.js';
import { bdevRegisterDmaRegion, bdevUnregisterDmaRegion } from '../dma-buffers.js';
import { bdevFlush, bdevRead, bdevUnmap, bdevWrite, bdevWriteZeroes, queueIoWait } from '../io.js';
import { sampleNow } from '../io-path.js';
import { IoWaitEntry } from '../io-wait.js';
import { bdevClose, bdevGetIoChannel, bdevOpenExt } from '../registry.js';
import { Histogram } from '../stats.js';
import { ENOMEM, IoStatus } from '../types.js';

export type Workload =
  | 'randread'
  | 'randwrite'
  | 'read'
  | 'write'
  | 'rw'
  | 'randrw'
  | 'verify'
  | 'unmap'
  | 'flush'
  | 'write_zeroes';
export const WORKLOADS: readonly Workload[] = [
  'randread',
  'randwrite',
  'read',
  'write',
  'rw',
  'randrw',
  'verify',
  'unmap',
  'flush',
  'write_zeroes',
];

export interface JobOptions {
  bdev: string;
  queueDepth: number;
  ioSize: number;
  workload: Workload;
  /** Percent reads for rw / randrw. */
  rwmix: number;
  seed: number;
  /** Tally every I/O's latency in a histogram (bdevperf -l). */
  latency?: boolean;
  /** verify: this job's share of the bdev when several reactors verify the same bdev. */
  part?: { index: number; count: number };
}

/** Counters a job reports (plain numbers: they travel as JSON). */
export interface JobStats {
  name: string;
  reactor: number;
  ios: number;
  bytes: number;
  errors: number;
  miscompares: number;
  /** Block offset of the first miscompare (-1: none). */
  firstMiscompare: number;
  latTicks: number;
  minTicks: number;
  maxTicks: number;
  timeouts: number;
  /** -l: the latency histogram's buckets (Histogram's layout, ticks). */
  hist?: number[];
}

// The workload as a small integer, fixed per job: the options arrive by message, so their strings
// are not internalized and each === against a literal is a character compare (1.3% of a null
// bdevperf run, twice per I/O) where SPDK's bdevperf compares ints.
const W_RANDREAD = 0;
const W_READ = 1;
const W_RANDWRITE = 2;
const W_WRITE = 3;
const W_RW = 4;
const W_RANDRW = 5;
const W_VERIFY = 6;
const W_UNMAP = 7;
const W_FLUSH = 8;
const W_OTHER = 9;
const W_CODES: Record<string, number> = {
  randread: W_RANDREAD,
  read: W_READ,
  randwrite: W_RANDWRITE,
  write: W_WRITE,
  rw: W_RW,
  randrw: W_RANDRW,
  verify: W_VERIFY,
  unmap: W_UNMAP,
  flush: W_FLUSH,
};

const OP_READ = 0;
const OP_WRITE = 1;
const OP_OTHER = 2;

class Task {
  readonly job: Job;
  readonly buf: Uint8Array;
  readonly rbuf: Uint8Array | null;
  readonly wait: IoWaitEntry;
  offset = 0;
  op = OP_READ;
  /** verify: 0 = writing, 1 = reading back. */
  phase = 0;
  start = 0;
  constructor(job: Job, buf: Uint8Array, rbuf: Uint8Array | null) {
    this.job = job;
    this.buf = buf;
    this.rbuf = rbuf;
    this.wait = new IoWaitEntry((t) => submitTask(t as Task), this);
    this.wait.cbArg = this;
  }
}

export class Job {
  readonly opts: JobOptions;
  readonly desc: BdevDesc;
  readonly ch: IoChannel<BdevChannel>;
  readonly region: DmaRegion;
  readonly blocks: number;
  readonly span: number;
  /** First I/O slot of this job's share (verify). */
  readonly base: number;
  readonly tasks: Task[] = [];
  readonly stats: JobStats;
  /** opts.workload as a W_ code. */
  readonly kind: number;
  readonly verify: boolean;
  /** -l only: made once, tallied per I/O without allocating. */
  readonly hist: Histogram | null;
  running = false;
  outstanding = 0;
  #seq = 0;
  #rng: number;
  #onIdle: (() => void) | null = null;

  constructor(opts: JobOptions, reactor: number) {
    this.opts = opts;
    this.desc = bdevOpenExt(opts.bdev, opts.workload !== 'randread' && opts.workload !== 'read', () => {
      this.running = false;
    });
    const bs = this.desc.bdev.blockSize;
    if (opts.ioSize % bs !== 0)
      throw new Error(`io size ${opts.ioSize} is not a multiple of ${opts.bdev}'s block size ${bs}`);
    this.blocks = opts.ioSize / bs;
    const slots = Math.floor(this.desc.bdev.numBlocks / this.blocks);
    const part = opts.workload === 'verify' ? (opts.part ?? { index: 0, count: 1 }) : { index: 0, count: 1 };
    this.span = Math.floor(slots / part.count);
    this.base = part.index * this.span;
    if (this.span < 1) throw new Error(`${opts.bdev} is smaller than one I/O`);
    if (opts.workload === 'verify' && this.span < opts.queueDepth) {
      throw new Error(
        `verify needs ${opts.bdev} to hold queue depth (${opts.queueDepth}) I/Os, it holds ${this.span}`,
      );
    }
    this.ch = bdevGetIoChannel(this.desc);
    const verify = opts.workload === 'verify';
    const per = opts.ioSize * (verify ? 2 : 1);
    this.region = DmaRegion.create(Math.max(4096, per * opts.queueDepth));
    bdevRegisterDmaRegion(this.region);
    for (let i = 0; i < opts.queueDepth; i++) {
      const b = this.region.bytes.subarray(i * per, i * per + opts.ioSize);
      const r = verify ? this.region.bytes.subarray(i * per + opts.ioSize, (i + 1) * per) : null;
      if (!verify) b.fill(0xa5);
      this.tasks.push(new Task(this, b, r));
    }
    this.hist = opts.latency === true ? new Histogram() : null;
    this.kind = W_CODES[opts.workload] ?? W_OTHER;
    this.verify = this.kind === W_VERIFY;
    this.#rng = (opts.seed ^ Math.imul(reactor, 0x9e3779b9)) | 0 || 1;
    this.stats = {
      name: opts.bdev,
      reactor,
      ios: 0,
      bytes: 0,
      errors: 0,
      miscompares: 0,
      firstMiscompare: -1,
      latTicks: 0,
      minTicks: Number.MAX_SAFE_INTEGER,
      maxTicks: 0,
      timeouts: 0,
    };
  }

  /** The counters to report, with the histogram's buckets when -l asked for them. */
  report(): JobStats {
    return this.hist === null ? this.stats : { ...this.stats, hist: Array.from(this.hist.buckets) };
  }

  /** xorshift32 */
  rand(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // Kept as an int32 (a small integer to V8): a uint32 above 2^31 would be a heap number.
    this.#rng = x | 0;
    return x & 0x7fffffff;
  }

  nextOffset(random: boolean): number {
    if (random) return (this.rand() % this.span) * this.blocks;
    const o = (this.#seq++ % this.span) * this.blocks;
    return o;
  }

  start(): void {
    this.running = true;
    for (let i = 0; i < this.tasks.length; i++) {
      const t = this.tasks[i];
      if (this.verify) t.offset = (this.base + (i % this.span)) * this.blocks;
      sampleNow(this.ch.ctx);
      startTask(t);
    }
  }

  /** Stop submitting; `done` runs once every I/O in flight has completed. */
  stop(done: () => void): void {
    this.running = false;
    if (this.outstanding === 0) this.ch.thread.sendMsg(done);
    else this.#onIdle = done;
  }

  /** @internal */
  idle(): void {
    const f = this.#onIdle;
    this.#onIdle = null;
    if (f !== null) f();
  }

  close(): void {
    this.ch.put();
    bdevClose(this.desc);
    bdevUnregisterDmaRegion(this.region);
    this.region.close();
  }
}

function fillPattern(buf: Uint8Array, offset: number): void {
  // A pattern tied to the offset: 4 bytes of offset-derived words.
  let x = (offset * 2654435761) >>> 0 || 1;
  for (let i = 0; i < buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x;
    buf[i + 1] = x >>> 8;
    buf[i + 2] = x >>> 16;
    buf[i + 3] = x >>> 24;
  }
}

/** Start t's next I/O, stamped with the channel's latest sampleNow reading. */
function startTask(t: Task): void {
  const j = t.job;
  const w = j.kind;
  switch (w) {
    case W_RANDREAD:
      t.op = OP_READ;
      t.offset = j.nextOffset(true);
      break;
    case W_READ:
      t.op = OP_READ;
      t.offset = j.nextOffset(false);
      break;
    case W_RANDWRITE:
      t.op = OP_WRITE;
      t.offset = j.nextOffset(true);
      break;
    case W_WRITE:
      t.op = OP_WRITE;
      t.offset = j.nextOffset(false);
      break;
    case W_RW:
    case W_RANDRW:
      t.op = j.rand() % 100 < j.opts.rwmix ? OP_READ : OP_WRITE;
      t.offset = j.nextOffset(w === W_RANDRW);
      break;
    case W_VERIFY:
      t.op = t.phase === 0 ? OP_WRITE : OP_READ;
      if (t.phase === 0) fillPattern(t.buf, t.offset + j.stats.ios);
      break;
    default:
      t.op = OP_OTHER;
      t.offset = j.nextOffset(true);
  }
  t.start = j.ch.ctx.shared.now;
  submitTask(t);
}

function submitTask(t: Task): void {
  const j = t.job;
  const n = j.blocks;
  let rc: number;
  if (t.op === OP_READ) rc = bdevRead(j.desc, j.ch, t.rbuf ?? t.buf, t.offset, n, taskDone, t);
  else if (t.op === OP_WRITE) rc = bdevWrite(j.desc, j.ch, t.buf, t.offset, n, taskDone, t);
  else if (j.kind === W_UNMAP) rc = bdevUnmap(j.desc, j.ch, t.offset, n, taskDone, t);
  else if (j.kind === W_FLUSH) rc = bdevFlush(j.desc, j.ch, t.offset, n, taskDone, t);
  else rc = bdevWriteZeroes(j.desc, j.ch, t.offset, n, taskDone, t);
  if (rc === ENOMEM) {
    queueIoWait(j.ch, t.wait);
    return;
  }
  j.outstanding++;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function taskDone(status: IoStatus, t: Task): void {
  const j = t.job;
  j.outstanding--;
  const s = j.stats;
  const c = j.ch.ctx.shared;
  sampleNow(j.ch.ctx);
  const lat = c.now - t.start;
  if (status !== IoStatus.SUCCESS) s.errors++;
  else if (j.verify && t.phase === 1 && !equal(t.buf, t.rbuf as Uint8Array)) {
    if (s.miscompares++ === 0) s.firstMiscompare = t.offset;
  }
  if (j.verify) {
    if (t.phase === 0) {
      t.phase = 1;
      t.op = OP_READ;
      t.start = c.now;
      if (j.running) submitTask(t);
      else if (j.outstanding === 0) j.idle();
      return;
    }
    t.phase = 0;
    const slot = t.offset / j.blocks - j.base;
    t.offset = (j.base + ((slot + j.tasks.length) % j.span)) * j.blocks;
  }
  s.ios++;
  s.bytes += j.opts.ioSize;
  s.latTicks += lat;
  if (lat < s.minTicks) s.minTicks = lat;
  if (lat > s.maxTicks) s.maxTicks = lat;
  if (j.hist !== null) j.hist.tally(lat);
  if (j.running) startTask(t);
  else if (j.outstanding === 0) j.idle();
}
