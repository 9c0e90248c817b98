// QoS (SPDK's bdev_set_qos_limit): per-bdev limits on IOPS and read/write/total bandwidth,
// enforced across every channel on every reactor. The budget lives in shared memory (an
// Int32Array over a DmaRegion any worker attaches by handle): each 1 ms timeslice the first
// channel to notice the new slice refills it (compare-and-exchange on the slice word), and every
// admitted I/O subtracts its cost atomically. An I/O may overdraw; the debt carries into the next
// slice, so the long-run rate is exact. Held-back I/O waits in its channel's queue and is released
// by a timed poller as the budget refills.
import { DmaRegion } from '@storkit/native';
import type { BdevIo } from './bdev-io.js';
import { BdevError } from './errors.js';
import { IoType } from './types.js';

/** Limits per second; 0 = unlimited. SPDK's parameter names. */
export interface QosLimits {
  rw_ios_per_sec?: number;
  rw_mbytes_per_sec?: number;
  r_mbytes_per_sec?: number;
  w_mbytes_per_sec?: number;
}

const EPOCH = 0;
const IOS = 1;
const RW = 2;
const RD = 3;
const WR = 4;
/** Channels (on any reactor) with I/O waiting for budget: the budget is shared fairly among them. */
const ACTIVE = 5;
const WORDS = 8;
export const QOS_SLICE_US = 1000;
const SLICES_PER_SEC = 1_000_000 / QOS_SLICE_US;
const MB = 1024 * 1024;

/** @internal */
export class QosState {
  readonly words: Int32Array;
  readonly region: DmaRegion | null;
  /** Per-second limits: ios, rw bytes, read bytes, write bytes (0 = none). */
  readonly limits = [0, 0, 0, 0];
  sliceTicks = 0;
  lastSlice = -1;
  /** Budget of the current slice per limit (for fair shares). */
  readonly slice = [0, 0, 0, 0];

  constructor(words: Int32Array, region: DmaRegion | null) {
    this.words = words;
    this.region = region;
  }

  get enabled(): boolean {
    return this.limits.some((l) => l > 0);
  }

  /** The shared memory's handle (DmaRegion), for replaying on other reactors. */
  get handle(): number | null {
    return this.region?.handle ?? null;
  }
}

/** Validate SPDK's QoS params (IOPS a multiple of 1000, bandwidth whole MB/s). */
export function validateQosLimits(p: QosLimits): void {
  for (const k of ['rw_ios_per_sec', 'rw_mbytes_per_sec', 'r_mbytes_per_sec', 'w_mbytes_per_sec'] as const) {
    const v = p[k];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0)
      throw new BdevError('EINVAL', `${k} must be an integer >= 0, got ${v}`);
  }
  if (p.rw_ios_per_sec !== undefined && p.rw_ios_per_sec % 1000 !== 0) {
    throw new BdevError('EINVAL', `rw_ios_per_sec must be a multiple of 1000, got ${p.rw_ios_per_sec}`);
  }
}

/**
 * @internal The QoS state of a bdev: `handle` attaches the shared counters another reactor made;
 * without it a small DmaRegion is made here.
 */
export function createQosState(handle: number | undefined): QosState {
  const region =
    handle === undefined ? DmaRegion.create(4096, { hugepages: 'never' }) : DmaRegion.attach(handle);
  const words = new Int32Array(region.buffer, 0, WORDS);
  return new QosState(words, region);
}

/** @internal Apply limits (the same values on every reactor). */
export function setQosState(q: QosState, p: QosLimits, tickRate: number): void {
  q.limits[0] = p.rw_ios_per_sec ?? q.limits[0];
  q.limits[1] = p.rw_mbytes_per_sec !== undefined ? p.rw_mbytes_per_sec * MB : q.limits[1];
  q.limits[2] = p.r_mbytes_per_sec !== undefined ? p.r_mbytes_per_sec * MB : q.limits[2];
  q.limits[3] = p.w_mbytes_per_sec !== undefined ? p.w_mbytes_per_sec * MB : q.limits[3];
  q.sliceTicks = Math.max(1, Math.round((tickRate * QOS_SLICE_US) / 1e6));
  q.lastSlice = -1;
}

/** @internal Which I/O types QoS meters. */
export function qosApplies(t: IoType): boolean {
  return t === IoType.READ || t === IoType.WRITE || t === IoType.UNMAP || t === IoType.WRITE_ZEROES;
}

/** Budget of slice `s` for a per-second limit, with fractions spread so each second is exact. */
function perSlice(limit: number, s: number): number {
  const k = s % SLICES_PER_SEC;
  return Math.floor((limit * (k + 1)) / SLICES_PER_SEC) - Math.floor((limit * k) / SLICES_PER_SEC);
}

/** Most slices one refill credits and the bucket holds: an idle bdev bursts 20 ms worth at most. */
const MAX_CATCH_UP = 20;

