// Bdev registration, examine, descriptors, claims, hot remove and resize (SPDK lib/bdev/bdev.c's
// management half). The registry is per isolate: in a reactor worker it holds that worker's bdev
// objects; in the test harness it is shared by the simulated reactors.
import { randomUUID } from 'node:crypto';
import { ContainedErrors } from '@storkit/block';
import {
  getIoChannel,
  getThread,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
  type Thread,
} from '@storkit/reactor';
import { Bdev, type BdevInit, type BdevModule, BdevState } from './bdev.js';
import { acquireShared, BdevChannel, bdevOptions, releaseShared } from './channel.js';
import { startQosPoller, startTimeoutPoller } from './control.js';
import { BdevDesc, type BdevEventCb } from './desc.js';
import { BdevError } from './errors.js';
import { resumeIo, runDeferred, setReleaseZombie } from './io-path.js';
import { qosWaiting } from './qos.js';
import { setLockBdevLookup } from './range-lock.js';
import { BdevEvent } from './types.js';

const byName = new Map<string, Bdev>();
const bdevList: Bdev[] = [];
const modules: BdevModule[] = [];
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Register a module so its examine hook sees every bdev registered from now on (and none before). */
export function bdevModuleRegister(m: BdevModule): void {
  if (modules.some((x) => x.name === m.name)) return;
  modules.push(m);
}

/** Take a module out: its examine hooks see no bdev registered from now on. */
export function bdevModuleUnregister(m: BdevModule): void {
  const i = modules.indexOf(m);
  if (i >= 0) modules.splice(i, 1);
}

export function requireThread(what: string): Thread {
  const t = getThread();
  if (t === null) throw new BdevError('ENOTHREAD', `${what} must run on a reactor thread`);
  return t;
}

function checkGeometry(init: BdevInit): void {
  const bad = (m: string) => new BdevError('EINVAL', `bdev ${init.name}: ${m}`);
  if (typeof init.name !== 'string' || init.name === '') throw new BdevError('EINVAL', 'a bdev needs a name');
  if (!Number.isInteger(init.blockSize) || init.blockSize < 1) throw bad(`block size ${init.blockSize}`);
  if (!Number.isSafeInteger(init.numBlocks) || init.numBlocks < 1) throw bad(`block count ${init.numBlocks}`);
  for (const k of ['optimalIoBoundary', 'maxRwBlocks', 'maxSegments', 'maxSegmentSize'] as const) {
    const v = init[k] ?? 0;
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`${k} ${v}`);
  }
  if ((init.maxSegmentSize ?? 0) % init.blockSize !== 0)
    throw bad('maxSegmentSize must be a multiple of the block size');
  if (init.uuid !== undefined && !UUID_RE.test(init.uuid))
    throw bad(`uuid ${init.uuid} is not RFC 4122 text`);
}

/**
 * Register a bdev (spdk_bdev_register) on the current thread: visible by name and aliases at once;
 * the examine hooks of registered modules run on the next poll. Throws EEXIST for a taken name.
 */
export function bdevRegister(init: BdevInit): Bdev {
  const t = requireThread('bdevRegister');
  checkGeometry(init);
  for (const n of [init.name, ...(init.aliases ?? [])]) {
    if (byName.has(n)) throw new BdevError('EEXIST', `bdev name or alias ${n} is taken`);
  }
  const bdev = new Bdev(init, (init.uuid ?? randomUUID()).toLowerCase());
  ioDeviceRegister<BdevChannel>(bdev, {
    name: bdev.ioDeviceName,
    create: (ch) => createChannel(bdev, ch.thread),
    destroy: (ch) => destroyChannel(ch.ctx),
  });
  byName.set(bdev.name, bdev);
  for (const a of bdev.aliases) byName.set(a, bdev);
  bdevList.push(bdev);
  t.sendMsg(examine, bdev);
  return bdev;
}

/** Bdevs examined although bdev_auto_examine is off (bdev_examine). */
const examineAllowed = new Set<string>();

function examine(bdev: Bdev): void {
  if (
    !bdevOptions.autoExamine &&
    !examineAllowed.has(bdev.name) &&
    ![...bdev.aliases].some((a) => examineAllowed.has(a))
  )
    return;
  for (const m of [...modules]) {
    if (bdev.state !== BdevState.READY) return;
    if (m === bdev.module || m.examine === undefined) continue;
    // One module's failure (a bug, or metadata it could not read) must not keep the bdev from
    // the modules after it, nor stop this thread's message loop: counted, kept and logged.
    try {
      m.examine(bdev);
    } catch (e) {
      examineErrors.record(e);
    }
  }
  for (const m of [...modules]) {
    if (bdev.state !== BdevState.READY) break;
    if (m === bdev.module || m.examineDisk === undefined) continue;
    examining++;
    let called = false;
    const done = () => {
      if (called) return;
      called = true;
      if (--examining === 0) {
        const ws = examineWaiters.splice(0);
        for (const w of ws) w();
      }
    };
    try {
      m.examineDisk(bdev, done);
    } catch (e) {
      // Its examine is over (failed): bdevWaitForExamine must not wait for it forever.
      examineErrors.record(e);
      done();
    }
  }
}

