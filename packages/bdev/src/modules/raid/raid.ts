// bdev_raid's core (SPDK's bdev_raid.c): a raid bdev over base bdevs, its slots, its channels, the
// dispatch of an I/O to the level's module (raid0.ts, concat.ts, raid1.ts), the fan-out of one I/O
// to several bases, and the life cycle (configuring until every base exists, online, a base
// leaving). The copy onto a new raid1 base is in rebuild.ts, the RPC-shaped entry points in rpc.ts.
//
// A raid is one object per worker (per isolate), like every bdev. State that every worker must
// agree on while I/O runs (a base failed, a rebuild's progress) travels by named channel walks
// (forEachChannelGlobal) that set it on each worker's raid object as they pass.
import {
  forEachChannel,
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
} from '@storkit/reactor';
import type { Bdev, BdevModule } from '../../bdev.js';
import type { BdevIo } from '../../bdev-io.js';
import type { BdevChannel } from '../../channel.js';
import type { BdevDesc } from '../../desc.js';
import { BdevError } from '../../errors.js';
import { queueIoWait } from '../../io.js';
import { bdevIoComplete } from '../../io-path.js';
import { IoWaitEntry } from '../../io-wait.js';
import {
  bdevClose,
  bdevGetIoChannel,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
} from '../../registry.js';
import { ENOMEM, IoStatus, IoType } from '../../types.js';
import { openBase, submitToBase } from '../vbdev.js';
import { concatLayout } from './concat.js';
import { raid0Layout } from './raid0.js';
import { raid1PartDone, raid1Submit } from './raid1.js';
import type { Rebuild } from './rebuild.js';

export type RaidLevel = 'raid0' | 'raid1' | 'concat';

export const SlotState = {
  /** No base here, or it left (removed, failed). */
  MISSING: 0,
  ONLINE: 1,
  /** A new raid1 base being filled by the rebuild: serves only what was copied. */
  REBUILDING: 2,
} as const;
export type SlotState = (typeof SlotState)[keyof typeof SlotState];

export interface Slot {
  name: string;
  desc: BdevDesc | null;
  state: SlotState;
  /** Blocks of this base used by the raid (concat: its share; others: the common size). */
  blocks: number;
  /** concat: first raid block on this base. */
  start: number;
  /** A raid1 write to it failed (SPDK's raid_bdev_fail_base_bdev): it left the array. */
  failed: boolean;
  /** This worker's raid1 writes waiting for the failure of this base to reach every reactor. */
  failWaiters: (() => void)[] | null;
}

export interface Raid {
  name: string;
  level: RaidLevel;
  stripBlocks: number;
  stripKb: number;
  uuid: string | undefined;
  slots: Slot[];
  bdev: Bdev | null;
  key: object;
  blockSize: number;
  state: 'configuring' | 'online' | 'offline';
  /** The copy, on the one thread that runs it (null on other workers and when none runs). */
  rebuild: Rebuild | null;
  /** This worker's view of the copy's progress: new channels start from it. */
  processOffset: number;
}

export interface RaidChannel {
  chans: (IoChannel<BdevChannel> | null)[];
  /** raid1: the next mirror to read from (round robin over operational mirrors). */
  rr: number;
  /** Blocks [0, processOffset) of a slot being rebuilt hold their data (see rebuild.ts). */
  processOffset: number;
}

/** One base's part of a fanned-out I/O: the base I/O's callback context (made once). */
export class RaidPart {
  readonly c: RaidIoCtx;
  readonly slot: number;
  failed = false;
  constructor(c: RaidIoCtx, slot: number) {
    this.c = c;
    this.slot = slot;
  }
}

/** Per-bdev_io context: fan-out bookkeeping (made once per pooled bdev_io). */
export class RaidIoCtx {
  io: BdevIo | null = null;
  remaining = 0;
  ok = 0;
  failed = 0;
  next = 0;
  tried = 0;
  /** Per-base ranges: [offset, num] by slot, offset -1 when the base takes no part. */
  readonly ranges: number[] = [];
  readonly parts: RaidPart[] = [];
  readonly wait: IoWaitEntry = new IoWaitEntry((c) => fanOut(c as RaidIoCtx), this);
  constructor(slots: number) {
    for (let i = 0; i < slots; i++) this.parts.push(new RaidPart(this, i));
  }
}

