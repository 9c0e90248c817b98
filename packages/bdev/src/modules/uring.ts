// bdev_uring / bdev_aio: a file or block device through io_uring in the native core. One ring per
// thread, shared by every file bdev used on it; a poller submits prepared I/O and reaps
// completions. Files are opened with O_DIRECT when the filesystem allows; create() probes that
// and, if refused (tmpfs, some FUSE), reopens buffered and says so in `fallback`.
// Buffers in registered DMA regions (bdevRegisterDmaRegion) go to the kernel as they are when
// aligned to the block size; others are bounced through a per-ring DMA region.
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { DmaRegion, Uring } from '@storkit/native';
import {
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  registerPoller,
  type Thread,
} from '@storkit/reactor';
import type { BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import { withThreadBatchClock } from '../channel.js';
import { dmaRegionOf } from '../dma-buffers.js';
import { BdevError } from '../errors.js';
import { bdevIoComplete } from '../io-path.js';
import {
  bdevGetByName,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { IoStatus, IoType } from '../types.js';
import { type Created, ParamReader } from './params.js';

/** bdev_uring_create params (SPDK schema). */
export interface UringCreateParams {
  filename: string;
  name: string;
  block_size?: number;
  uuid?: string;
}

/** bdev_aio_create params (SPDK schema); served by the same io_uring engine. */
export interface AioCreateParams {
  filename: string;
  name: string;
  block_size?: number;
  readonly?: boolean;
  fallocate?: boolean;
  uuid?: string;
}

export interface FileCreated<P> extends Created<P> {
  /** Whether O_DIRECT is in use. */
  direct: boolean;
  /** Why not, when it is not (the fallback that was used). */
  fallback: string | null;
}

const RING_ENTRIES = 256;
const BOUNCE_SLOT = 128 * 1024;
const BOUNCE_SLOTS = 64;

interface FileDisk {
  name: string;
  path: string;
  fd: number;
  direct: boolean;
  readonly: boolean;
  kind: 'uring' | 'aio';
}

class IoCtx {
  remaining = 0;
  failed = false;
  /** Bounce slot index, -1 when the caller's buffers were used directly. */
  bounce = -1;
}

/** Per-thread ring state (the module channel). */
class RingChannel {
  readonly ring: Uring;
  readonly poller: Poller;
  /** In-flight SQEs: user data -> bdev_io. */
  readonly owner: (BdevIo | null)[];
  readonly freeUd: Int32Array;
  nFree: number;
  readonly slots = new Map<ArrayBufferLike, number>();
  bounceRegion: DmaRegion | null = null;
  bounceSlot = -1;
  readonly bounceFree: number[] = [];
  zeroRegion: DmaRegion | null = null;
  zeroSlot = -1;
  readonly onComplete: (ud: number, res: number) => void;
  readonly thread: Thread;

  constructor() {
    this.thread = requireThread('bdev_uring channel');
    this.ring = new Uring(RING_ENTRIES);
    const cap = RING_ENTRIES * 4;
    this.owner = new Array(cap).fill(null);
    this.freeUd = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.freeUd[i] = cap - 1 - i;
    this.nFree = cap;
    this.onComplete = (ud, res) => complete(this, ud, res);
    this.poller = registerPoller(() => pollRing(this), 0, 'bdev_uring');
  }

  slotOf(buf: Uint8Array): number {
    const known = this.slots.get(buf.buffer);
    if (known !== undefined) return known;
    const region = dmaRegionOf(buf);
    if (region === undefined) return -1;
    const s = this.ring.addRegion(region);
    this.slots.set(buf.buffer, s);
    return s;
  }

  ensureBounce(): void {
    if (this.bounceRegion !== null) return;
    this.bounceRegion = DmaRegion.create(BOUNCE_SLOT * BOUNCE_SLOTS);
    this.bounceSlot = this.ring.addRegion(this.bounceRegion);
    for (let i = BOUNCE_SLOTS - 1; i >= 0; i--) this.bounceFree.push(i);
  }

  ensureZero(): void {
    if (this.zeroRegion !== null) return;
    this.zeroRegion = DmaRegion.create(BOUNCE_SLOT);
    this.zeroSlot = this.ring.addRegion(this.zeroRegion);
  }

  close(): void {
    this.poller.unregister();
    this.ring.close();
    this.bounceRegion?.close();
    this.zeroRegion?.close();
  }
}

let registered = false;
const DEVICE = { name: 'bdev_uring' };

function moduleChannel(): IoChannel<unknown> {
  if (!registered) {
    ioDeviceRegister<RingChannel>(DEVICE, {
      name: 'bdev_uring',
      create: () => new RingChannel(),
      destroy: (ch) => ch.ctx.close(),
    });
    registered = true;
  }
  return getIoChannel(DEVICE);
}

function pollRing(ch: RingChannel): number {
  let n = 0;
  if (ch.ring.prepared > 0) n += ch.ring.submit();
  n += withThreadBatchClock(ch.thread, reapAll, ch);
  return n > 0 ? POLLER_BUSY : POLLER_IDLE;
}

function reapAll(ch: RingChannel): number {
  return ch.ring.reap(ch.onComplete);
}

function complete(ch: RingChannel, ud: number, res: number): void {
  const io = ch.owner[ud];
  ch.owner[ud] = null;
  ch.freeUd[ch.nFree++] = ud;
  if (io === null) return;
  const c = io.driverCtx as IoCtx;
  if (res < 0) c.failed = true;
  if (--c.remaining > 0) return;
  if (c.bounce >= 0) {
    if (io.type === IoType.READ && !c.failed) copyFromBounce(ch, c.bounce, io);
    ch.bounceFree.push(c.bounce);
    c.bounce = -1;
  }
  bdevIoComplete(io, c.failed ? IoStatus.FAILED : IoStatus.SUCCESS);
}

function copyFromBounce(ch: RingChannel, slot: number, io: BdevIo): void {
  const bytes = (ch.bounceRegion as DmaRegion).bytes;
  let off = slot * BOUNCE_SLOT;
  for (const v of io.iovs) {
    v.set(bytes.subarray(off, off + v.length));
    off += v.length;
  }
}

function takeUd(ch: RingChannel, io: BdevIo): number {
  const ud = ch.freeUd[--ch.nFree];
  ch.owner[ud] = io;
  return ud;
}

/** Whether the caller's iovecs can go to the kernel as they are. */
function direct(ch: RingChannel, d: FileDisk, io: BdevIo): boolean {
  const bs = io.bdev.blockSize;
  for (const v of io.iovs) {
    if (ch.slotOf(v) < 0) return false;
    if (d.direct && (v.byteOffset % bs !== 0 || v.length % bs !== 0)) return false;
  }
  return true;
}

function submit(chan: IoChannel<unknown>, io: BdevIo): void {
  const ch = chan.ctx as RingChannel;
  const d = io.bdev.ctx as FileDisk;
  const c = io.driverCtx as IoCtx;
  const ring = ch.ring;
  const bs = io.bdev.blockSize;
  let fileOff = io.offsetBlocks * bs;
  c.failed = false;
  c.bounce = -1;
  switch (io.type) {
    case IoType.FLUSH:
      if (!room(ch, 1)) {
        bdevIoComplete(io, IoStatus.NOMEM);
        return;
      }
      c.remaining = 1;
      ring.fsync(d.fd, takeUd(ch, io));
      return;
    case IoType.RESET:
      bdevIoComplete(io, IoStatus.SUCCESS);
      return;
    case IoType.WRITE_ZEROES: {
      ch.ensureZero();
      const total = io.numBlocks * bs;
      const n = Math.ceil(total / BOUNCE_SLOT);
      if (!room(ch, n)) {
        bdevIoComplete(io, IoStatus.NOMEM);
        return;
      }
      c.remaining = n;
      for (let done = 0; done < total; done += BOUNCE_SLOT) {
        ring.write(d.fd, ch.zeroSlot, 0, Math.min(BOUNCE_SLOT, total - done), fileOff + done, takeUd(ch, io));
      }
      return;
    }
    case IoType.READ:
    case IoType.WRITE:
      break;
    default:
      bdevIoComplete(io, IoStatus.FAILED);
      return;
  }
  const isRead = io.type === IoType.READ;
  if (direct(ch, d, io)) {
    if (!room(ch, io.iovs.length)) {
      bdevIoComplete(io, IoStatus.NOMEM);
      return;
    }
    c.remaining = io.iovs.length;
    for (const v of io.iovs) {
      const slot = ch.slotOf(v);
      if (isRead) ring.read(d.fd, slot, v.byteOffset, v.length, fileOff, takeUd(ch, io));
      else ring.write(d.fd, slot, v.byteOffset, v.length, fileOff, takeUd(ch, io));
      fileOff += v.length;
    }
    return;
  }
  // Bounce: one aligned DMA slot for the whole I/O (the bdev is limited to BOUNCE_SLOT per I/O).
  ch.ensureBounce();
  if (ch.bounceFree.length === 0 || !room(ch, 1)) {
    bdevIoComplete(io, IoStatus.NOMEM);
    return;
  }
  const b = ch.bounceFree.pop() as number;
  c.bounce = b;
  c.remaining = 1;
  const len = io.numBlocks * bs;
  if (!isRead) {
    const bytes = (ch.bounceRegion as DmaRegion).bytes;
    let off = b * BOUNCE_SLOT;
    for (const v of io.iovs) {
      bytes.set(v, off);
      off += v.length;
    }
    ring.write(d.fd, ch.bounceSlot, b * BOUNCE_SLOT, len, fileOff, takeUd(ch, io));
  } else {
    ring.read(d.fd, ch.bounceSlot, b * BOUNCE_SLOT, len, fileOff, takeUd(ch, io));
  }
}

/** Whether `n` more SQEs fit now (submitting what is prepared first if needed). */
function room(ch: RingChannel, n: number): boolean {
  if (ch.nFree < n) return false;
  if (ch.ring.batchSize - ch.ring.prepared >= n) return true;
  ch.ring.submit();
  return ch.ring.batchSize - ch.ring.prepared >= n;
}

export const uringModule: BdevModule = { name: 'uring' };
export const aioModule: BdevModule = { name: 'aio' };
bdevModuleRegister(uringModule);
bdevModuleRegister(aioModule);

/** Open `path`, O_DIRECT if the filesystem takes it (probed with a real read), else buffered. */
function openFile(
  path: string,
  readonly: boolean,
  blockSize: number,
): { fd: number; direct: boolean; fallback: string | null } {
  const rw = readonly ? constants.O_RDONLY : constants.O_RDWR;
  let fd: number;
  try {
    fd = openSync(path, rw | constants.O_DIRECT);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL') throw new BdevError('ENODEV', `cannot open ${path}: ${(e as Error).message}`);
    return {
      fd: openSync(path, rw),
      direct: false,
      fallback: `O_DIRECT refused by the filesystem of ${path} (EINVAL at open): buffered I/O`,
    };
  }
  // Some filesystems accept the flag and fail the I/O: probe one block.
  const probe = DmaRegion.create(Math.max(4096, blockSize), { hugepages: 'never' });
  const ring = new Uring(2);
  try {
    const slot = ring.addRegion(probe);
    ring.read(fd, slot, 0, blockSize, 0, 1);
    ring.submit();
    let res = 0;
    while (ring.reap((_u, r) => (res = r)) === 0) ring.wait(1);
    if (res === -22) {
      closeSync(fd);
      return {
        fd: openSync(path, rw),
        direct: false,
        fallback: `O_DIRECT reads of ${blockSize} bytes fail on ${path} (EINVAL): buffered I/O`,
      };
    }
  } finally {
    ring.close();
    probe.close();
  }
  return { fd, direct: true, fallback: null };
}

function create(
  kind: 'uring' | 'aio',
  method: string,
  params: UringCreateParams | AioCreateParams,
): FileCreated<typeof params> {
  const r = new ParamReader(method, params);
  r.only(
    kind === 'aio'
      ? ['filename', 'name', 'block_size', 'readonly', 'fallocate', 'uuid']
      : ['filename', 'name', 'block_size', 'uuid'],
  );
  const path = r.str('filename');
  const name = r.str('name');
  const blockSize = r.p.block_size === undefined ? 512 : r.blockSize();
  const readonly = kind === 'aio' ? r.bool('readonly', false) : false;
  if (kind === 'aio' && r.bool('fallocate', false))
    throw new BdevError('ENOTSUP', `${method}: fallocate is not supported yet`);
  const uuid = r.uuid('uuid');
  if (bdevGetByName(name) !== undefined) throw new BdevError('EEXIST', `${method}: bdev ${name} exists`);
  const { fd, direct, fallback } = openFile(path, readonly, blockSize);
  const size = fstatSync(fd).size;
  const numBlocks = Math.floor(size / blockSize);
  if (numBlocks < 1) {
    closeSync(fd);
    r.fail(`${path} is smaller than one ${blockSize}-byte block (${size} bytes)`);
  }
  const disk: FileDisk = { name, path, fd, direct, readonly, kind };
  const supported = new Set<IoType>([IoType.READ, IoType.FLUSH, IoType.RESET]);
  if (!readonly) {
    supported.add(IoType.WRITE);
    supported.add(IoType.WRITE_ZEROES);
  }
  let bdev: ReturnType<typeof bdevRegister>;
  try {
    bdev = bdevRegister({
      name,
      uuid,
      productName: kind === 'uring' ? 'URING bdev' : 'AIO disk',
      blockSize,
      numBlocks,
      writeCache: true,
      maxRwBlocks: BOUNCE_SLOT / blockSize,
      module: kind === 'uring' ? uringModule : aioModule,
      ctx: disk,
      fn: {
        submitRequest: submit,
        ioTypeSupported: (t) => supported.has(t),
        getIoChannel: moduleChannel,
        createIoCtx: () => new IoCtx(),
        destruct: (done) => {
          closeSync(fd);
          done();
        },
        dumpInfoJson: () => ({ [kind]: { filename: path, direct, fallback, readonly } }),
      },
    });
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return { name, replay: { ...params, uuid: bdev.uuid }, direct, fallback };
}

/** bdev_uring_create. `fallback` says when O_DIRECT could not be used. */
export function bdevUringCreate(params: UringCreateParams): FileCreated<UringCreateParams> {
  return create('uring', 'bdev_uring_create', params) as FileCreated<UringCreateParams>;
}

/** bdev_aio_create (same engine: io_uring). `fallback` says when O_DIRECT could not be used. */
export function bdevAioCreate(params: AioCreateParams): FileCreated<AioCreateParams> {
  return create('aio', 'bdev_aio_create', params) as FileCreated<AioCreateParams>;
}

function del(kind: 'uring' | 'aio', method: string, params: { name: string }, done?: () => void): void {
  const r = new ParamReader(method, params);
  r.only(['name']);
  const name = r.str('name');
  const b = bdevGetByName(name);
  if (b === undefined || b.module !== (kind === 'uring' ? uringModule : aioModule)) {
    throw new BdevError('ENODEV', `${method}: no ${kind} bdev ${name}`);
  }
  bdevUnregister(b, () => done?.());
}

export function bdevUringDelete(params: { name: string }, done?: () => void): void {
  del('uring', 'bdev_uring_delete', params, done);
}

export function bdevAioDelete(params: { name: string }, done?: () => void): void {
  del('aio', 'bdev_aio_delete', params, done);
}
