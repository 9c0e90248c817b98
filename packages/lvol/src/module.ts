// The lvol bdev module (SPDK module/bdev/lvol), on every reactor. The lvstore and its metadata live
// on reactor 0's app thread (the blobstore's metadata thread, `owner.ts`); every reactor has a view
// of the store (its own descriptor of the base bdev, claimed by this module) and one bdev per lvol,
// named by the lvol's UUID with the alias "lvstore/lvol", whose I/O goes through the blob layer on
// that reactor. The owner tells the other reactors what to build through reactor steps
// (`lvol.attach`, `lvol.bdevs`, `lvol.detach`), one reactor after the other.
import {
  type Bdev,
  type BdevDesc,
  BdevEvent,
  bdevClose,
  bdevGetByName,
  bdevOpenExt,
  IoStatus,
  IoType,
} from '@storkit/bdev';
import {
  type BdevIo,
  type BdevModule,
  bdevAliasAdd,
  bdevAliasDel,
  bdevIoComplete,
  bdevModuleClaimBdev,
  bdevModuleRegister,
  bdevModuleReleaseBdev,
  bdevModuleUnregister,
  bdevNotifyBlockcntChange,
  bdevRegister,
  bdevUnregister,
} from '@storkit/bdev/module';
import {
  type BlobChannel,
  type BlobDescriptor,
  type BlobView,
  blobReadv,
  blobUnmap,
  blobWritev,
  blobWriteZeroes,
  openStoreView,
  type StoreDescriptor,
  type StoreView,
} from '@storkit/blob';
import { defineReactorStep, forEachReactor, getThread, type IoChannel, reactorIndex } from '@storkit/reactor';
import { LvolError } from './errors.js';

/** What a reactor needs to serve an lvol. */
export interface LvolDescriptor {
  uuid: string;
  /** "lvstore/lvol" */
  alias: string;
  blobId: number;
}

/** What a reactor needs to serve an lvstore. */
export interface LvsDescriptor {
  uuid: string;
  name: string;
  base: string;
  store: StoreDescriptor;
  blobs: BlobDescriptor[];
  lvols: LvolDescriptor[];
}

/** One reactor's share of an lvstore. */
export interface Attached {
  readonly uuid: string;
  name: string;
  readonly base: string;
  desc: BdevDesc | null;
  /** This isolate owns the descriptor (opened here for the view, not the owner's). */
  ownDesc: boolean;
  view: StoreView;
  readonly bdevs: Map<string, Bdev>;
  d: LvsDescriptor;
}

export const lvolModule: BdevModule = {
  name: 'lvol',
  examineDisk: (bdev, done) => examineDisk(bdev, done),
};

/**
 * Register the lvol module in this isolate (idempotent): from now on examine reads every new bdev's
 * first page and loads the lvstore it finds. Explicit, not on import, so that importing the
 * package (its types, its functions) changes no other bdev's I/O.
 */
export function registerLvolModule(): void {
  bdevModuleRegister(lvolModule);
}

/** Stop examining new bdevs (lvstores already loaded stay). */
export function unregisterLvolModule(): void {
  bdevModuleUnregister(lvolModule);
}

/** The owner's descriptors of the bases it loaded lvstores from (in its isolate), by base name. */
export const ownerDescs = new Map<string, BdevDesc>();
/** This isolate's lvstores, by uuid. */
export const attached = new Map<string, Attached>();
/** Lvstores whose base this reactor did not have yet when the owner attached them, by base name. */
const pending = new Map<string, LvsDescriptor>();

/** Set by owner.ts: reactor 0's examine of a bdev that may hold an lvstore. */
let ownerExamine: (bdev: Bdev, done: () => void) => void = (_b, d) => d();
/** Set by owner.ts: reactor 0 hears its base is going away. */
let ownerRemove: (lvsUuid: string) => void = () => {};
/** Set by owner.ts: driver_specific of an lvol bdev (reactor 0 knows the relations). */
let ownerInfo: (uuid: string) => Record<string, unknown> | null = () => null;

/** @internal */
export function installOwner(o: {
  examine: typeof ownerExamine;
  remove: typeof ownerRemove;
  info: typeof ownerInfo;
}): void {
  ownerExamine = o.examine;
  ownerRemove = o.remove;
  ownerInfo = o.info;
}

function examineDisk(bdev: Bdev, done: () => void): void {
  const p = pending.get(bdev.name);
  if (p !== undefined) {
    pending.delete(bdev.name);
    try {
      attachHere(p, null);
    } catch (e) {
      console.warn(`lvol: attaching lvstore ${p.name} on ${bdev.name}: ${(e as Error).message}`);
    }
    done();
    return;
  }
  if (reactorIndex() !== 0) {
    done();
    return;
  }
  ownerExamine(bdev, done);
}

