// bdev_malloc: a RAM disk in a DmaRegion. Every reactor's instance of the bdev maps the same
// region (created by the first, attached by handle on the others), so the data is shared. Its
// copies and fills go through the accel framework, as SPDK's malloc bdev's do: done at once on
// this CPU when the software module has them (the usual case: the batch loop below keeps them back
// to back), handed to the engine assigned (I/OAT) otherwise, the I/O completing with them.
import {
  ACCEL_EAGAIN,
  ACCEL_EMISCOMPARE,
  ACCEL_ENOMEM,
  type AccelChannel,
  accelGetIoChannel,
  accelStartDefault,
  accelStarted,
} from '@storkit/accel';
import { DmaRegion, ViewCache } from '@storkit/native';
import {
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  registerPoller,
} from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import { BdevError } from '../errors.js';
import { bdevIoComplete, withBatchClock } from '../io-path.js';
import { bdevGetByName, bdevModuleRegister, bdevRegister, bdevUnregister } from '../registry.js';
import { IoStatus, IoType } from '../types.js';
import { type Created, ParamReader } from './params.js';

/** bdev_malloc_create params (SPDK schema), plus storkit's shared region handle. */
export interface MallocCreateParams {
  name?: string;
  num_blocks: number;
  block_size: number;
  physical_block_size?: number;
  uuid?: string;
  optimal_io_boundary?: number;
  md_size?: number;
  md_interleave?: boolean;
  dif_type?: number;
  dif_is_head_of_md?: boolean;
  /** storkit: the DmaRegion holding the data, made by the reactor that created the bdev first. */
  storkit_region?: number;
}

const KNOWN = [
  'name',
  'num_blocks',
  'block_size',
  'physical_block_size',
  'uuid',
  'optimal_io_boundary',
  'md_size',
  'md_interleave',
  'dif_type',
  'dif_is_head_of_md',
  'storkit_region',
] as const;

export const mallocModule: BdevModule = { name: 'malloc' };
bdevModuleRegister(mallocModule);

class MallocDisk {
  readonly region: DmaRegion;
  readonly bytes: Uint8Array;
  /** Views of the disk at I/O offsets, made once: operations on whole views copy with no napi call. */
  readonly cache: ViewCache;
  constructor(region: DmaRegion, blockSize: number, numBlocks: number) {
    this.region = region;
    this.bytes = region.bytes.subarray(0, blockSize * numBlocks);
    this.cache = new ViewCache(this.bytes, blockSize, numBlocks);
  }
}

/** An I/O's progress through its copies (made once per pooled bdev_io). */
class MallocIoCtx {
  /** The first iovec not done yet (an I/O whose engine submission was refused resumes there). */
  iov = 0;
}

/** Marks an I/O whose copies an engine has: its accel callback completes it. */
const ASYNC = -1 as IoStatus;
/** Marks an I/O to run again next poll (the engine or the task pool was full). */
const RETRY = -2 as IoStatus;

let nextIndex = 0;

/**
 * Per-thread malloc channel: submitted I/O waits in a ring and a poller does the copies of a
 * whole batch in one tight loop, then completes them (SPDK's malloc completes from a poller too).
 * Back-to-back copies let the CPU overlap their cache misses; one copy per submit call, separated
 * by the rest of the I/O path, cannot.
 */
class MallocChannel {
  ios: (BdevIo | null)[] = new Array(256).fill(null);
  head = 0;
  count = 0;
  /** The batch being completed, taken off the ring first: completions may refill the ring. */
  batch: (BdevIo | null)[] = new Array(256).fill(null);
  status = new Int8Array(256);
  batchCount = 0;
  /** Where touchReads' result goes (see there). */
  touched = 0;
  /** I/Os to run again next poll (an engine was full). */
  retry: BdevIo[] = [];
  readonly poller: Poller;
  readonly accelIo: IoChannel<AccelChannel>;
  readonly accel: AccelChannel;
  constructor() {
    // Library use without the target app: the framework starts with its software defaults.
    if (!accelStarted()) accelStartDefault();
    this.accelIo = accelGetIoChannel();
    this.accel = this.accelIo.ctx;
    this.poller = registerPoller(() => drain(this), 0, 'bdev_malloc');
  }
  close(): void {
    this.poller.unregister();
    this.accelIo.put();
  }
  push(io: BdevIo): void {
    if (this.count === this.ios.length) this.grow();
    this.ios[(this.head + this.count++) & (this.ios.length - 1)] = io;
  }
  grow(): void {
    const n = this.ios.length;
    const ios: (BdevIo | null)[] = new Array(n * 2).fill(null);
    for (let i = 0; i < this.count; i++) ios[i] = this.ios[(this.head + i) & (n - 1)];
    this.ios = ios;
    this.head = 0;
  }
}

