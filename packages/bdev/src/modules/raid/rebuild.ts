// The rebuild of a new raid1 base (SPDK's raid process): one thread copies window after window
// from a good mirror to the new base. Each window is range-locked on the raid bdev, on every
// channel of every reactor, while it is copied, so user writes to it wait. Every raid channel
// knows how far the copy got (processOffset, set by a global channel walk before each window is
// unlocked): writes that start below it go to the new base too, writes wholly above it only to the
// good mirrors (the copy brings them over later), and reads wholly below it may be served by the
// new base. State that a channel created later must see (the new base, the offset) is set on each
// worker's raid object when a walk reaches that reactor.
import { defineChannelIterator, forEachChannelGlobal, type IoChannel } from '@storkit/reactor';
import type { BdevIo } from '../../bdev-io.js';
import type { BdevChannel } from '../../channel.js';
import type { BdevDesc } from '../../desc.js';
import { BdevError } from '../../errors.js';
import { bdevReadv, bdevWritev } from '../../io.js';
import { bdevLockLbaRange, bdevUnlockLbaRange } from '../../range-lock.js';
import { bdevClose, bdevGetIoChannel, bdevOpenExt } from '../../registry.js';
import { ENOMEM, IoStatus } from '../../types.js';
import { openBase } from '../vbdev.js';
import { baseRemoved, type Raid, type RaidChannel, raidModule, raidOf, SlotState } from './raid.js';

export interface Rebuild {
  name: string;
  slot: number;
  offset: number;
  chunk: number;
  buf: Uint8Array;
  iov: Uint8Array[];
  ch: IoChannel<BdevChannel>;
  srcCh: IoChannel<BdevChannel> | null;
  dstCh: IoChannel<BdevChannel> | null;
  src: number;
  lock: BdevIo | null;
  raidDesc: BdevDesc;
  cancelled: boolean;
  done: ((err: BdevError | null) => void) | undefined;
  raid: Raid;
}

interface ProcessArg {
  raid: string;
  slot: number;
  base: string;
  /** process_offset: blocks copied so far; process_end: 1 when the copy completed. */
  value: number;
}

// Start: the new base joins the slot on every worker, then every channel gets a channel to it.
export const processStart = defineChannelIterator<ProcessArg>(
  'storkit.raid.process_start',
  (it) => {
    const r = raidOf(it.arg.raid);
    const s = r?.slots[it.arg.slot];
    const ch = it.ctx as RaidChannel;
    const old = ch.chans[it.arg.slot];
    if (s !== undefined && s.desc !== null && (old === null || old.ctx.bdev !== s.desc.bdev)) {
      // A removed base this worker still lets go of: its drop walk skips the new channel.
      old?.put();
      ch.chans[it.arg.slot] = bdevGetIoChannel(s.desc);
    }
    ch.processOffset = 0;
    it.continue(0);
  },
  (a) => {
    const r = raidOf(a.raid);
    if (r === undefined) return;
    r.processOffset = 0;
    const s = r.slots[a.slot];
    // Opened already by the caller's worker (or for another reactor of this isolate). A removed
    // base may still be leaving the slot here: its close does not touch the new one.
    if (s.desc !== null && s.name === a.base && s.state !== SlotState.MISSING) return;
    s.name = a.base;
    s.failed = false;
    s.desc = openBase(a.base, raidModule, (b) => baseRemoved(r, b.name));
    s.state = SlotState.REBUILDING;
    s.blocks = r.slots.find((x) => x.state === SlotState.ONLINE)?.blocks ?? s.desc.bdev.numBlocks;
  },
);

// Progress: set before each window is unlocked, so writes to it from then on reach the new base.
const processOffset = defineChannelIterator<ProcessArg>(
  'storkit.raid.process_offset',
  (it) => {
    (it.ctx as RaidChannel).processOffset = it.arg.value;
    it.continue(0);
  },
  (a) => {
    const r = raidOf(a.raid);
    if (r !== undefined) r.processOffset = a.value;
  },
);

// End: the slot is online everywhere (value 1), or the new base leaves it again (value 0).
const processEnd = defineChannelIterator<ProcessArg>(
  'storkit.raid.process_end',
  (it) => {
    const ch = it.ctx as RaidChannel;
    if (it.arg.value === 0) {
      ch.chans[it.arg.slot]?.put();
      ch.chans[it.arg.slot] = null;
    }
    ch.processOffset = 0;
    it.continue(0);
  },
  (a) => {
    const r = raidOf(a.raid);
    if (r === undefined) return;
    r.processOffset = 0;
    const s = r.slots[a.slot];
    if (s.state !== SlotState.REBUILDING) return;
    if (a.value === 1 && s.desc !== null) {
      s.state = SlotState.ONLINE;
      return;
    }
    // Channels drop theirs on the walk's visit (new ones skip a missing slot); process_close
    // closes the descriptor once every channel on every reactor let go.
    s.state = SlotState.MISSING;
  },
);

