// raid1 (SPDK's raid1.c): every write goes to every operational mirror; reads go round robin to
// operational mirrors and fall over to the next one on error.
//
// A write that fails on a mirror while another took it succeeds, and the failing mirror leaves the
// array (SPDK's raid_bdev_fail_base_bdev): otherwise the mirrors drift apart and reads return old
// and new data by turns. The failure travels to every reactor by a channel walk that marks the
// slot missing on each worker and drops each channel's base channel; only when it has reached all
// of them does the write complete, so no read anywhere can see the old data after the write was
// acknowledged. A second walk then closes each worker's descriptor of the failed base.
import { defineChannelIterator, forEachChannelGlobal } from '@storkit/reactor';
import type { BdevIo } from '../../bdev-io.js';
import { bdevIoComplete } from '../../io-path.js';
import { bdevClose, bdevUnregister } from '../../registry.js';
import { ENOMEM, IoStatus, IoType } from '../../types.js';
import { submitToBase } from '../vbdev.js';
import {
  fanAll,
  operational,
  type Raid,
  type RaidChannel,
  type RaidIoCtx,
  raidOf,
  runFailWaiters,
  SlotState,
} from './raid.js';

export function raid1Submit(r: Raid, ch: RaidChannel, io: BdevIo): void {
  if (io.type === IoType.READ || io.type === IoType.COMPARE) mirrorRead(r, ch, io);
  else fanAll(r, ch, io);
}

function mirrorRead(r: Raid, ch: RaidChannel, io: BdevIo): void {
  const c = io.driverCtx as RaidIoCtx;
  c.io = io;
  c.tried = 0;
  c.next = ch.rr++ % r.slots.length;
  mirrorReadNext(c);
}

function mirrorReadNext(c: RaidIoCtx): void {
  const io = c.io as BdevIo;
  const r = io.bdev.ctx as Raid;
  const ch = io.ch.moduleCh.ctx as RaidChannel;
  const n = r.slots.length;
  for (; c.tried < n; c.tried++, c.next = (c.next + 1) % n) {
    const s = r.slots[c.next];
    const base = ch.chans[c.next];
    if (s.desc === null || base === null) continue;
    // A base being rebuilt serves what the copy already brought over.
    if (
      s.state !== SlotState.ONLINE &&
      !(s.state === SlotState.REBUILDING && io.offsetBlocks + io.numBlocks <= ch.processOffset)
    )
      continue;
    if (
      submitToBase(s.desc, base, io, io.offsetBlocks, io.numBlocks, io.iovs, mirrorReadDone, c) === ENOMEM
    ) {
      c.io = null;
      bdevIoComplete(io, IoStatus.NOMEM);
    }
    return;
  }
  c.io = null;
  bdevIoComplete(io, IoStatus.FAILED);
}

function mirrorReadDone(status: IoStatus, c: RaidIoCtx): void {
  const io = c.io as BdevIo;
  if (status === IoStatus.SUCCESS || status === IoStatus.MISCOMPARE) {
    c.io = null;
    bdevIoComplete(io, status);
    return;
  }
  // Fall over to the next mirror.
  c.tried++;
  c.next = (c.next + 1) % (io.bdev.ctx as Raid).slots.length;
  mirrorReadNext(c);
}

/** I/O types after which a mirror that failed holds other data than the rest. */
function changesMedium(t: number): boolean {
  return t === IoType.WRITE || t === IoType.WRITE_ZEROES || t === IoType.UNMAP || t === IoType.FLUSH;
}

/**
 * Every mirror finished its part of a fanned-out I/O. It succeeded when one mirror did; mirrors
 * that failed a write leave the array first (the write completes once that reached every reactor).
 */
export function raid1PartDone(r: Raid, c: RaidIoCtx, io: BdevIo): void {
  c.io = null;
  const status = c.ok > 0 ? IoStatus.SUCCESS : IoStatus.FAILED;
  if (c.failed === 0 || !changesMedium(io.type)) {
    bdevIoComplete(io, status);
    return;
  }
  let waiting = 0;
  const done = (): void => {
    if (--waiting === 0) bdevIoComplete(io, status);
  };
  for (const p of c.parts) if (p.failed) waiting++;
  for (const p of c.parts) {
    if (!p.failed) continue;
    p.failed = false;
    failBase(r, p.slot, done);
  }
}

interface FailArg {
  raid: string;
  slot: number;
  base: string;
}

// Walk 1: on each reactor the slot leaves the array (state, rebuild, the raid itself when no
// mirror is left), then each channel drops its channel to the failed base.
const failWalk = defineChannelIterator<FailArg>(
  'storkit.raid.fail_base',
  (it) => {
    const ch = it.ctx as RaidChannel;
    const s = raidOf(it.arg.raid)?.slots[it.arg.slot];
    const c = ch.chans[it.arg.slot];
    // This reactor's onReactor ran first: the slot is marked failed here if it is the same base.
    if (c !== null && s?.failed && s.desc !== null && c.ctx.bdev === s.desc.bdev) {
      c.put();
      ch.chans[it.arg.slot] = null;
    }
    it.continue(0);
  },
  (a) => {
    const r = raidOf(a.raid);
    const s = r?.slots[a.slot];
    if (r === undefined || s === undefined || s.name !== a.base || s.desc === null || s.failed) return;
    s.failed = true;
    s.state = SlotState.MISSING;
    if (r.rebuild !== null && r.rebuild.slot === a.slot) r.rebuild.cancelled = true;
    if (operational(r) === 0 && r.bdev !== null && !r.bdev.isRemoving) bdevUnregister(r.bdev);
  },
);

// Walk 2: every channel let go of the failed base: each worker closes its descriptor.
const failClose = defineChannelIterator<FailArg>(
  'storkit.raid.fail_close',
  (it) => it.continue(0),
  (a) => {
    const s = raidOf(a.raid)?.slots[a.slot];
    if (s === undefined || !s.failed || s.name !== a.base || s.desc === null) return;
    if (!s.desc.isClosed) bdevClose(s.desc);
    s.desc = null;
  },
);

/**
 * Fail base `slot` of raid1 `r` on every reactor; `done` runs on this thread once every reactor
 * took it out of the array. Writes failing together on this worker share one failure.
 */
function failBase(r: Raid, slot: number, done: () => void): void {
  const s = r.slots[slot];
  if (s.failWaiters !== null) {
    s.failWaiters.push(done);
    return;
  }
  s.failWaiters = [done];
  const arg: FailArg = { raid: r.name, slot, base: s.name };
  forEachChannelGlobal(`raid/${r.name}`, failWalk, arg, () => {
    runFailWaiters(s);
    forEachChannelGlobal(`raid/${r.name}`, failClose, arg, () => {});
  });
}
