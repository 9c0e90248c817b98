// bdev_delay: adds latency on top of its base. Every 100th read (write) of a channel gets the p99
// latency, the others the average (SPDK's vbdev_delay). A completed base I/O waits in one of four
// per-channel FIFOs (read/write x avg/p99; each FIFO is in deadline order because its latency is
// fixed) until a poller releases it. Delayed I/O can be aborted. A delay bdev whose base does not
// exist yet is kept and made when the base appears (examine), as SPDK's is: spdk_tgt's save_config
// writes vbdevs before their bases.
import { randomUUID } from 'node:crypto';
import {
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
} from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import { type BdevChannel, withThreadBatchClock } from '../channel.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import { bdevIoComplete, sampleNow } from '../io-path.js';
import {
  bdevGetByName,
  bdevGetIoChannel,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { ENOMEM, IoStatus, IoType } from '../types.js';
import { type Created, ParamReader } from './params.js';
import { baseSupports, isClaimed, openBase, releaseVbdev, submitToBase } from './vbdev.js';

/** bdev_delay_create params (SPDK schema): latencies in microseconds. */
export interface DelayCreateParams {
  base_bdev_name: string;
  name: string;
  avg_read_latency: number;
  p99_read_latency: number;
  avg_write_latency: number;
  p99_write_latency: number;
  uuid?: string;
}

/** bdev_delay_update_latency params. */
export interface DelayUpdateParams {
  delay_bdev_name: string;
  latency_type: 'avg_read' | 'p99_read' | 'avg_write' | 'p99_write';
  latency_us: number;
}

const AVG_READ = 0;
const P99_READ = 1;
const AVG_WRITE = 2;
const P99_WRITE = 3;

interface Delay {
  name: string;
  baseName: string;
  desc: BdevDesc | null;
  bdev: Bdev | null;
  /** avg_read, p99_read, avg_write, p99_write in us. */
  readonly lat: number[];
  key: object;
  /** The uuid the bdev takes when it is made (given, or drawn at create so every reactor agrees). */
  uuid: string | undefined;
}

class IoCtx {
  deadline = 0;
  status: IoStatus = IoStatus.SUCCESS;
  next: BdevIo | null = null;
  queued = -1;
}

class DelayQueue {
  head: BdevIo | null = null;
  tail: BdevIo | null = null;
}

class DelayChannel {
  readonly base: IoChannel<BdevChannel>;
  readonly queues = [new DelayQueue(), new DelayQueue(), new DelayQueue(), new DelayQueue()];
  readonly poller: Poller;
  reads = 0;
  writes = 0;
  constructor(d: Delay, desc: BdevDesc) {
    this.base = bdevGetIoChannel(desc);
    const t = requireThread('delay channel');
    this.poller = t.registerPoller(() => withThreadBatchClock(t, release, this), 0, `delay/${d.name}`);
  }
}

export const delayModule: BdevModule = {
  name: 'delay',
  examine(bdev) {
    for (const d of delays.values()) {
      if (d.baseName !== bdev.name || d.bdev !== null) continue;
      try {
        d.bdev = build(d, d.uuid);
      } catch (e) {
        // The base is claimed by another module: the delay bdev stays pending, as SPDK's does.
        // Anything else is a fault of ours or of the config (its name taken meanwhile): it surfaces.
        if (!isClaimed(e)) throw e;
      }
    }
  },
};
bdevModuleRegister(delayModule);
const delays = new Map<string, Delay>();

function release(ch: DelayChannel): number {
  let n = 0;
  let now = -1;
  for (const q of ch.queues) {
    if (q.head === null) continue;
    if (now < 0) {
      sampleNow(q.head.ch);
      now = q.head.ch.shared.now;
    }
    while (q.head !== null && (q.head.driverCtx as IoCtx).deadline <= now) {
      const io = q.head;
      const c = io.driverCtx as IoCtx;
      q.head = c.next;
      if (q.head === null) q.tail = null;
      c.next = null;
      c.queued = -1;
      bdevIoComplete(io, c.status);
      n++;
    }
  }
  return n > 0 ? POLLER_BUSY : POLLER_IDLE;
}

function baseDone(status: IoStatus, io: BdevIo): void {
  const d = io.bdev.ctx as Delay;
  const ch = io.ch.moduleCh.ctx as DelayChannel;
  const c = io.driverCtx as IoCtx;
  let which = -1;
  if (io.type === IoType.READ) which = ++ch.reads % 100 === 0 ? P99_READ : AVG_READ;
  else if (io.type === IoType.WRITE || io.type === IoType.WRITE_ZEROES)
    which = ++ch.writes % 100 === 0 ? P99_WRITE : AVG_WRITE;
  if (which < 0 || d.lat[which] === 0) {
    bdevIoComplete(io, status);
    return;
  }
  const clock = io.ch.thread.host.clock;
  sampleNow(io.ch);
  c.deadline = io.ch.shared.now + Math.round((d.lat[which] * clock.rate) / 1e6);
  c.status = status;
  c.queued = which;
  c.next = null;
  const q = ch.queues[which];
  if (q.tail === null) q.head = io;
  else (q.tail.driverCtx as IoCtx).next = io;
  q.tail = io;
}

function abortDelayed(ch: DelayChannel, target: BdevIo): boolean {
  const tc = target.driverCtx as IoCtx | undefined;
  if (tc === undefined || tc.queued < 0) return false;
  const q = ch.queues[tc.queued];
  let prev: BdevIo | null = null;
  for (let it = q.head; it !== null; prev = it, it = (it.driverCtx as IoCtx).next) {
    if (it !== target) continue;
    const next = tc.next;
    if (prev === null) q.head = next;
    else (prev.driverCtx as IoCtx).next = next;
    if (q.tail === it) q.tail = prev;
    tc.next = null;
    tc.queued = -1;
    bdevIoComplete(target, IoStatus.ABORTED);
    return true;
  }
  return false;
}

function submit(chan: IoChannel<unknown>, io: BdevIo): void {
  const d = io.bdev.ctx as Delay;
  const ch = chan.ctx as DelayChannel;
  if (d.desc === null) throw new BdevError('ENODEV', 'delay base is gone');
  if (io.type === IoType.ABORT && io.abortTarget !== null && abortDelayed(ch, io.abortTarget)) {
    bdevIoComplete(io, IoStatus.SUCCESS);
    return;
  }
  if (submitToBase(d.desc, ch.base, io, io.offsetBlocks, io.numBlocks, io.iovs, baseDone, io) === ENOMEM) {
    bdevIoComplete(io, IoStatus.NOMEM);
  }
}

function checkLatencies(r: ParamReader, lat: number[]): void {
  if (lat[P99_READ] < lat[AVG_READ])
    r.fail(`p99_read_latency ${lat[P99_READ]} is below avg_read_latency ${lat[AVG_READ]}`);
  if (lat[P99_WRITE] < lat[AVG_WRITE])
    r.fail(`p99_write_latency ${lat[P99_WRITE]} is below avg_write_latency ${lat[AVG_WRITE]}`);
}

function build(d: Delay, uuid: string | undefined): Bdev {
  const desc = openBase(d.baseName, delayModule, () => {
    if (d.bdev !== null && !d.bdev.isRemoving) bdevUnregister(d.bdev);
  });
  d.desc = desc;
  const key = d.key;
  ioDeviceRegister<DelayChannel>(key, {
    name: `vbdev_delay/${d.name}`,
    create: () => new DelayChannel(d, desc),
    destroy: (ch) => {
      ch.ctx.poller.unregister();
      ch.ctx.base.put();
    },
  });
  try {
    return register(d, desc, key, uuid);
  } catch (e) {
    // Not made after all (its name was taken while it waited): the base is free again.
    d.desc = null;
    releaseVbdev(key, [desc], () => {});
    throw e;
  }
}

function register(d: Delay, desc: BdevDesc, key: object, uuid: string | undefined): Bdev {
  const base = desc.bdev;
  return bdevRegister({
    name: d.name,
    uuid,
    productName: 'delay',
    blockSize: base.blockSize,
    numBlocks: base.numBlocks,
    writeCache: base.writeCache,
    optimalIoBoundary: base.optimalIoBoundary,
    splitOnOptimalIoBoundary: base.splitOnOptimalIoBoundary,
    maxRwBlocks: base.maxRwBlocks,
    maxSegments: base.maxSegments,
    maxSegmentSize: base.maxSegmentSize,
    module: delayModule,
    ctx: d,
    fn: {
      submitRequest: submit,
      ioTypeSupported: (t) => t === IoType.ABORT || (t !== IoType.COMPARE_AND_WRITE && baseSupports(base, t)),
      getIoChannel: () => getIoChannel(key),
      createIoCtx: () => new IoCtx(),
      destruct: (done) => {
        const dd = d.desc;
        d.desc = null;
        d.bdev = null;
        delays.delete(d.name);
        releaseVbdev(key, [dd], done);
      },
      dumpInfoJson: () => ({
        delay: {
          name: d.name,
          base_bdev_name: base.name,
          avg_read_latency: d.lat[AVG_READ],
          p99_read_latency: d.lat[P99_READ],
          avg_write_latency: d.lat[AVG_WRITE],
          p99_write_latency: d.lat[P99_WRITE],
        },
      }),
    },
  });
}

/** bdev_delay_create. */
export function bdevDelayCreate(params: DelayCreateParams): Created<DelayCreateParams> {
  requireThread('bdev_delay_create');
  const r = new ParamReader('bdev_delay_create', params);
  r.only([
    'base_bdev_name',
    'name',
    'avg_read_latency',
    'p99_read_latency',
    'avg_write_latency',
    'p99_write_latency',
    'uuid',
  ]);
  const baseName = r.str('base_bdev_name');
  const name = r.str('name');
  const lat = ['avg_read_latency', 'p99_read_latency', 'avg_write_latency', 'p99_write_latency'].map((k) =>
    r.int(k, { min: 0 }),
  );
  checkLatencies(r, lat);
  const uuid = r.uuid('uuid');
  if (bdevGetByName(name) !== undefined || delays.has(name))
    throw new BdevError('EEXIST', `bdev_delay_create: ${name} exists`);
  const d: Delay = { name, baseName, desc: null, bdev: null, lat, key: {}, uuid };
  if (bdevGetByName(baseName) === undefined) {
    // Deferred until the base registers (examine); the uuid is fixed now for every reactor.
    d.uuid ??= randomUUID();
    delays.set(name, d);
    return { name, replay: { ...params, uuid: d.uuid } };
  }
  d.bdev = build(d, uuid);
  delays.set(name, d);
  return { name, replay: { ...params, uuid: d.bdev.uuid } };
}

/** bdev_delay_delete. */
export function bdevDelayDelete(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_delay_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const d = delays.get(name);
  if (d === undefined) throw new BdevError('ENODEV', `bdev_delay_delete: no delay bdev ${name}`);
  if (d.bdev === null) {
    // Still waiting for its base: forget it.
    delays.delete(name);
    done?.();
    return;
  }
  bdevUnregister(d.bdev, () => done?.());
}

/** bdev_delay_update_latency: applies to I/O completed from now on. */
export function bdevDelayUpdateLatency(params: DelayUpdateParams): void {
  const r = new ParamReader('bdev_delay_update_latency', params);
  r.only(['delay_bdev_name', 'latency_type', 'latency_us']);
  const name = r.str('delay_bdev_name');
  const type = r.str('latency_type');
  const us = r.int('latency_us', { min: 0 });
  const d = delays.get(name);
  if (d === undefined) throw new BdevError('ENODEV', `bdev_delay_update_latency: no delay bdev ${name}`);
  const idx = ['avg_read', 'p99_read', 'avg_write', 'p99_write'].indexOf(type);
  if (idx < 0) r.fail(`latency_type must be avg_read, p99_read, avg_write or p99_write, got ${type}`);
  const next = [...d.lat];
  next[idx] = us;
  checkLatencies(r, next);
  d.lat[idx] = us;
}
