// bdev_raid: raid0 (striping), raid1 (mirroring, degraded operation and rebuild) and concat.
// A raid waits in "configuring" until all its base bdevs exist (examine), then registers.
// raid0/concat split I/O at the strip (the bdev layer splits reads and writes on the optimal
// boundary; unmap/flush/write_zeroes are divided per base here). raid1 writes go to every
// operational base; reads go round-robin to operational bases and fall over to the next mirror
// on error.
//
// Rebuild (SPDK's raid process): one thread copies window after window from a good mirror to the
// new base. Each window is range-locked on the raid bdev, on every channel of every reactor, while
// it is copied, so user writes to it wait. Every raid channel knows how far the copy got
// (processOffset, set by a global channel walk before each window is unlocked): writes that start
// below it go to the new base too, writes wholly above it only to the good mirrors (the copy
// brings them over later), and reads wholly below it may be served by the new base. State that a
// channel created later must see (the new base, the offset) is set on each worker's raid object
// when a walk reaches that reactor.
import {
  defineChannelIterator,
  forEachChannel,
  forEachChannelGlobal,
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
} from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import type { BdevChannel } from '../channel.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import { bdevReadv, bdevWritev, queueIoWait } from '../io.js';
import { bdevIoComplete } from '../io-path.js';
import { IoWaitEntry } from '../io-wait.js';
import { bdevLockLbaRange, bdevUnlockLbaRange } from '../range-lock.js';
import {
  bdevClose,
  bdevGetByName,
  bdevGetIoChannel,
  bdevModuleRegister,
  bdevOpenExt,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { ENOMEM, IoStatus, IoType } from '../types.js';
import { ParamReader } from './params.js';
import { openBase, submitToBase } from './vbdev.js';

export type RaidLevel = 'raid0' | 'raid1' | 'concat';

/** bdev_raid_create params (SPDK schema). */
export interface RaidCreateParams {
  name: string;
  raid_level: string;
  base_bdevs: string[] | string;
  strip_size_kb?: number;
  uuid?: string;
  superblock?: boolean;
}

const SLOT_MISSING = 0;
const SLOT_ONLINE = 1;
const SLOT_REBUILDING = 2;

interface Slot {
  name: string;
  desc: BdevDesc | null;
  state: number;
  /** Blocks of this base used by the raid (concat: its share; others: the common size). */
  blocks: number;
  /** concat: first raid block on this base. */
  start: number;
}

interface Raid {
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

interface RaidChannel {
  chans: (IoChannel<BdevChannel> | null)[];
  rr: number;
  /** Blocks [0, processOffset) of a slot being rebuilt hold their data (see the header). */
  processOffset: number;
}

/** Per-bdev_io context: fan-out bookkeeping (made once per pooled bdev_io). */
class RaidIoCtx {
  io: BdevIo | null = null;
  remaining = 0;
  ok = 0;
  failed = 0;
  next = 0;
  tried = 0;
  /** Per-base ranges for null-payload I/O: [offset, num] by slot. */
  readonly ranges: number[] = [];
  readonly wait: IoWaitEntry = new IoWaitEntry((c) => fanOut(c as RaidIoCtx), this);
  constructor() {
    this.wait.cbArg = this;
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
const raids = new Map<string, Raid>();

function levelOf(r: ParamReader, v: string): RaidLevel {
  const l = v.toLowerCase();
  if (l === 'raid0' || l === '0') return 'raid0';
  if (l === 'raid1' || l === '1') return 'raid1';
  if (l === 'concat') return 'concat';
  return r.fail(`raid_level must be raid0, raid1 or concat, got ${v}`);
}

function attach(r: Raid, slot: Slot): void {
  slot.desc = openBase(slot.name, raidModule, (b) => baseRemoved(r, b.name));
  slot.state = SLOT_ONLINE;
}

// ---- I/O ------------------------------------------------------------------------------------

function targetOf(r: Raid, off: number): { slot: number; off: number } {
  if (r.level === 'raid0') {
    const strip = Math.floor(off / r.stripBlocks);
    const n = r.slots.length;
    return { slot: strip % n, off: Math.floor(strip / n) * r.stripBlocks + (off % r.stripBlocks) };
  }
  for (let i = 0; i < r.slots.length; i++) {
    const s = r.slots[i];
    if (off < s.start + s.blocks) return { slot: i, off: off - s.start };
  }
  throw new BdevError('EINVAL', `block ${off} is beyond raid ${r.name}`);
}

function striped(r: Raid, ch: RaidChannel, io: BdevIo): void {
  const c = io.driverCtx as RaidIoCtx;
  if (io.type === IoType.READ || io.type === IoType.WRITE || io.type === IoType.COMPARE) {
    // The bdev layer split it at the strip: one base, one range. No allocation here.
    const r0 = r.level === 'raid0' ? raid0Slot(r, io.offsetBlocks) : concatSlot(r, io.offsetBlocks);
    const base = ch.chans[r0];
    const s = r.slots[r0];
    if (base === null || s.desc === null) {
      bdevIoComplete(io, IoStatus.FAILED);
      return;
    }
    if (submitToBase(s.desc, base, io, c.ranges[0], io.numBlocks, io.iovs, oneDone, io) === ENOMEM) {
      bdevIoComplete(io, IoStatus.NOMEM);
    }
    return;
  }
  if (io.type === IoType.RESET) {
    setAll(r, ch, c, io);
    fanOut(c);
    return;
  }
  // unmap / flush / write_zeroes over many strips: one contiguous range per base.
  const n = r.slots.length;
  c.ranges.length = 2 * n;
  c.ranges.fill(-1);
  const end = io.offsetBlocks + io.numBlocks;
  for (let off = io.offsetBlocks; off < end; ) {
    const t = targetOf(r, off);
    const stripEnd =
      r.level === 'raid0'
        ? (Math.floor(off / r.stripBlocks) + 1) * r.stripBlocks
        : r.slots[t.slot].start + r.slots[t.slot].blocks;
    const len = Math.min(end, stripEnd) - off;
    if (c.ranges[2 * t.slot] < 0) c.ranges[2 * t.slot] = t.off;
    c.ranges[2 * t.slot + 1] = t.off + len - c.ranges[2 * t.slot];
    off += len;
  }
  c.io = io;
  c.next = 0;
  c.ok = 0;
  c.failed = 0;
  c.remaining = 0;
  for (let i = 0; i < n; i++) if (c.ranges[2 * i] >= 0) c.remaining++;
  fanOut(c);
}

function raid0Slot(r: Raid, off: number): number {
  const strip = Math.floor(off / r.stripBlocks);
  return strip % r.slots.length;
}

function concatSlot(r: Raid, off: number): number {
  for (let i = 0; i < r.slots.length; i++) {
    const s = r.slots[i];
    if (off < s.start + s.blocks) return i;
  }
  return r.slots.length - 1;
}

/**
 * Fill ranges so every slot gets the whole I/O (raid1 writes, resets); a slot being rebuilt only
 * when the I/O starts in the part already copied (any part above is copied again later).
 */
function setAll(r: Raid, ch: RaidChannel, c: RaidIoCtx, io: BdevIo): void {
  const n = r.slots.length;
  c.ranges.length = 2 * n;
  c.io = io;
  c.next = 0;
  c.ok = 0;
  c.failed = 0;
  c.remaining = 0;
  for (let i = 0; i < n; i++) {
    const s = r.slots[i];
    const use =
      s.desc !== null &&
      ch.chans[i] !== null &&
      (s.state === SLOT_ONLINE || (s.state === SLOT_REBUILDING && io.offsetBlocks < ch.processOffset));
    c.ranges[2 * i] = use ? io.offsetBlocks : -1;
    c.ranges[2 * i + 1] = io.numBlocks;
    if (use) c.remaining++;
  }
}

/** Submit the per-slot ranges from slot `c.next` on; on ENOMEM wait for that base channel. */
function fanOut(c: RaidIoCtx): void {
  const io = c.io as BdevIo;
  const r = io.bdev.ctxt as Raid;
  const ch = io.ch.moduleCh.ctx as RaidChannel;
  if (c.remaining === 0) {
    bdevIoComplete(io, IoStatus.SUCCESS);
    return;
  }
  for (; c.next < r.slots.length; c.next++) {
    const off = c.ranges[2 * c.next];
    if (off < 0) continue;
    const base = ch.chans[c.next];
    const s = r.slots[c.next];
    if (base === null || s.desc === null) {
      fanDone(IoStatus.FAILED, c);
      continue;
    }
    if (submitToBase(s.desc, base, io, off, c.ranges[2 * c.next + 1], io.iovs, fanDone, c) === ENOMEM) {
      queueIoWait(base, c.wait);
      return;
    }
  }
}

function fanDone(status: IoStatus, c: RaidIoCtx): void {
  if (status === IoStatus.SUCCESS) c.ok++;
  else c.failed++;
  if (--c.remaining > 0) return;
  const io = c.io as BdevIo;
  c.io = null;
  const r = io.bdev.ctxt as Raid;
  // raid1: a write that reached at least one mirror succeeded; raid0/concat need every base.
  const ok = r.level === 'raid1' ? c.ok > 0 : c.failed === 0;
  bdevIoComplete(io, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
}

function oneDone(status: IoStatus, io: BdevIo): void {
  bdevIoComplete(io, status);
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
  const r = io.bdev.ctxt as Raid;
  const ch = io.ch.moduleCh.ctx as RaidChannel;
  const n = r.slots.length;
  for (; c.tried < n; c.tried++, c.next = (c.next + 1) % n) {
    const s = r.slots[c.next];
    const base = ch.chans[c.next];
    if (s.desc === null || base === null) continue;
    // A base being rebuilt serves what the copy already brought over.
    if (
      s.state !== SLOT_ONLINE &&
      !(s.state === SLOT_REBUILDING && io.offsetBlocks + io.numBlocks <= ch.processOffset)
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
  c.next = (c.next + 1) % (io.bdev.ctxt as Raid).slots.length;
  mirrorReadNext(c);
}

function submit(chan: IoChannel<unknown>, io: BdevIo): void {
  const r = io.bdev.ctxt as Raid;
  const ch = chan.ctx as RaidChannel;
  const c = io.driverCtx as RaidIoCtx;
  if (r.level === 'raid1') {
    if (io.type === IoType.READ || io.type === IoType.COMPARE) mirrorRead(r, ch, io);
    else {
      setAll(r, ch, c, io);
      fanOut(c);
    }
    return;
  }
  if (io.type === IoType.READ || io.type === IoType.WRITE || io.type === IoType.COMPARE) {
    c.ranges.length = 1;
    c.ranges[0] = targetOf(r, io.offsetBlocks).off;
  }
  striped(r, ch, io);
}

// ---- lifecycle ------------------------------------------------------------------------------

function bringOnline(r: Raid): void {
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
        s.desc === null || s.state === SLOT_MISSING ? null : bdevGetIoChannel(s.desc),
      ),
      rr: 0,
      processOffset: r.processOffset,
    }),
    destroy: (ch) => {
      for (const c of ch.ctx.chans) c?.put();
    },
  });
  const caps = (t: IoType) => {
    if (t === IoType.COMPARE_AND_WRITE || t === IoType.ABORT) return false;
    if (t === IoType.RESET) return true;
    return bases.every((b) => b.ioTypeSupported(t));
  };
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
    ctxt: r,
    fn: {
      submitRequest: submit,
      ioTypeSupported: caps,
      getIoChannel: () => getIoChannel(r.key),
      createIoCtx: () => new RaidIoCtx(),
      destruct: (done) => {
        r.state = 'offline';
        ioDeviceUnregister(r.key, () => {
          for (const s of r.slots) {
            if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
            s.desc = null;
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

function operational(r: Raid): number {
  return r.slots.filter((s) => s.state === SLOT_ONLINE && s.desc !== null).length;
}

/** A base went away: raid1 runs degraded while a mirror is left; the others go offline. */
function baseRemoved(r: Raid, baseName: string, done?: () => void): void {
  const i = r.slots.findIndex((s) => s.name === baseName && s.desc !== null);
  if (i < 0) {
    done?.();
    return;
  }
  const slot = r.slots[i];
  if (r.state !== 'online' || r.bdev === null) {
    if (slot.desc !== null) bdevClose(slot.desc);
    slot.desc = null;
    slot.state = SLOT_MISSING;
    done?.();
    return;
  }
  slot.state = SLOT_MISSING;
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

/** Every channel here lets go of slot i's channel to `bdev` (not of a newer base's). */
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

function raidInfo(r: Raid): Record<string, unknown> {
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
      name: s.state === SLOT_MISSING && s.desc === null ? null : s.name,
      is_configured: s.state === SLOT_ONLINE,
      data_offset: 0,
      data_size: s.blocks,
    })),
    ...(r.rebuild !== null
      ? { rebuild: { base_bdev: r.rebuild.name, progress_blocks: r.rebuild.offset } }
      : {}),
  };
}

/**
 * bdev_raid_create: registered at once when every base exists, else "configuring" until the
 * missing bases appear. Returns replay params (with the uuid once online).
 */
export function bdevRaidCreate(params: RaidCreateParams): { name: string; replay: RaidCreateParams } {
  requireThread('bdev_raid_create');
  const r = new ParamReader('bdev_raid_create', params);
  r.only(['name', 'raid_level', 'base_bdevs', 'strip_size_kb', 'uuid', 'superblock']);
  const name = r.str('name');
  const level = levelOf(r, r.str('raid_level'));
  const bases = r.strList('base_bdevs');
  const stripKb = r.int('strip_size_kb', { min: 0, def: 0 });
  const uuid = r.uuid('uuid');
  if (r.bool('superblock', false))
    throw new BdevError('ENOTSUP', 'bdev_raid_create: superblock is not supported yet');
  if (level !== 'raid1' && (stripKb === 0 || (stripKb & (stripKb - 1)) !== 0)) {
    r.fail(`strip_size_kb must be a power of two for ${level}, got ${stripKb}`);
  }
  if (level === 'raid1' && stripKb !== 0) r.fail('strip_size_kb is not used by raid1 (leave it out or 0)');
  if (bases.length < (level === 'raid1' ? 2 : 1))
    r.fail(`${level} needs ${level === 'raid1' ? 2 : 1} base bdevs or more`);
  if (new Set(bases).size !== bases.length) r.fail('base_bdevs has duplicates');
  if (raids.has(name) || bdevGetByName(name) !== undefined)
    throw new BdevError('EEXIST', `bdev_raid_create: ${name} exists`);
  const raid: Raid = {
    name,
    level,
    stripBlocks: 0,
    stripKb,
    uuid,
    slots: bases.map((b) => ({ name: b, desc: null, state: SLOT_MISSING, blocks: 0, start: 0 })),
    bdev: null,
    key: {},
    blockSize: 0,
    state: 'configuring',
    rebuild: null,
    processOffset: 0,
  };
  raids.set(name, raid);
  try {
    for (const s of raid.slots) if (bdevGetByName(s.name) !== undefined) attach(raid, s);
    if (raid.slots.every((s) => s.desc !== null)) bringOnline(raid);
  } catch (e) {
    for (const s of raid.slots) if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
    raids.delete(name);
    throw e;
  }
  return { name, replay: { ...params, uuid: raid.uuid } };
}

/** bdev_raid_delete. */
export function bdevRaidDelete(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_raid_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const raid = raids.get(name);
  if (raid === undefined) throw new BdevError('ENODEV', `bdev_raid_delete: no raid ${name}`);
  if (raid.bdev === null || raid.state !== 'online') {
    for (const s of raid.slots) if (s.desc !== null && !s.desc.isClosed) bdevClose(s.desc);
    raids.delete(name);
    requireThread('bdev_raid_delete').sendMsg(() => done?.());
    return;
  }
  bdevUnregister(raid.bdev, () => done?.());
}

/** bdev_raid_get_bdevs: category all | online | configuring | offline. */
export function bdevRaidGetBdevs(params: { category?: string } = {}): Record<string, unknown>[] {
  const r = new ParamReader('bdev_raid_get_bdevs', params);
  r.only(['category']);
  const cat = r.str('category', undefined) ?? 'all';
  if (!['all', 'online', 'configuring', 'offline'].includes(cat)) r.fail(`unknown category ${cat}`);
  return [...raids.values()].filter((x) => cat === 'all' || x.state === cat).map(raidInfo);
}

/** bdev_raid_remove_base_bdev: take a base out (raid1 degrades; others go offline). */
/**
 * bdev_raid_remove_base_bdev on this worker. `done` (optional) runs once the base has left its
 * slot here (every channel let go of it and its descriptor is closed), as SPDK's RPC answers after
 * the removal completes; a bdev_raid_add_base_bdev may then reuse the slot at once.
 */
export function bdevRaidRemoveBaseBdev(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_raid_remove_base_bdev', params);
  r.only(['name']);
  const name = r.str('name');
  for (const raid of raids.values()) {
    if (raid.slots.some((s) => s.name === name && s.desc !== null)) {
      baseRemoved(raid, name, done);
      return;
    }
  }
  throw new BdevError('ENODEV', `bdev_raid_remove_base_bdev: ${name} is not a base of any raid`);
}

// ---- rebuild --------------------------------------------------------------------------------

interface Rebuild {
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

/** This worker's raid of that name, when it is online. */
function raidOf(name: string): Raid | undefined {
  const r = raids.get(name);
  return r !== undefined && r.bdev !== null && r.state === 'online' ? r : undefined;
}

// Start: the new base joins the slot on every worker, then every channel gets a channel to it.
const processStart = defineChannelIterator<ProcessArg>(
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
    if (s.desc !== null && s.name === a.base && s.state !== SLOT_MISSING) return;
    s.name = a.base;
    s.desc = openBase(a.base, raidModule, (b) => baseRemoved(r, b.name));
    s.state = SLOT_REBUILDING;
    s.blocks = r.slots.find((x) => x.state === SLOT_ONLINE)?.blocks ?? s.desc.bdev.numBlocks;
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
    if (s.state !== SLOT_REBUILDING) return;
    if (a.value === 1 && s.desc !== null) {
      s.state = SLOT_ONLINE;
      return;
    }
    // Channels drop theirs on the walk's visit (new ones skip a missing slot); process_close
    // closes the descriptor once every channel on every reactor let go.
    s.state = SLOT_MISSING;
  },
);

const processClose = defineChannelIterator<ProcessArg>(
  'storkit.raid.process_close',
  (it) => it.continue(0),
  (a) => {
    const s = raidOf(a.raid)?.slots[a.slot];
    if (s === undefined || s.state !== SLOT_MISSING || s.desc === null || s.name !== a.base) return;
    if (!s.desc.isClosed) bdevClose(s.desc);
    s.desc = null;
  },
);

function processWalk(
  r: Raid,
  iter: typeof processStart,
  slot: number,
  value: number,
  done: () => void,
): void {
  const arg: ProcessArg = { raid: r.name, slot, base: r.slots[slot].name, value };
  forEachChannelGlobal(`raid/${r.name}`, iter, arg, () => done());
}

/**
 * bdev_raid_add_base_bdev (raid1): put `base_bdev` into an empty slot and rebuild it from an
 * operational mirror; it serves reads once the copy is complete. `done` runs then.
 */
export function bdevRaidAddBaseBdev(
  params: { raid_bdev: string; base_bdev: string },
  done?: (err: BdevError | null) => void,
): void {
  requireThread('bdev_raid_add_base_bdev');
  const r = new ParamReader('bdev_raid_add_base_bdev', params);
  r.only(['raid_bdev', 'base_bdev']);
  const raidName = r.str('raid_bdev');
  const raid = raids.get(raidName);
  const baseName = r.str('base_bdev');
  if (raid === undefined || raid.bdev === null || raid.state !== 'online') {
    throw new BdevError('ENODEV', `bdev_raid_add_base_bdev: no online raid ${raidName}`);
  }
  if (raid.level !== 'raid1')
    throw new BdevError('ENOTSUP', 'bdev_raid_add_base_bdev: only raid1 can rebuild');
  if (raid.rebuild !== null) throw new BdevError('EBUSY', `raid ${raid.name} is already rebuilding`);
  const slot = raid.slots.findIndex((s) => s.desc === null);
  if (slot < 0) throw new BdevError('EBUSY', `raid ${raid.name} has no empty slot`);
  const base = bdevGetByName(baseName);
  if (base === undefined) throw new BdevError('ENODEV', `bdev_raid_add_base_bdev: no bdev ${baseName}`);
  if (base.blockSize !== raid.blockSize || base.numBlocks < raid.slots[0].blocks) {
    throw new BdevError(
      'EINVAL',
      `bdev_raid_add_base_bdev: ${baseName} is too small or has another block size`,
    );
  }
  const s = raid.slots[slot];
  s.name = baseName;
  s.desc = openBase(baseName, raidModule, (b) => baseRemoved(raid, b.name));
  s.state = SLOT_REBUILDING;
  s.blocks = raid.slots.find((x) => x.state === SLOT_ONLINE)?.blocks ?? base.numBlocks;
  raid.processOffset = 0;
  // Every worker opens the new base and every channel gets a channel to it before copying starts.
  processWalk(raid, processStart, slot, 0, () => startRebuild(raid, slot, done));
}

function startRebuild(raid: Raid, slot: number, done: ((err: BdevError | null) => void) | undefined): void {
  const raidDesc = bdevOpenExt(raid.name, false, () => {});
  const chunk = Math.max(1, Math.floor((128 * 1024) / raid.blockSize));
  const src = raid.slots.findIndex((x) => x.state === SLOT_ONLINE && x.desc !== null);
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
