// Abort, per-descriptor I/O timeouts, QoS limits, statistics and histograms.
import { defineChannelIterator, forEachChannelGlobal, getThread } from '@storkit/reactor';
import type { Bdev } from './bdev.js';
import { type BdevIo, Queue, Role } from './bdev-io.js';
import { type BdevChannel, bdevOptions } from './channel.js';
import type { BdevDesc, BdevTimeoutCb } from './desc.js';
import { BdevError } from './errors.js';
import { deferComplete, sampleNow, submitPastQos, submitToModule } from './io-path.js';
import {
  createQosState,
  QOS_SLICE_US,
  type QosLimits,
  qosAdmit,
  qosWaiting,
  setQosState,
  validateQosLimits,
} from './qos.js';
import { Histogram, IoStat, type IoStatJson } from './stats.js';
import { IoStatus, IoType } from './types.js';

// ---- abort -------------------------------------------------------------------------------

/** @internal Abort every outstanding I/O of `ch` submitted with `target` as its cbArg. */
export function abortStart(a: BdevIo, target: unknown): void {
  const ch = a.ch;
  a.role = Role.ABORT;
  a.childOutstanding = 0;
  a.childStatus = IoStatus.SUCCESS;
  let found = 0;
  for (let io = ch.oHead; io !== null; io = io.oNext) {
    if (io === a || io.parent !== null || io.type === IoType.ABORT || io.cbArg !== target || io.aborted)
      continue;
    found++;
    abortOne(a, io);
  }
  if (found === 0) a.childStatus = IoStatus.FAILED;
  if (a.childOutstanding === 0) deferComplete(a, a.childStatus);
}

function abortOne(a: BdevIo, io: BdevIo): void {
  const ch = io.ch;
  io.aborted = true;
  if (io.queued === Queue.QOS || io.queued === Queue.NOMEM || io.queued === Queue.LOCKED) {
    const q =
      io.queued === Queue.QOS ? ch.qosQueue : io.queued === Queue.NOMEM ? ch.nomemQueue : ch.lockedQueue;
    q.remove(io);
    const qs = ch.bdev.qos;
    if (qs !== null && ch.qosQueue.head === null) qosWaiting(qs, ch.qosShare, false);
    if (io.inModule) {
      io.inModule = false;
      ch.inModule--;
    }
    deferComplete(io, IoStatus.ABORTED);
    return;
  }
  if (io.role !== Role.NONE) {
    // A parent: no more children; abort those the module holds.
    for (let c = ch.oHead; c !== null; c = c.oNext) {
      if (c.parent === io && c.inModule) abortInModule(a, c);
    }
    return;
  }
  if (io.inModule) abortInModule(a, io);
  else a.childStatus = IoStatus.FAILED; // already completing
}

function abortInModule(a: BdevIo, target: BdevIo): void {
  if (!target.bdev.supported[IoType.ABORT]) {
    a.childStatus = IoStatus.FAILED;
    return;
  }
  const sub = a.ch.getIo();
  if (sub === null) {
    a.childStatus = IoStatus.FAILED;
    return;
  }
  sub.type = IoType.ABORT;
  sub.abortTarget = target;
  sub.parent = a;
  sub.desc = a.desc;
  a.childOutstanding++;
  submitToModule(sub);
}

// ---- timeouts ----------------------------------------------------------------------------

/**
 * Set a descriptor's I/O timeout (spdk_bdev_set_timeout; here in microseconds, 0 = off): `cb`
 * runs once for each of its I/O outstanding longer than that, on the I/O's thread; it may abort.
 * Takes effect for channels got from now on and, on this thread, at once.
 */
export function bdevSetTimeout<C>(
  desc: BdevDesc,
  timeoutUs: number,
  cb: BdevTimeoutCb<C> | null,
  ctx?: C,
): void {
  if (!(timeoutUs >= 0)) throw new BdevError('EINVAL', `timeout must be >= 0 us, got ${timeoutUs}`);
  if (timeoutUs > 0 && typeof cb !== 'function') throw new BdevError('EINVAL', 'a timeout needs a callback');
  const rate = desc.thread.host.clock.rate;
  desc.timeoutTicks = Math.round((timeoutUs * rate) / 1e6);
  desc.timeoutCb = cb as BdevTimeoutCb<unknown> | null;
  desc.timeoutCtx = ctx;
}

/** @internal */
export function startTimeoutPoller(ch: BdevChannel): void {
  if (ch.timeoutPoller !== null) return;
  ch.timeoutPoller = ch.thread.registerPoller(
    () => checkTimeouts(ch),
    bdevOptions.timeoutPollUs,
    'bdev_timeout',
  );
}

function checkTimeouts(ch: BdevChannel): number {
  sampleNow(ch);
  const now = ch.shared.now;
  let n = 0;
  for (let io = ch.oHead; io !== null; io = io.oNext) {
    const d = io.desc;
    if (io.parent !== null || io.timedOut || d === null || d.timeoutTicks === 0 || io.type === IoType.ABORT)
      continue;
    if (now - io.submitTick < d.timeoutTicks) continue;
    io.timedOut = true;
    n++;
    d.timeoutCb?.(d.timeoutCtx, io);
  }
  return n;
}

// ---- QoS -----------------------------------------------------------------------------------

/** @internal */
export function startQosPoller(ch: BdevChannel): void {
  if (ch.qosPoller !== null) return;
  ch.qosPoller = ch.thread.registerPoller(() => qosRelease(ch), QOS_SLICE_US, 'bdev_qos');
}