export const raidModule: BdevModule = {
  name: 'raid',
  examine(bdev) {
    for (const r of raids.values()) {
      if (r.state !== 'configuring') continue;
      const slot = r.slots.find((s) => s.name === bdev.name && s.desc === null);
      if (slot !== undefined) {
        attach(r, slot);
        if (r.slots.every((s) => s.desc !== null)) bringOnline(r);
      }
    }
  },
};
bdevModuleRegister(raidModule);

/** This worker's raids by name. */
export const raids = new Map<string, Raid>();

/** This worker's raid of that name, when it is online. */
export function raidOf(name: string): Raid | undefined {
  const r = raids.get(name);
  return r !== undefined && r.bdev !== null && r.state === 'online' ? r : undefined;
}

export function newSlot(name: string): Slot {
  return {
    name,
    desc: null,
    state: SlotState.MISSING,
    blocks: 0,
    start: 0,
    failed: false,
    failWaiters: null,
  };
}

export function attach(r: Raid, slot: Slot): void {
  slot.desc = openBase(slot.name, raidModule, (b) => baseRemoved(r, b.name));
  slot.state = SlotState.ONLINE;
  slot.failed = false;
}

export function operational(r: Raid): number {
  let n = 0;
  for (const s of r.slots) if (s.state === SlotState.ONLINE && s.desc !== null) n++;
  return n;
}

// ---- I/O ------------------------------------------------------------------------------------

function submit(chan: IoChannel<unknown>, io: BdevIo): void {
  const r = io.bdev.ctx as Raid;
  const ch = chan.ctx as RaidChannel;
  if (r.level === 'raid1') raid1Submit(r, ch, io);
  else stripedSubmit(r, ch, io, r.level === 'raid0' ? raid0Layout : concatLayout);
}

/** Reset the fan-out state of `c` for `io`; the caller fills `c.ranges` and `c.remaining`. */
function startFan(r: Raid, c: RaidIoCtx, io: BdevIo): void {
  c.ranges.length = 2 * r.slots.length;
  c.io = io;
  c.next = 0;
  c.ok = 0;
  c.failed = 0;
  c.remaining = 0;
}

/**
 * The whole I/O to every base that takes writes (raid1 writes, resets): an online base, or a base
 * being rebuilt when the I/O starts in the part already copied (the copy brings the rest later).
 */
export function fanAll(r: Raid, ch: RaidChannel, io: BdevIo): void {
  const c = io.driverCtx as RaidIoCtx;
  startFan(r, c, io);
  for (let i = 0; i < r.slots.length; i++) {
    const s = r.slots[i];
    const use =
      s.desc !== null &&
      ch.chans[i] !== null &&
      (s.state === SlotState.ONLINE ||
        (s.state === SlotState.REBUILDING && io.offsetBlocks < ch.processOffset));
    c.ranges[2 * i] = use ? io.offsetBlocks : -1;
    c.ranges[2 * i + 1] = io.numBlocks;
    if (use) c.remaining++;
  }
  fanOut(c);
}

/** Where raid blocks live on the bases of a striped level (raid0, concat). */
export interface Layout {
  slotOf(r: Raid, off: number): number;
  baseOffset(r: Raid, slot: number, off: number): number;
  /** The raid block where the run that starts at `off` on `slot` ends (a strip, or the base). */
  extentEnd(r: Raid, slot: number, off: number): number;
}

/**
 * raid0 / concat: a read, write or compare goes to one base (the bdev layer split it at the
 * strip); a reset to every base; unmap, flush and write zeroes to one contiguous range per base.
 */
export function stripedSubmit(r: Raid, ch: RaidChannel, io: BdevIo, layout: Layout): void {
  if (io.type === IoType.READ || io.type === IoType.WRITE || io.type === IoType.COMPARE) {
    const i = layout.slotOf(r, io.offsetBlocks);
    const base = ch.chans[i];
    const s = r.slots[i];
    if (base === null || s.desc === null) {
      bdevIoComplete(io, IoStatus.FAILED);
      return;
    }
    const off = layout.baseOffset(r, i, io.offsetBlocks);
    if (submitToBase(s.desc, base, io, off, io.numBlocks, io.iovs, oneDone, io) === ENOMEM) {
      bdevIoComplete(io, IoStatus.NOMEM);
    }
    return;
  }
  if (io.type === IoType.RESET) {
    fanAll(r, ch, io);
    return;
  }
  const c = io.driverCtx as RaidIoCtx;
  startFan(r, c, io);
  c.ranges.fill(-1);
  const end = io.offsetBlocks + io.numBlocks;
  for (let off = io.offsetBlocks; off < end; ) {
    const i = layout.slotOf(r, off);
    const len = Math.min(end, layout.extentEnd(r, i, off)) - off;
    const at = layout.baseOffset(r, i, off);
    if (c.ranges[2 * i] < 0) c.ranges[2 * i] = at;
    c.ranges[2 * i + 1] = at + len - c.ranges[2 * i];
    off += len;
  }
  for (let i = 0; i < r.slots.length; i++) if (c.ranges[2 * i] >= 0) c.remaining++;
  fanOut(c);
}

