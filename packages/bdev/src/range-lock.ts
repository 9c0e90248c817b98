// LBA range locks for compare-and-write (SPDK's bdev_lock_lba_range): a lock is taken on every
// channel of the bdev, on every reactor, by a named channel walk. On each channel it first waits
// for overlapping writes already in flight and for earlier overlapping locks; from then on the
// channel holds back new overlapping writes (except the lock owner's) until the unlock walk.
// Every walk visits channels in the same order, so overlapping lockers cannot deadlock.
// Channels created while a lock is held must hold back writes too (SPDK copies the bdev's locked
// ranges into each new channel): when a walk reaches a reactor it first records the lock on that
// worker's bdev object, even where no channel exists yet, and every channel created afterwards
// starts with it; channels created before are visited by the walk.
import { type ChannelIter, defineChannelIterator, forEachChannelGlobal } from '@storkit/reactor';
import type { Bdev } from './bdev.js';
import { type BdevIo, Role } from './bdev-io.js';
import type { BdevChannel } from './channel.js';
import { cawStep, finishIo, submitLocked } from './io-path.js';
import { type IoCb, IoStatus, IoType, isWriteType } from './types.js';

/** A locked range as one channel sees it. */
export interface RangeLock {
  readonly id: number;
  readonly offset: number;
  readonly num: number;
  /** The walk step waiting on this channel for conflicts to clear. */
  waitIt: ChannelIter<unknown, LockArg> | null;
  /**
   * Holds back other writers. False while the lock waits behind an earlier overlapping lock
   * (it holds nothing yet, and must not stall that lock's own writes).
   */
  blocking: boolean;
}

interface LockArg {
  bdev: string;
  id: number;
  offset: number;
  num: number;
}

// Set by the registry (which imports this module through the I/O path: no import cycle).
let bdevGetByName: (name: string) => Bdev | undefined = () => undefined;
/** @internal */
export function setLockBdevLookup(f: (name: string) => Bdev | undefined): void {
  bdevGetByName = f;
}

let seq = 1;
const pendingLock = new Map<number, BdevIo>();
const pendingUnlock = new Map<number, BdevIo>();

function overlaps(aOff: number, aNum: number, bOff: number, bNum: number): boolean {
  return aOff < bOff + bNum && bOff < aOff + aNum;
}

/** @internal Whether a write must wait for a lock it does not own. */
export function blockedByLock(ch: BdevChannel, io: BdevIo): boolean {
  const locks = ch.locks;
  for (let i = 0; i < locks.length; i++) {
    const l = locks[i];
    if (l.blocking && l.id !== io.lockOwner && overlaps(l.offset, l.num, io.offsetBlocks, io.numBlocks))
      return true;
  }
  return false;
}

const NONE = 0;
const LOCK = 1;
const WRITES = 2;

/** What `l` waits for on this channel: an earlier overlapping lock, writes in flight, or nothing. */
function conflicts(ch: BdevChannel, l: RangeLock): number {
  for (const o of ch.locks) {
    if (o === l) break;
    if (overlaps(o.offset, o.num, l.offset, l.num)) return LOCK;
  }
  for (let io = ch.oHead; io !== null; io = io.oNext) {
    if (
      io.pastLock &&
      io.lockOwner !== l.id &&
      isWriteType(io.type) &&
      overlaps(io.offsetBlocks, io.numBlocks, l.offset, l.num)
    ) {
      return WRITES;
    }
  }
  return NONE;
}

const lockIter = defineChannelIterator<LockArg>(
  'storkit.bdev.range_lock',
  (it) => {
    const ch = it.ctx as BdevChannel;
    const a = it.arg;
    // A channel created after this reactor recorded the lock already has it (copied at creation).
    let l = ch.locks.find((x) => x.id === a.id);
    if (l === undefined) {
      l = { id: a.id, offset: a.offset, num: a.num, waitIt: null, blocking: true };
      ch.locks.push(l);
    }
    lockStep(ch, l, it);
  },
  (a) => {
    const bdev = bdevGetByName(a.bdev);
    if (bdev === undefined || bdev.locks.some((x) => x.id === a.id)) return;
    bdev.locks.push({ id: a.id, offset: a.offset, num: a.num, waitIt: null, blocking: true });
  },
);

function lockStep(ch: BdevChannel, l: RangeLock, it: ChannelIter<unknown, LockArg>): void {
  const c = conflicts(ch, l);
  if (c !== NONE) {
    l.blocking = c === WRITES;
    l.waitIt = it;
    return;
  }
  held(l, it);
}