function refill(q: QosState, slice: number): void {
  q.lastSlice = slice;
  for (let i = 0; i < 4; i++) q.slice[i] = q.limits[i] === 0 ? 0 : perSlice(q.limits[i], slice);
  const w = q.words;
  const e = slice | 0;
  const old = Atomics.load(w, EPOCH);
  if (old === e || Atomics.compareExchange(w, EPOCH, old, e) !== old) return;
  let k = (e - old) | 0;
  if (k < 1 || k > MAX_CATCH_UP) k = k < 1 ? 1 : MAX_CATCH_UP;
  for (let i = 0; i < 4; i++) {
    const lim = q.limits[i];
    if (lim === 0) continue;
    let add = 0;
    for (let j = 0; j < k; j++) add += perSlice(lim, slice - j);
    const cap = MAX_CATCH_UP * perSlice(lim, slice);
    for (;;) {
      const cur = Atomics.load(w, IOS + i);
      // A bucket of MAX_CATCH_UP slices: budget not taken yet survives a few late pollers (on a
      // busy machine a reactor can be off-CPU for milliseconds); debt carries over, so the
      // long-run rate is exact.
      const next = Math.min(cur + add, cap);
      if (Atomics.compareExchange(w, IOS + i, cur, next) === cur) break;
    }
  }
}

/** @internal Per-channel QoS bookkeeping: its fair-share allowance, whether it waits. */
export class QosShare {
  slice = -1;
  /** Allowance left (I/Os, bytes): refilled by a fair share per slice, spent per admitted I/O. */
  ios = 0;
  bytes = 0;
  waiting = false;
}

/** @internal The channel has I/O waiting (or no longer): counted in the shared ACTIVE word. */
export function qosWaiting(q: QosState, share: QosShare, waiting: boolean): void {
  if (share.waiting === waiting) return;
  share.waiting = waiting;
  Atomics.add(q.words, ACTIVE, waiting ? 1 : -1);
}

/**
 * @internal Take io's cost from the shared budget; false (nothing taken) when a limit is spent,
 * or when this channel already took its fair share of the slice while others wait. The time is
 * io's channel's latest sampleNow reading (a field: a tick count passed as an argument would be
 * boxed into a heap number).
 */
export function qosAdmit(q: QosState, io: BdevIo, share: QosShare): boolean {
  const slice = Math.floor(io.ch.shared.now / q.sliceTicks);
  if (slice !== q.lastSlice) refill(q, slice);
  const w = q.words;
  const l = q.limits;
  const isRead = io.type === IoType.READ;
  const isWrite = io.type === IoType.WRITE;
  const active = Math.max(1, Atomics.load(w, ACTIVE));
  const fairIos = Math.ceil(q.slice[0] / active);
  const bl = Math.max(q.slice[1], isRead ? q.slice[2] : 0, isWrite ? q.slice[3] : 0);
  const fairBytes = Math.ceil(bl / active);
  if (share.slice !== slice) {
    // Each slice that passed adds a fair share to the channel's allowance (a bucket of
    // MAX_CATCH_UP shares, so a poller that ran late catches up).
    const k = share.slice < 0 ? 1 : Math.min(MAX_CATCH_UP, slice - share.slice);
    share.slice = slice;
    share.ios = Math.min(share.ios + k * fairIos, MAX_CATCH_UP * fairIos);
    share.bytes = Math.min(share.bytes + k * fairBytes, MAX_CATCH_UP * fairBytes);
  }
  if (active > 1) {
    // Past its fair share a channel may still take budget the others' shares leave over
    // (work-conserving: a reactor that is off-CPU does not hold the rest back).
    if (l[0] > 0 && share.ios <= 0 && Atomics.load(w, IOS) <= fairIos * (active - 1)) return false;
    if (bl > 0 && share.bytes <= 0) {
      const left = Math.min(
        l[1] > 0 ? Atomics.load(w, RW) : Number.MAX_SAFE_INTEGER,
        isRead && l[2] > 0 ? Atomics.load(w, RD) : Number.MAX_SAFE_INTEGER,
        isWrite && l[3] > 0 ? Atomics.load(w, WR) : Number.MAX_SAFE_INTEGER,
      );
      if (left <= fairBytes * (active - 1)) return false;
    }
  }
  if (l[0] > 0 && Atomics.load(w, IOS) <= 0) return false;
  if ((isRead || isWrite) && l[1] > 0 && Atomics.load(w, RW) <= 0) return false;
  if (isRead && l[2] > 0 && Atomics.load(w, RD) <= 0) return false;
  if (isWrite && l[3] > 0 && Atomics.load(w, WR) <= 0) return false;
  const bytes = io.numBlocks * io.bdev.blockSize;
  share.ios--;
  share.bytes -= bytes;
  if (l[0] > 0) Atomics.sub(w, IOS, 1);
  if ((isRead || isWrite) && l[1] > 0) Atomics.sub(w, RW, bytes);
  if (isRead && l[2] > 0) Atomics.sub(w, RD, bytes);
  if (isWrite && l[3] > 0) Atomics.sub(w, WR, bytes);
  return true;
}