/** Submit the per-slot ranges from slot `c.next` on; on ENOMEM wait for that base channel. */
export function fanOut(c: RaidIoCtx): void {
  const io = c.io as BdevIo;
  const r = io.bdev.ctx as Raid;
  const ch = io.ch.moduleCh.ctx as RaidChannel;
  if (c.remaining === 0) {
    c.io = null;
    bdevIoComplete(io, IoStatus.SUCCESS);
    return;
  }
  for (; c.next < r.slots.length; c.next++) {
    const off = c.ranges[2 * c.next];
    if (off < 0) continue;
    const base = ch.chans[c.next];
    const s = r.slots[c.next];
    const part = c.parts[c.next];
    part.failed = false;
    if (base === null || s.desc === null) {
      partDone(IoStatus.FAILED, part);
      continue;
    }
    if (submitToBase(s.desc, base, io, off, c.ranges[2 * c.next + 1], io.iovs, partDone, part) === ENOMEM) {
      queueIoWait(base, c.wait);
      return;
    }
  }
}

/** One base finished its part; the last part completes the raid I/O. */
function partDone(status: IoStatus, part: RaidPart): void {
  const c = part.c;
  if (status === IoStatus.SUCCESS) c.ok++;
  else {
    c.failed++;
    part.failed = true;
  }
  if (--c.remaining > 0) return;
  const io = c.io as BdevIo;
  const r = io.bdev.ctx as Raid;
  if (r.level === 'raid1') {
    raid1PartDone(r, c, io);
    return;
  }
  // raid0 / concat: every base must have done its part.
  c.io = null;
  bdevIoComplete(io, c.failed === 0 ? IoStatus.SUCCESS : IoStatus.FAILED);
}

/** A one-base I/O finished: its status is the raid I/O's. */
function oneDone(status: IoStatus, io: BdevIo): void {
  bdevIoComplete(io, status);
}

// ---- life cycle ------------------------------------------------------------------------------

export function bringOnline(r: Raid): void {
  const bases = r.slots.map((s) => (s.desc as BdevDesc).bdev);
  const bs = bases[0].blockSize;
  if (bases.some((b) => b.blockSize !== bs)) {
    for (const s of r.slots) if (s.desc !== null) bdevClose(s.desc);
    for (const s of r.slots) s.desc = null;
    raids.delete(r.name);
    throw new BdevError('EINVAL', `bdev_raid_create: base bdevs of ${r.name} have different block sizes`);
  }
  r.blockSize = bs;
  r.stripBlocks = r.level === 'raid1' ? 0 : (r.stripKb * 1024) / bs;
  if (r.level !== 'raid1' && (!Number.isInteger(r.stripBlocks) || r.stripBlocks < 1)) {
    throw new BdevError(
      'EINVAL',
      `bdev_raid_create: strip_size_kb ${r.stripKb} is not a whole number of ${bs}-byte blocks`,
    );
  }
  let numBlocks: number;
  if (r.level === 'raid1') {
    numBlocks = Math.min(...bases.map((b) => b.numBlocks));
    for (const s of r.slots) s.blocks = numBlocks;
  } else if (r.level === 'raid0') {
    const per = Math.floor(Math.min(...bases.map((b) => b.numBlocks)) / r.stripBlocks) * r.stripBlocks;
    for (const s of r.slots) s.blocks = per;
    numBlocks = per * r.slots.length;
  } else {
    let start = 0;
    for (const s of r.slots) {
      const b = (s.desc as BdevDesc).bdev;
      s.start = start;
      s.blocks = Math.floor(b.numBlocks / r.stripBlocks) * r.stripBlocks;
      start += s.blocks;
    }
    numBlocks = start;
  }
  if (numBlocks < 1) throw new BdevError('EINVAL', `bdev_raid_create: ${r.name} would have no blocks`);
  ioDeviceRegister<RaidChannel>(r.key, {
    name: `raid/${r.name}`,
    create: () => ({
      chans: r.slots.map((s) =>
        s.desc === null || s.state === SlotState.MISSING ? null : bdevGetIoChannel(s.desc),
      ),
      rr: 0,
      processOffset: r.processOffset,
    }),
    destroy: (ch) => {
      for (const c of ch.ctx.chans) c?.put();
    },
  });
  const caps = (t: IoType) => {
    if (
      t === IoType.COMPARE_AND_WRITE ||
      t === IoType.ABORT ||
      t === IoType.NVME_ADMIN ||
      t === IoType.NVME_IO
    )
      return false;
    if (t === IoType.RESET) return true;
    return bases.every((b) => b.ioTypeSupported(t));
  };
  const nSlots = r.slots.length;
  r.bdev = bdevRegister({
    name: r.name,
    uuid: r.uuid,
    productName: 'Raid Volume',
    blockSize: bs,
    numBlocks,
    writeCache: bases.some((b) => b.writeCache),
    optimalIoBoundary: r.stripBlocks,
    splitOnOptimalIoBoundary: r.stripBlocks > 0,
    module: raidModule,
    ctx: r,
    fn: {
      submitRequest: submit,
      ioTypeSupported: caps,
      getIoChannel: () => getIoChannel(r.key),
      createIoCtx: () => new RaidIoCtx(nSlots),
      destruct: (done) => {
        r.state = 'offline';
        ioDeviceUnregister(r.key, () => {
          for (const s of r.slots) {
            if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
            s.desc = null;
            runFailWaiters(s);
          }
          raids.delete(r.name);
          done();
        });
      },
      dumpInfoJson: () => ({ raid: raidInfo(r) }),
    },
  });
  r.uuid = r.bdev.uuid;
  r.state = 'online';
}