const unlockIter = defineChannelIterator<LockArg>(
  'storkit.bdev.range_unlock',
  (it) => {
    const ch = it.ctx as BdevChannel;
    const id = it.arg.id;
    const i = ch.locks.findIndex((l) => l.id === id);
    if (i >= 0) ch.locks.splice(i, 1);
    let n = ch.lockedQueue.length;
    while (n-- > 0) {
      const io = ch.lockedQueue.shift();
      if (io !== null) submitLocked(io);
    }
    recheckLocks(ch);
    it.continue(0);
  },
  (a) => {
    const locks = bdevGetByName(a.bdev)?.locks;
    const j = locks === undefined ? -1 : locks.findIndex((l) => l.id === a.id);
    if (locks !== undefined && j >= 0) locks.splice(j, 1);
  },
);

/** @internal Let waiting lock steps on this channel go on when their conflicts cleared. */
export function recheckLocks(ch: BdevChannel): void {
  for (const l of ch.locks) {
    if (l.waitIt === null) {
      // Copied into a new channel behind an earlier overlapping lock: blocks once that one left.
      if (!l.blocking && conflicts(ch, l) !== LOCK) l.blocking = true;
      continue;
    }
    const c = conflicts(ch, l);
    if (c !== NONE) {
      l.blocking = c === WRITES;
      continue;
    }
    const it = l.waitIt;
    l.waitIt = null;
    held(l, it);
  }
}

function held(l: RangeLock, it: ChannelIter<unknown, LockArg>): void {
  l.blocking = true;
  it.continue(0);
}

/** @internal Lock io's range on every channel; then cawLocked(io). */
export function rangeLockAcquire(io: BdevIo): void {
  const id = io.ch.thread.reactor * 2 ** 32 + seq++;
  io.lockOwner = id;
  pendingLock.set(id, io);
  forEachChannelGlobal(
    io.bdev.ioDeviceName,
    lockIter,
    { bdev: io.bdev.name, id, offset: io.offsetBlocks, num: io.numBlocks },
    lockDone,
  );
}

function lockDone(_status: number, arg: LockArg): void {
  const io = pendingLock.get(arg.id);
  if (io === undefined) return;
  pendingLock.delete(arg.id);
  cawLocked(io);
}

/** @internal */
export function cawLocked(io: BdevIo): void {
  if (io.role === Role.LOCK) {
    io.cb?.(IoStatus.SUCCESS, io.cbArg);
    return;
  }
  cawStep(io);
}

/** @internal Drop io's lock everywhere; then finish io with its childStatus. */
export function lockRelease(io: BdevIo): void {
  pendingUnlock.set(io.lockOwner, io);
  forEachChannelGlobal(
    io.bdev.ioDeviceName,
    unlockIter,
    { bdev: io.bdev.name, id: io.lockOwner, offset: 0, num: 0 },
    unlockDone,
  );
}

function unlockDone(_status: number, arg: LockArg): void {
  const io = pendingUnlock.get(arg.id);
  if (io === undefined) return;
  pendingUnlock.delete(arg.id);
  if (io.role === Role.LOCK) {
    const cb = io.cb;
    const cbArg = io.cbArg;
    io.ch.putIo(io);
    cb?.(IoStatus.SUCCESS, cbArg);
    if (io.ch.ioWait.head !== null) io.ch.runIoWaits();
    return;
  }
  finishIo(io, io.childStatus);
}

/**
 * Lock blocks [offset, offset+num) of the bdev against writers on every channel and reactor
 * (SPDK's bdev_lock_lba_range, for modules such as raid rebuild). `ch` is a channel of `bdev` on
 * the current thread. `cb(SUCCESS, arg)` runs once the range is held; the returned handle goes to
 * bdevUnlockLbaRange. Returns null when the channel has no free bdev_io (retry later).
 */
export function bdevLockLbaRange<A>(
  ch: BdevChannel,
  offset: number,
  num: number,
  cb: IoCb<A>,
  arg: A,
): BdevIo | null {
  const io = ch.getIo();
  if (io === null) return null;
  io.type = IoType.WRITE;
  io.role = Role.LOCK;
  io.offsetBlocks = offset;
  io.numBlocks = num;
  io.cb = cb as IoCb<unknown>;
  io.cbArg = arg;
  rangeLockAcquire(io);
  return io;
}

/** Release a range locked by bdevLockLbaRange; `cb(SUCCESS, arg)` once every channel let go. */
export function bdevUnlockLbaRange<A>(lock: BdevIo, cb: IoCb<A>, arg: A): void {
  lock.cb = cb as IoCb<unknown>;
  lock.cbArg = arg;
  lockRelease(lock);
}