function drain(ch: MallocChannel): number {
  if (ch.retry.length > 0) {
    const again = ch.retry;
    ch.retry = [];
    for (const io of again) ch.push(io);
  }
  const n = ch.count;
  if (n === 0) return POLLER_IDLE;
  if (ch.batch.length < n) {
    ch.batch = new Array(ch.ios.length).fill(null);
    ch.status = new Int8Array(ch.ios.length);
  }
  const ios = ch.ios;
  const mask = ios.length - 1;
  const batch = ch.batch;
  const st = ch.status;
  ch.touched = touchReads(ios, ch.head, n);
  // Copies first, back to back; completions after (they may submit more, which wait for the next poll).
  let k = ch.head;
  for (let i = 0; i < n; i++) {
    const io = ios[k] as BdevIo;
    ios[k] = null;
    k = (k + 1) & mask;
    batch[i] = io;
    st[i] = execute(ch, io);
  }
  ch.head = k;
  ch.count = 0;
  ch.batchCount = n;
  // One clock read for the whole batch: the completions, the callers' resubmissions inside them
  // and their latencies share it (a clock read is a napi call, and it allocates a heap number).
  withBatchClock((batch[0] as BdevIo).ch, completeBatch, ch);
  return POLLER_BUSY;
}

// The view objects of a batch's reads, loaded before any copy so their cache misses overlap (a
// copy that meets a cold view waits for it alone). Returns a sum only so the loads are kept.
function touchReads(ios: (BdevIo | null)[], head: number, n: number): number {
  const mask = ios.length - 1;
  let acc = 0;
  for (let i = 0, k = head; i < n; i++, k = (k + 1) & mask) {
    const io = ios[k] as BdevIo;
    if (io.type !== IoType.READ) continue;
    const bs = io.bdev.blockSize;
    acc += (io.bdev.ctx as MallocDisk).cache.touch(io.offsetBlocks * bs, io.numBlocks * bs);
  }
  return acc;
}

function completeBatch(ch: MallocChannel): void {
  const n = ch.batchCount;
  const batch = ch.batch;
  const st = ch.status;
  for (let i = 0; i < n; i++) {
    const io = batch[i] as BdevIo;
    batch[i] = null;
    const s = st[i] as IoStatus;
    if (s === RETRY) ch.retry.push(io);
    else if (s !== ASYNC) bdevIoComplete(io, s);
  }
  ch.batchCount = 0;
}

function execute(ch: MallocChannel, io: BdevIo): IoStatus {
  const d = io.bdev.ctx as MallocDisk;
  const off = io.offsetBlocks * io.bdev.blockSize;
  const a = ch.accel;
  switch (io.type) {
    case IoType.READ:
    case IoType.WRITE:
    case IoType.COMPARE:
      return byIovec(ch, io, d.bytes, off);
    case IoType.WRITE_ZEROES:
    case IoType.UNMAP: {
      const rc = a.fillNow(d.bytes, off, io.numBlocks * io.bdev.blockSize, 0);
      return rc === ACCEL_EAGAIN
        ? onEngine(ch, io, d.bytes, off)
        : rc === 0
          ? IoStatus.SUCCESS
          : IoStatus.FAILED;
    }
    case IoType.FLUSH:
    case IoType.RESET:
      return IoStatus.SUCCESS;
    default:
      return IoStatus.FAILED;
  }
}

/** READ, WRITE, COMPARE: one operation per iovec, done now where the module does them so. */
function byIovec(ch: MallocChannel, io: BdevIo, bytes: Uint8Array, off: number): IoStatus {
  const a = ch.accel;
  const iovs = io.iovs;
  const ctx = io.driverCtx as MallocIoCtx;
  const cache = (io.bdev.ctx as MallocDisk).cache;
  for (let i = 0; i < ctx.iov; i++) off += iovs[i].length;
  for (let i = ctx.iov; i < iovs.length; i++) {
    const v = iovs[i];
    const n = v.length;
    // Whole views on both sides: the software module copies them with TypedArray set().
    const rc =
      io.type === IoType.READ
        ? a.copyNow(v, 0, cache.view(off, n), 0, n)
        : io.type === IoType.WRITE
          ? a.copyNow(cache.view(off, n), 0, v, 0, n)
          : a.compareNow(bytes, off, v, 0, n);
    if (rc === ACCEL_EAGAIN) {
      ctx.iov = i;
      return onEngine(ch, io, bytes, off);
    }
    ctx.iov = 0;
    if (rc === ACCEL_EMISCOMPARE) return IoStatus.MISCOMPARE;
    if (rc !== 0) return IoStatus.FAILED;
    off += v.length;
  }
  ctx.iov = 0;
  return IoStatus.SUCCESS;
}

/**
 * The I/O's remaining operations (from iovec ctx.iov at byte `off`) as one accel batch for the
 * engine; it completes the I/O from its callback. RETRY when the engine or pool is full.
 */