/** Exceptions thrown by modules' examine hooks (each one also logged, sparsely). */
const examineErrors = new ContainedErrors('bdev examine', "ended a module's examine of a bdev");

/** How many exceptions modules' examine hooks threw, and the last one (SPDK logs these). */
export function bdevExamineErrors(): { count: number; last: unknown } {
  return { count: examineErrors.count, last: examineErrors.last };
}

let examining = 0;
const examineWaiters: (() => void)[] = [];

/**
 * Run `cb` on this thread once no examine is in progress in this isolate: bdevs registered so far
 * have been offered to every module, and what modules build on them exists (spdk_bdev_wait_for_examine).
 */
export function bdevWaitForExamine(cb: () => void): void {
  const t = requireThread('bdevWaitForExamine');
  // Examines start on the poll after a registration: wait one poll first, so a bdev registered
  // just now is counted.
  t.sendMsg(() => {
    if (examining === 0) cb();
    else examineWaiters.push(() => t.sendMsg(cb));
  });
}

function createChannel(bdev: Bdev, thread: Thread): BdevChannel {
  const shared = acquireShared(thread, runDeferred);
  const ch = new BdevChannel(bdev, thread, shared, resumeIo);
  if (bdev.qos?.enabled) startQosPoller(ch);
  for (const d of bdev.descs) if (d.timeoutTicks > 0 && d.thread === thread) startTimeoutPoller(ch);
  return ch;
}

function destroyChannel(ch: BdevChannel): void {
  ch.bdev.retiredStat.add(ch.stat);
  if (ch.bdev.qos !== null) qosWaiting(ch.bdev.qos, ch.qosShare, false);
  ch.qosPoller?.unregister();
  ch.qosPoller = null;
  ch.timeoutPoller?.unregister();
  ch.timeoutPoller = null;
  if (ch.outstandingCount > 0 || ch.inModule > 0) {
    // Put with I/O in flight: keep the module channel until that I/O is done (hot remove drains it).
    ch.zombie = true;
    ch.bdev.zombies++;
    return;
  }
  finalRelease(ch);
}

function finalRelease(ch: BdevChannel): void {
  ch.released();
  ch.moduleCh.put();
  releaseShared(ch.shared);
}

setReleaseZombie((ch) => {
  if (!ch.zombie) return;
  ch.zombie = false;
  finalRelease(ch);
  const b = ch.bdev;
  if (--b.zombies === 0 && b.onDrained !== null) {
    const f = b.onDrained;
    b.onDrained = null;
    ch.thread.sendMsg(f);
  }
});

/** The bdev registered under `name` or an alias, or undefined (spdk_bdev_get_by_name). */
export function bdevGetByName(name: string): Bdev | undefined {
  return byName.get(name);
}
setLockBdevLookup(bdevGetByName);

/** Every registered bdev in registration order. */
export function bdevGetAll(): readonly Bdev[] {
  return bdevList;
}

/** Add an alias (spdk_bdev_alias_add). Throws EEXIST when taken. */
export function bdevAliasAdd(bdev: Bdev, alias: string): void {
  if (byName.has(alias)) throw new BdevError('EEXIST', `bdev name or alias ${alias} is taken`);
  bdev.aliases.add(alias);
  byName.set(alias, bdev);
}

export function bdevAliasDel(bdev: Bdev, alias: string): void {
  if (!bdev.aliases.delete(alias)) throw new BdevError('ENOENT', `bdev ${bdev.name} has no alias ${alias}`);
  byName.delete(alias);
}

/**
 * Open a bdev (spdk_bdev_open_ext) on the current thread. `eventCb` hears REMOVE (close the
 * descriptor once your I/O is done) and RESIZE. Throws ENODEV (unknown or being removed), EPERM
 * (write open of a bdev another module claimed).
 */