const processClose = defineChannelIterator<ProcessArg>(
  'storkit.raid.process_close',
  (it) => it.continue(0),
  (a) => {
    const s = raidOf(a.raid)?.slots[a.slot];
    if (s === undefined || s.state !== SlotState.MISSING || s.desc === null || s.name !== a.base) return;
    if (!s.desc.isClosed) bdevClose(s.desc);
    s.desc = null;
  },
);

export function processWalk(
  r: Raid,
  iter: typeof processStart,
  slot: number,
  value: number,
  done: () => void,
): void {
  const arg: ProcessArg = { raid: r.name, slot, base: r.slots[slot].name, value };
  forEachChannelGlobal(`raid/${r.name}`, iter, arg, () => done());
}

export function startRebuild(
  raid: Raid,
  slot: number,
  done: ((err: BdevError | null) => void) | undefined,
): void {
  const raidDesc = bdevOpenExt(raid.name, false, () => {});
  const chunk = Math.max(1, Math.floor((128 * 1024) / raid.blockSize));
  const src = raid.slots.findIndex((x) => x.state === SlotState.ONLINE && x.desc !== null);
  const srcDesc = raid.slots[src].desc as BdevDesc;
  const dstDesc = raid.slots[slot].desc as BdevDesc;
  const buf = new Uint8Array(chunk * raid.blockSize);
  const rb: Rebuild = {
    name: raid.slots[slot].name,
    slot,
    offset: 0,
    chunk,
    buf,
    iov: [buf],
    ch: bdevGetIoChannel(raidDesc),
    srcCh: bdevGetIoChannel(srcDesc),
    dstCh: bdevGetIoChannel(dstDesc),
    src,
    lock: null,
    raidDesc,
    cancelled: false,
    done,
    raid,
  };
  raid.rebuild = rb;
  rebuildStep(rb);
}

function rebuildStep(rb: Rebuild): void {
  const total = rb.raid.slots[rb.slot].blocks;
  if (rb.cancelled || rb.offset >= total) {
    finishRebuild(rb);
    return;
  }
  const n = Math.min(rb.chunk, total - rb.offset);
  rb.lock = bdevLockLbaRange(rb.ch.ctx, rb.offset, n, rebuildLocked, rb);
  if (rb.lock === null) {
    rb.ch.thread.sendMsg(rebuildStep, rb);
  }
}

function rebuildLocked(_s: IoStatus, rb: Rebuild): void {
  const n = Math.min(rb.chunk, rb.raid.slots[rb.slot].blocks - rb.offset);
  rb.iov[0] = n * rb.raid.blockSize === rb.buf.length ? rb.buf : rb.buf.subarray(0, n * rb.raid.blockSize);
  const srcDesc = rb.raid.slots[rb.src].desc;
  if (rb.cancelled || srcDesc === null || rb.srcCh === null) {
    rebuildUnlock(rb, false);
    return;
  }
  if (bdevReadv(srcDesc, rb.srcCh, rb.iov, rb.offset, n, rebuildRead, rb) === ENOMEM)
    rebuildUnlock(rb, false, true);
}

function rebuildRead(status: IoStatus, rb: Rebuild): void {
  const dst = rb.raid.slots[rb.slot].desc;
  if (status !== IoStatus.SUCCESS || rb.cancelled || dst === null || rb.dstCh === null) {
    rebuildUnlock(rb, false);
    return;
  }
  const n = rb.iov[0].length / rb.raid.blockSize;
  if (bdevWritev(dst, rb.dstCh, rb.iov, rb.offset, n, rebuildWritten, rb) === ENOMEM)
    rebuildUnlock(rb, false, true);
}

function rebuildWritten(status: IoStatus, rb: Rebuild): void {
  if (status !== IoStatus.SUCCESS) rb.cancelled = true;
  rebuildUnlock(rb, status === IoStatus.SUCCESS);
}

function rebuildUnlock(rb: Rebuild, advance: boolean, retry = false): void {
  const lock = rb.lock as BdevIo;
  rb.lock = null;
  const unlock = () => bdevUnlockLbaRange(lock, () => rebuildStep(rb), null);
  if (!advance) {
    if (!retry) rb.cancelled = true;
    unlock();
    return;
  }
  rb.offset += rb.iov[0].length / rb.raid.blockSize;
  // Channels learn the window is copied while it is still locked: no write to it can slip past
  // the new base between the unlock and the offset update.
  processWalk(rb.raid, processOffset, rb.slot, rb.offset, unlock);
}

function finishRebuild(rb: Rebuild): void {
  const raid = rb.raid;
  const slot = raid.slots[rb.slot];
  rb.ch.put();
  rb.srcCh?.put();
  rb.dstCh?.put();
  bdevClose(rb.raidDesc);
  const ok = !rb.cancelled && slot.desc !== null;
  processWalk(raid, processEnd, rb.slot, ok ? 1 : 0, () => {
    const finish = () => {
      raid.rebuild = null;
      if (ok) rb.done?.(null);
      else
        rb.done?.(
          new BdevError('EIO', `rebuild of ${rb.name} in ${raid.name} stopped at block ${rb.offset}`),
        );
    };
    if (ok) finish();
    else processWalk(raid, processClose, rb.slot, 0, finish);
  });
}