function onEngine(ch: MallocChannel, io: BdevIo, bytes: Uint8Array, off: number): IoStatus {
  const b = ch.accel.batch();
  if (b === null) return RETRY;
  const ctx = io.driverCtx as MallocIoCtx;
  if (io.type === IoType.WRITE_ZEROES || io.type === IoType.UNMAP) {
    if (b.appendFill(bytes, off, io.numBlocks * io.bdev.blockSize, 0) === ACCEL_ENOMEM) return giveUp(b);
  } else {
    for (let i = ctx.iov; i < io.iovs.length; i++) {
      const v = io.iovs[i];
      const rc =
        io.type === IoType.READ
          ? b.appendCopy(v, 0, bytes, off, v.length)
          : io.type === IoType.WRITE
            ? b.appendCopy(bytes, off, v, 0, v.length)
            : b.appendCompare(bytes, off, v, 0, v.length);
      if (rc === ACCEL_ENOMEM) return giveUp(b);
      off += v.length;
    }
  }
  if (b.submit(engineDone, io) !== 0) return RETRY; // nothing started (submit gave it back)
  ctx.iov = 0;
  return ASYNC;
}

function giveUp(b: { abort(): void }): IoStatus {
  b.abort();
  return RETRY;
}

function engineDone(io: BdevIo, status: number): void {
  bdevIoComplete(
    io,
    status === 0 ? IoStatus.SUCCESS : status === ACCEL_EMISCOMPARE ? IoStatus.MISCOMPARE : IoStatus.FAILED,
  );
}

function submit(ch: IoChannel<unknown>, io: BdevIo): void {
  (ch.ctx as MallocChannel).push(io);
}

const DEVICE = { name: 'bdev_malloc' };
let registered = false;

function mallocChannel(): IoChannel<unknown> {
  if (!registered) {
    ioDeviceRegister<MallocChannel>(DEVICE, {
      name: 'bdev_malloc',
      create: () => new MallocChannel(),
      destroy: (ch) => ch.ctx.close(),
    });
    registered = true;
  }
  return getIoChannel(DEVICE);
}

const SUPPORTED = new Set<IoType>([
  IoType.READ,
  IoType.WRITE,
  IoType.WRITE_ZEROES,
  IoType.UNMAP,
  IoType.FLUSH,
  IoType.RESET,
  IoType.COMPARE,
]);

/**
 * bdev_malloc_create on this reactor. Without `storkit_region` a new region is made (zeroed);
 * `replay` carries its handle and the uuid for the other reactors.
 */
export function bdevMallocCreate(params: MallocCreateParams): Created<MallocCreateParams> {
  const r = new ParamReader('bdev_malloc_create', params);
  r.only(KNOWN);
  const blockSize = r.blockSize();
  const numBlocks = r.int('num_blocks', { min: 1 });
  const name = r.str('name', undefined) ?? `Malloc${nextIndex++}`;
  const uuid = r.uuid('uuid');
  const boundary = r.int('optimal_io_boundary', { min: 0, def: 0 });
  const pbs = r.int('physical_block_size', { min: 0, def: 0 });
  if (pbs !== 0 && (pbs < blockSize || pbs % blockSize !== 0))
    r.fail(`physical_block_size ${pbs} must be a multiple of block_size`);
  if (r.int('md_size', { min: 0, def: 0 }) !== 0 || r.int('dif_type', { min: 0, max: 3, def: 0 }) !== 0) {
    throw new BdevError(
      'ENOTSUP',
      'bdev_malloc_create: metadata and DIF are not supported yet (md_size and dif_type must be 0)',
    );
  }
  if (bdevGetByName(name) !== undefined)
    throw new BdevError('EEXIST', `bdev_malloc_create: bdev ${name} exists`);
  const handle = r.p.storkit_region as number | undefined;
  const region =
    handle === undefined
      ? DmaRegion.create(numBlocks * blockSize)
      : DmaRegion.attach(r.int('storkit_region', { min: 0 }));
  if (region.size < numBlocks * blockSize) {
    region.close();
    r.fail(`storkit_region ${handle} holds ${region.size} bytes, the bdev needs ${numBlocks * blockSize}`);
  }
  const disk = new MallocDisk(region, blockSize, numBlocks);
  let bdev: Bdev;
  try {
    bdev = bdevRegister({
      name,
      uuid,
      productName: 'Malloc disk',
      blockSize,
      numBlocks,
      writeCache: false,
      optimalIoBoundary: boundary,
      splitOnOptimalIoBoundary: boundary > 0,
      module: mallocModule,
      ctx: disk,
      fn: {
        submitRequest: submit,
        ioTypeSupported: (t) => SUPPORTED.has(t),
        createIoCtx: () => new MallocIoCtx(),
        getIoChannel: mallocChannel,
        destruct: (done) => {
          disk.region.close();
          done();
        },
        dumpInfoJson: () => ({ storkit_region: region.handle, backing: region.backing }),
      },
    });
  } catch (e) {
    region.close();
    throw e;
  }
  const replay: MallocCreateParams = { ...params, name, uuid: bdev.uuid, storkit_region: region.handle };
  return { name, replay };
}

/** bdev_malloc_delete: hot-remove the bdev; `done(null)` once it is gone on this reactor. */
export function bdevMallocDelete(params: { name: string }, done?: (err: BdevError | null) => void): void {
  const r = new ParamReader('bdev_malloc_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const b = bdevGetByName(name);
  if (b === undefined || b.module !== mallocModule)
    throw new BdevError('ENODEV', `bdev_malloc_delete: no malloc bdev ${name}`);
  bdevUnregister(b, done);
}