export function bdevOpenExt<C>(
  name: string,
  write: boolean,
  eventCb: BdevEventCb<C>,
  eventCtx?: C,
): BdevDesc {
  const t = requireThread('bdevOpenExt');
  const bdev = byName.get(name);
  if (bdev === undefined || bdev.state !== BdevState.READY) throw new BdevError('ENODEV', `no bdev ${name}`);
  if (typeof eventCb !== 'function') throw new BdevError('EINVAL', 'bdevOpenExt needs an event callback');
  if (write && bdev.claimModule !== null) {
    throw new BdevError('EPERM', `bdev ${name} is claimed by module ${bdev.claimModule.name}`);
  }
  const d = new BdevDesc(bdev, t, write, eventCb as BdevEventCb<unknown>, eventCtx);
  bdev.descs.add(d);
  return d;
}

/** Close a descriptor (spdk_bdev_close) on the thread that opened it; releases its claim. */
export function bdevClose(desc: BdevDesc): void {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} already closed`);
  if (getThread() !== desc.thread)
    throw new BdevError('EINVAL', 'close a descriptor on the thread that opened it');
  desc.closed = true;
  const bdev = desc.bdev;
  bdev.descs.delete(desc);
  if (bdev.claimDesc === desc) {
    bdev.claimDesc = null;
    bdev.claimModule = null;
  }
  if (bdev.state === BdevState.REMOVING && bdev.descs.size === 0) continueUnregister(bdev);
}

/** The bdev's io_channel for the current thread (spdk_bdev_get_io_channel). */
export function bdevGetIoChannel(desc: BdevDesc): IoChannel<BdevChannel> {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} is closed`);
  const ch = getIoChannel<BdevChannel>(desc.bdev);
  if (desc.timeoutTicks > 0) startTimeoutPoller(ch.ctx);
  return ch;
}

/**
 * Take the exclusive write claim (spdk_bdev_module_claim_bdev) through `desc` (which becomes
 * writable). Throws EPERM when another module holds it or another descriptor is open for writing.
 */
export function bdevModuleClaimBdev(bdev: Bdev, desc: BdevDesc | null, module: BdevModule): void {
  if (bdev.claimModule !== null) {
    throw new BdevError('EPERM', `bdev ${bdev.name} is already claimed by module ${bdev.claimModule.name}`);
  }
  for (const d of bdev.descs) {
    if (d !== desc && d.write)
      throw new BdevError('EPERM', `bdev ${bdev.name} is open for writing elsewhere`);
  }
  bdev.claimModule = module;
  bdev.claimDesc = desc;
  if (desc !== null) {
    desc.write = true;
    desc.claimModule = module;
  }
}

/** Drop a module's claim (spdk_bdev_module_release_bdev). */
export function bdevModuleReleaseBdev(bdev: Bdev): void {
  bdev.claimModule = null;
  if (bdev.claimDesc !== null) bdev.claimDesc.claimModule = null;
  bdev.claimDesc = null;
}

const unregisterDone = new Map<Bdev, ((err: BdevError | null) => void)[]>();
const unregisterThread = new Map<Bdev, Thread>();

/**
 * Unregister (hot remove; spdk_bdev_unregister) on the current thread. Every open descriptor's
 * owner hears REMOVE and must close it; in-flight I/O drains (it completes normally); then the
 * module's destruct runs and `done(null)` runs on this thread. Never inside this call.
 */
export function bdevUnregister(bdev: Bdev, done?: (err: BdevError | null) => void): void {
  const t = requireThread('bdevUnregister');
  if (bdev.state === BdevState.REMOVED || byName.get(bdev.name) !== bdev) {
    throw new BdevError('ENODEV', `bdev ${bdev.name} is not registered`);
  }
  const list = unregisterDone.get(bdev) ?? [];
  if (done !== undefined) list.push(done);
  unregisterDone.set(bdev, list);
  if (bdev.state === BdevState.REMOVING) return;
  bdev.state = BdevState.REMOVING;
  unregisterThread.set(bdev, t);
  for (const d of [...bdev.descs]) {
    d.thread.sendMsg(notifyRemove, d);
  }
  if (bdev.descs.size === 0) t.sendMsg(continueUnregister, bdev);
}

function notifyRemove(d: BdevDesc): void {
  if (!d.closed) d.eventCb(BdevEvent.REMOVE, d.bdev, d.eventCtx);
}