/** Writes held for a base's failure to spread: let them complete (their status is decided). */
export function runFailWaiters(s: Slot): void {
  const w = s.failWaiters;
  s.failWaiters = null;
  if (w !== null) for (const f of w) f();
}

/** A base went away on this worker: raid1 runs degraded while a mirror is left; the others go offline. */
export function baseRemoved(r: Raid, baseName: string, done?: () => void): void {
  const i = r.slots.findIndex((s) => s.name === baseName && s.desc !== null);
  if (i < 0) {
    done?.();
    return;
  }
  const slot = r.slots[i];
  if (r.state !== 'online' || r.bdev === null) {
    if (slot.desc !== null) bdevClose(slot.desc);
    slot.desc = null;
    slot.state = SlotState.MISSING;
    done?.();
    return;
  }
  slot.state = SlotState.MISSING;
  if (r.rebuild !== null && r.rebuild.slot === i) r.rebuild.cancelled = true;
  const desc = slot.desc as BdevDesc;
  const stillUp = r.level === 'raid1' && operational(r) > 0;
  if (!stillUp) {
    if (!r.bdev.isRemoving) bdevUnregister(r.bdev, done);
    else done?.();
    return;
  }
  dropSlotChannels(r, i, desc.bdev, () => {
    if (!desc.isClosed) bdevClose(desc);
    // A rebuild started from another worker may have put a new base here meanwhile.
    if (slot.desc === desc) slot.desc = null;
    done?.();
  });
}

/** Every channel of this worker lets go of slot i's channel to `bdev` (not of a newer base's). */
function dropSlotChannels(r: Raid, i: number, bdev: Bdev, done: () => void): void {
  forEachChannel<RaidChannel, null>(
    r.key,
    (it) => {
      const c = it.ctx.chans[i];
      if (c !== null && c.ctx.bdev === bdev) {
        c.put();
        it.ctx.chans[i] = null;
      }
      it.continue(0);
    },
    () => done(),
    null,
  );
}

/** bdev_raid_get_bdevs / driver_specific.raid (SPDK's field names). */
export function raidInfo(r: Raid): Record<string, unknown> {
  return {
    name: r.name,
    uuid: r.uuid,
    strip_size_kb: r.stripKb,
    state: r.state,
    raid_level: r.level,
    superblock: false,
    num_base_bdevs: r.slots.length,
    num_base_bdevs_discovered: r.slots.filter((s) => s.desc !== null).length,
    num_base_bdevs_operational: operational(r),
    base_bdevs_list: r.slots.map((s) => ({
      name: s.state === SlotState.MISSING && s.desc === null ? null : s.name,
      is_configured: s.state === SlotState.ONLINE,
      data_offset: 0,
      data_size: s.blocks,
    })),
    ...(r.rebuild !== null
      ? { rebuild: { base_bdev: r.rebuild.name, progress_blocks: r.rebuild.offset } }
      : {}),
  };
}