function qosRelease(ch: BdevChannel): number {
  const q = ch.bdev.qos;
  let n = 0;
  sampleNow(ch);
  for (let io = ch.qosQueue.head; io !== null; io = ch.qosQueue.head) {
    if (q?.enabled && !qosAdmit(q, io, ch.qosShare)) break;
    ch.qosQueue.shift();
    submitPastQos(io);
    n++;
  }
  if (q !== null && ch.qosQueue.head === null) qosWaiting(q, ch.qosShare, false);
  return n;
}

const qosIter = defineChannelIterator<{ bdev: string }>('storkit.bdev.qos', (it) => {
  const ch = it.ctx as BdevChannel;
  if (ch.bdev.qos?.enabled) startQosPoller(ch);
  else {
    ch.qosPoller?.unregister();
    ch.qosPoller = null;
    qosRelease(ch);
  }
  it.continue(0);
});

export interface QosParams extends QosLimits {
  name: string;
  /** storkit: handle of the shared QoS counters (replay on other reactors). */
  storkit_qos_region?: number;
}

/**
 * bdev_set_qos_limit on this reactor's instance of the bdev. Returns the params to replay on the
 * other reactors (with `storkit_qos_region`, the shared counters' handle). `done` runs once every
 * channel applies it.
 */
export function bdevSetQosLimit(bdev: Bdev, p: QosParams, done?: () => void): QosParams {
  validateQosLimits(p);
  const t = getThread();
  if (t === null) throw new BdevError('ENOTHREAD', 'bdevSetQosLimit must run on a reactor thread');
  if (bdev.qos === null) bdev.qos = createQosState(p.storkit_qos_region);
  setQosState(bdev.qos, p, t.host.clock.rate);
  forEachChannelGlobal(bdev.ioDeviceName, qosIter, { bdev: bdev.name }, () => done?.());
  const handle = bdev.qos.handle;
  return handle === null ? { ...p } : { ...p, storkit_qos_region: handle };
}

/** The current limits per second (0 = unlimited), SPDK's names. */
export function bdevGetQosLimits(bdev: Bdev): Required<QosLimits> {
  const l = bdev.qos?.limits ?? [0, 0, 0, 0];
  const MB = 1024 * 1024;
  return {
    rw_ios_per_sec: l[0],
    rw_mbytes_per_sec: l[1] / MB,
    r_mbytes_per_sec: l[2] / MB,
    w_mbytes_per_sec: l[3] / MB,
  };
}

// ---- statistics ----------------------------------------------------------------------------

interface StatArg {
  stat: IoStatJson;
  hist: number[] | null;
}

const statIter = defineChannelIterator<StatArg>('storkit.bdev.iostat', (it) => {
  const ch = it.ctx as BdevChannel;
  const s = IoStat.fromJSON(it.arg.stat);
  s.add(ch.stat);
  it.arg.stat = s.toJSON();
  if (it.arg.hist !== null && ch.histogram !== null) {
    const h = it.arg.hist;
    const b = ch.histogram.buckets;
    for (let i = 0; i < b.length; i++) h[i] = (h[i] ?? 0) + b[i];
  }
  it.continue(0);
});

/**
 * The bdev's statistics summed over every channel on every reactor plus destroyed channels
 * (bdev_get_iostat); and its latency histogram when enabled (bdev_get_histogram).
 */
export function bdevGetIostat(bdev: Bdev, done: (stat: IoStat, hist: Histogram | null) => void): void {
  const arg: StatArg = { stat: bdev.retiredStat.toJSON(), hist: bdev.histogramEnabled ? [] : null };
  forEachChannelGlobal(bdev.ioDeviceName, statIter, arg, (_s, a) => {
    let h: Histogram | null = null;
    if (a.hist !== null) {
      h = new Histogram();
      h.merge(a.hist);
    }
    done(IoStat.fromJSON(a.stat), h);
  });
}

/** This channel's own statistics (bdev_get_iostat per_channel). */
export function bdevChannelStat(ch: BdevChannel): IoStat {
  return ch.stat;
}

/** One channel's statistics and the id of the thread that owns it (thread_get_stats' id). */
export interface ChannelIoStat {
  threadId: number;
  stat: IoStatJson;
}

const channelStatIter = defineChannelIterator<{ channels: ChannelIoStat[] }>(
  'storkit.bdev.iostat_per_channel',
  (it) => {
    it.arg.channels.push({ threadId: it.thread.id, stat: bdevChannelStat(it.ctx as BdevChannel).toJSON() });
    it.continue(0);
  },
);

/**
 * The statistics of each open channel of the bdev, on every reactor, in walk order (bdev_get_iostat
 * per_channel: SPDK's spdk_bdev_for_each_channel with spdk_bdev_get_io_stat of each). Channels
 * already destroyed are not listed (their counts live on in the bdev's sum only).
 */
export function bdevGetChannelIostats(bdev: Bdev, done: (channels: ChannelIoStat[]) => void): void {
  forEachChannelGlobal(bdev.ioDeviceName, channelStatIter, { channels: [] }, (_s, a) => done(a.channels));
}

const histIter = defineChannelIterator<{ bdev: string; on: boolean }>('storkit.bdev.histogram', (it) => {
  const ch = it.ctx as BdevChannel;
  ch.histogram = it.arg.on ? (ch.histogram ?? new Histogram()) : null;
  it.continue(0);
});

/** bdev_enable_histogram: start (or stop) collecting latency histograms on every channel. */
export function bdevEnableHistogram(bdev: Bdev, enable: boolean, done?: () => void): void {
  bdev.histogramEnabled = enable;
  forEachChannelGlobal(bdev.ioDeviceName, histIter, { bdev: bdev.name, on: enable }, () => done?.());
}