// ---- the I/O path -------------------------------------------------------------------------

interface LvolCtx {
  view: BlobView;
  uuid: string;
}

function ioDone(status: number, io: BdevIo): void {
  bdevIoComplete(io, status === 0 ? IoStatus.SUCCESS : IoStatus.FAILED);
}

function submit(ch: IoChannel<unknown>, io: BdevIo): void {
  const c = io.bdev.ctx as LvolCtx;
  const bch = ch as IoChannel<BlobChannel>;
  switch (io.type) {
    case IoType.READ:
      blobReadv(c.view, bch, io.iovs, io.offsetBlocks, io.numBlocks, ioDone, io);
      return;
    case IoType.WRITE:
      blobWritev(c.view, bch, io.iovs, io.offsetBlocks, io.numBlocks, ioDone, io);
      return;
    case IoType.WRITE_ZEROES:
      blobWriteZeroes(c.view, bch, io.offsetBlocks, io.numBlocks, ioDone, io);
      return;
    case IoType.UNMAP:
      blobUnmap(c.view, bch, io.offsetBlocks, io.numBlocks, ioDone, io);
      return;
    case IoType.RESET:
      bdevIoComplete(io, IoStatus.SUCCESS);
      return;
    default:
      bdevIoComplete(io, IoStatus.FAILED);
  }
}

const SUPPORTED = new Set<IoType>([
  IoType.READ,
  IoType.WRITE,
  IoType.WRITE_ZEROES,
  IoType.UNMAP,
  IoType.RESET,
]);

function registerLvol(a: Attached, l: LvolDescriptor): void {
  if (a.bdevs.has(l.uuid) || bdevGetByName(l.uuid) !== undefined) {
    const b = bdevGetByName(l.uuid);
    if (b !== undefined) a.bdevs.set(l.uuid, b);
    return;
  }
  const view = a.view.blobs.get(l.blobId);
  if (view === undefined) throw new LvolError('ENOENT', `lvol ${l.alias}: its blob is not open here`);
  const ctx: LvolCtx = { view, uuid: l.uuid };
  const b = bdevRegister({
    name: l.uuid,
    aliases: [l.alias],
    uuid: l.uuid,
    productName: 'Logical Volume',
    blockSize: a.view.blockSize,
    numBlocks: Math.max(1, view.numBlocks),
    optimalIoBoundary: a.view.clusterBlocks,
    splitOnOptimalIoBoundary: true,
    module: lvolModule,
    ctx: ctx,
    fn: {
      submitRequest: submit,
      ioTypeSupported: (t) => SUPPORTED.has(t),
      getIoChannel: () => a.view.getChannel(),
      destruct: (done) => done(),
      dumpInfoJson: () => ({ lvol: ownerInfo(l.uuid) ?? { lvol_store_uuid: a.uuid, base_bdev: a.base } }),
    },
  });
  a.bdevs.set(l.uuid, b);
}

/** Open and claim this reactor's descriptor of the base (null: it is not here yet). */
function openBase(a: Attached): void {
  const base = bdevGetByName(a.base);
  if (base === undefined) return;
  const own = ownerDescs.get(a.base);
  if (own !== undefined && !own.isClosed) {
    // The owner's own descriptor in this isolate (reactor 0, or every reactor in the harness).
    a.desc = own;
    return;
  }
  const desc = bdevOpenExt(a.base, true, (type) => onBaseEvent(a, type));
  try {
    bdevModuleClaimBdev(base, desc, lvolModule);
  } catch (e) {
    bdevClose(desc);
    throw e;
  }
  a.desc = desc;
  a.ownDesc = true;
}

/** A base bdev's REMOVE takes its lvstore away; a RESIZE waits for bdev_lvol_grow_lvstore (as SPDK). */
function onBaseEvent(a: Attached, type: string): void {
  if (type !== BdevEvent.REMOVE) return;
  if (reactorIndex() === 0) ownerRemove(a.uuid);
  else detachHere(a.uuid, () => {});
}

/** @internal build this reactor's share of an lvstore (idempotent). `ownerDesc` on the owner. */
export function attachHere(d: LvsDescriptor, ownerDesc: BdevDesc | null): Attached {
  let a = attached.get(d.uuid);
  if (a === undefined) {
    a = {
      uuid: d.uuid,
      name: d.name,
      base: d.base,
      desc: ownerDesc,
      ownDesc: false,
      view: openStoreView(d.store, d.blobs),
      bdevs: new Map(),
      d,
    };
    attached.set(d.uuid, a);
  } else a.view.applyBlobs(d.blobs);
  if (a.desc === null) openBase(a);
  if (a.desc === null) {
    pending.set(d.base, d);
    return a;
  }
  a.view.bind(a.desc);
  for (const l of d.lvols) registerLvol(a, l);
  return a;
}