const continuing = new Set<Bdev>();
function continueUnregister(bdev: Bdev): void {
  if (continuing.has(bdev) || bdev.state !== BdevState.REMOVING) return;
  continuing.add(bdev);
  const t = unregisterThread.get(bdev) ?? requireThread('bdevUnregister');
  const run = () => {
    ioDeviceUnregister(bdev, () => {
      if (bdev.zombies > 0) bdev.onDrained = destruct;
      else destruct();
    });
  };
  const destruct = () => {
    byName.delete(bdev.name);
    for (const a of bdev.aliases) byName.delete(a);
    const i = bdevList.indexOf(bdev);
    if (i >= 0) bdevList.splice(i, 1);
    bdev.fn.destruct(() => {
      bdev.state = BdevState.REMOVED;
      bdev.qos?.region?.close();
      continuing.delete(bdev);
      const cbs = unregisterDone.get(bdev) ?? [];
      unregisterDone.delete(bdev);
      unregisterThread.delete(bdev);
      for (const cb of cbs) t.sendMsg(cb, null);
    });
  };
  if (getThread() === t) run();
  else t.sendMsg(run);
}

/** Unregister by name (spdk_bdev_unregister_by_name). */
export function bdevUnregisterByName(name: string, done?: (err: BdevError | null) => void): void {
  const b = byName.get(name);
  if (b === undefined || b.name !== name) throw new BdevError('ENODEV', `no bdev ${name}`);
  bdevUnregister(b, done);
}

/**
 * Change the block count (spdk_bdev_notify_blockcnt_change); every descriptor's owner hears
 * RESIZE. Shrinking an open bdev is refused (EBUSY), as in SPDK.
 */
export function bdevNotifyBlockcntChange(bdev: Bdev, numBlocks: number): void {
  if (!Number.isSafeInteger(numBlocks) || numBlocks < 1)
    throw new BdevError('EINVAL', `block count ${numBlocks}`);
  if (numBlocks < bdev.numBlocks && bdev.descs.size > 0) {
    throw new BdevError('EBUSY', `bdev ${bdev.name} is open: it cannot shrink`);
  }
  bdev.numBlocks = numBlocks;
  for (const d of bdev.descs) d.thread.sendMsg(notifyResize, d);
}

function notifyResize(d: BdevDesc): void {
  if (!d.closed) d.eventCb(BdevEvent.RESIZE, d.bdev, d.eventCtx);
}

/** This worker's bdev layer options (bdev_set_options, as one worker applies them). */
export interface BdevOptions {
  /** bdev_ios each channel makes up front (SPDK's per-thread cache). */
  bdev_io_cache_size?: number;
  /** The most bdev_ios this worker makes over all its channels (its share of bdev_io_pool_size). */
  bdev_io_pool_size?: number;
  /** Examine every new bdev (default), or only those named by bdevExamine. */
  bdev_auto_examine?: boolean;
  timeout_poll_us?: number;
}

/** Set this worker's bdev layer options (see BdevOptions); channels made later use them. */
export function setBdevOptions(o: BdevOptions): void {
  const pos = (k: keyof BdevOptions, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 1)
      throw new BdevError('EINVAL', `${k} must be >= 1, got ${v}`);
  };
  if (o.bdev_io_cache_size !== undefined) pos('bdev_io_cache_size', o.bdev_io_cache_size);
  if (o.bdev_io_pool_size !== undefined) pos('bdev_io_pool_size', o.bdev_io_pool_size);
  if (o.bdev_io_cache_size !== undefined) bdevOptions.ioPoolSize = o.bdev_io_cache_size;
  if (o.bdev_io_pool_size !== undefined) bdevOptions.ioBudget = o.bdev_io_pool_size;
  if (o.bdev_auto_examine !== undefined) bdevOptions.autoExamine = o.bdev_auto_examine;
  if (o.timeout_poll_us !== undefined) bdevOptions.timeoutPollUs = o.timeout_poll_us;
}

export function getBdevOptions(): {
  bdev_io_cache_size: number;
  bdev_io_pool_size: number;
  bdev_auto_examine: boolean;
  timeout_poll_us: number;
} {
  return {
    bdev_io_cache_size: bdevOptions.ioPoolSize,
    bdev_io_pool_size: bdevOptions.ioBudget,
    bdev_auto_examine: bdevOptions.autoExamine,
    timeout_poll_us: bdevOptions.timeoutPollUs,
  };
}

/**
 * bdev_examine: let the modules examine bdev `name` although bdev_auto_examine is off, now if it
 * exists, else when it is registered. EINVAL while auto examine is on (as SPDK).
 */
export function bdevExamine(name: string): void {
  if (bdevOptions.autoExamine)
    throw new BdevError('EINVAL', 'bdev_examine: bdev_auto_examine is on, every bdev is examined already');
  if (examineAllowed.has(name)) return;
  examineAllowed.add(name);
  const b = byName.get(name);
  if (b !== undefined) requireThread('bdev_examine').sendMsg(examine, b);
}
