// bdev_malloc: a RAM disk in a DmaRegion. Every reactor's instance of the bdev maps the same
// region (created by the first, attached by handle on the others), so the data is shared.
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
import { copyFromIovs, copyToIovs, equalsIovs } from './view-cache.js';

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
  readonly cache: ViewCache;
  constructor(region: DmaRegion, blockSize: number, numBlocks: number) {
    this.region = region;
    this.bytes = region.bytes.subarray(0, blockSize * numBlocks);
    this.cache = new ViewCache(this.bytes, blockSize, numBlocks);
  }
}

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
  readonly poller: Poller;
  constructor() {
    this.poller = registerPoller(() => drain(this), 0, 'bdev_malloc');
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
    st[i] = execute(io);
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
    acc += (io.bdev.ctxt as MallocDisk).cache.touch(io.offsetBlocks * bs, io.numBlocks * bs);
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
    bdevIoComplete(io, st[i] as IoStatus);
  }
  ch.batchCount = 0;
}

function execute(io: BdevIo): IoStatus {
  const d = io.bdev.ctxt as MallocDisk;
  const off = io.offsetBlocks * io.bdev.blockSize;
  switch (io.type) {
    case IoType.READ:
      copyToIovs(d.cache, off, io.iovs);
      return IoStatus.SUCCESS;
    case IoType.WRITE:
      copyFromIovs(d.bytes, off, io.iovs);
      return IoStatus.SUCCESS;
    case IoType.WRITE_ZEROES:
    case IoType.UNMAP:
      d.bytes.fill(0, off, off + io.numBlocks * io.bdev.blockSize);
      return IoStatus.SUCCESS;
    case IoType.COMPARE:
      return equalsIovs(d.bytes, off, io.iovs) ? IoStatus.SUCCESS : IoStatus.MISCOMPARE;
    case IoType.FLUSH:
    case IoType.RESET:
      return IoStatus.SUCCESS;
    default:
      return IoStatus.FAILED;
  }
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
      destroy: (ch) => ch.ctx.poller.unregister(),
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
      ctxt: disk,
      fn: {
        submitRequest: submit,
        ioTypeSupported: (t) => SUPPORTED.has(t),
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