function unregisterAll(bdevs: Bdev[], done: () => void): void {
  let left = bdevs.length;
  if (left === 0) return void getThread()?.sendMsg(done);
  for (const b of bdevs) {
    try {
      bdevUnregister(b, () => {
        if (--left === 0) done();
      });
    } catch {
      if (--left === 0) getThread()?.sendMsg(done);
    }
  }
}

/** @internal remove this reactor's share: its lvol bdevs, view, claim and descriptor. */
export function detachHere(uuid: string, done: () => void): void {
  const a = attached.get(uuid);
  if (a === undefined) return void getThread()?.sendMsg(done);
  attached.delete(uuid);
  for (const [k, p] of pending) if (p.uuid === uuid) pending.delete(k);
  unregisterAll([...a.bdevs.values()], () => {
    a.bdevs.clear();
    a.view.close(() => {
      if (a.ownDesc && a.desc !== null && !a.desc.isClosed) {
        bdevModuleReleaseBdev(a.desc.bdev);
        bdevClose(a.desc);
      }
      done();
    });
  });
}

// ---- reactor steps: the owner changing every reactor's share ------------------------------

const attachStep = defineReactorStep<LvsDescriptor>('lvol.attach', (d, _r, done) => {
  try {
    attachHere(d, null);
    done(0);
  } catch (e) {
    console.warn(`lvol: attaching lvstore ${d.name}: ${(e as Error).message}`);
    done(-5);
  }
});

/** A change to the lvol bdevs of one lvstore on every reactor. */
export interface BdevsChange {
  lvs: string;
  /** New lvol bdevs (their blob views are on every reactor already). */
  add?: LvolDescriptor[];
  remove?: string[];
  /** Alias changes: [uuid, old alias, new alias]. */
  rename?: [string, string, string][];
  /** New block counts: [uuid, blocks]. */
  resize?: [string, number][];
  /** The lvstore's new name. */
  lvsName?: string;
}

const bdevsStep = defineReactorStep<BdevsChange>('lvol.bdevs', (c, _r, done) => {
  const a = attached.get(c.lvs);
  if (a === undefined || a.desc === null) return done(0);
  try {
    if (c.lvsName !== undefined) a.name = c.lvsName;
    for (const l of c.add ?? []) registerLvol(a, l);
    for (const [uuid, from, to] of c.rename ?? []) {
      const b = a.bdevs.get(uuid);
      if (b === undefined || !b.aliases.has(from)) continue;
      bdevAliasDel(b, from);
      bdevAliasAdd(b, to);
    }
    for (const [uuid, n] of c.resize ?? []) {
      const b = a.bdevs.get(uuid);
      if (b !== undefined && b.numBlocks !== n) bdevNotifyBlockcntChange(b, n);
    }
  } catch (e) {
    console.warn(`lvol: updating lvstore ${a.name}: ${(e as Error).message}`);
    return done(-5);
  }
  const gone = (c.remove ?? []).map((u) => a.bdevs.get(u)).filter((b): b is Bdev => b !== undefined);
  for (const u of c.remove ?? []) a.bdevs.delete(u);
  unregisterAll(gone, () => done(0));
});

const detachStep = defineReactorStep<{ lvs: string }>('lvol.detach', (c, _r, done) => {
  detachHere(c.lvs, () => done(0));
});

function walk<A>(
  step: Parameters<typeof forEachReactor<A>>[0],
  arg: A,
  what: string,
  done: (err: LvolError | null) => void,
): void {
  forEachReactor(step, arg, (status) =>
    done(status === 0 ? null : new LvolError('EIO', `${what} failed on a reactor (${status})`)),
  );
}

/** Give every reactor its share of an lvstore (its view, claim, lvol bdevs). */
export function attachEverywhere(d: LvsDescriptor, done: (err: LvolError | null) => void): void {
  walk(attachStep, d, `attaching lvstore ${d.name}`, done);
}

/** Apply a change to an lvstore's lvol bdevs on every reactor. */
export function changeEverywhere(c: BdevsChange, done: (err: LvolError | null) => void): void {
  walk(bdevsStep, c, 'updating lvol bdevs', done);
}

/** Remove an lvstore's share from every reactor. */
export function detachEverywhere(lvs: string, done: (err: LvolError | null) => void): void {
  walk(detachStep, { lvs }, 'detaching an lvstore', done);
}
