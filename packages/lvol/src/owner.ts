// The lvstores' owner: reactor 0's app thread (the blobstores' metadata thread). It loads lvstores
// found by examine and makes new ones, runs every lvol operation, and after each tells the other
// reactors what changed (module.ts's reactor steps). The SPDK RPCs (rpc.ts) call in here.
import {
  type Bdev,
  type BdevDesc,
  BdevEvent,
  bdevClose,
  bdevGetByName,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevRead,
  IoStatus,
} from '@storkit/bdev';
import { bdevModuleClaimBdev, bdevModuleReleaseBdev } from '@storkit/bdev/module';
import { PAGE_SIZE } from '@storkit/blob';
import { getThread } from '@storkit/reactor';
import { LvolError } from './errors.js';
import { type Lvol, Lvs, type LvsInitOptions } from './lvs.js';
import {
  attachEverywhere,
  attached,
  type BdevsChange,
  changeEverywhere,
  detachEverywhere,
  detachHere,
  installOwner,
  type LvolDescriptor,
  type LvsDescriptor,
  lvolModule,
  ownerDescs,
} from './module.js';
import { BSTYPE } from './names.js';

/** The lvstores this isolate owns, by uuid. */
export const stores = new Map<string, Lvs>();
/** Owner descriptors by lvstore uuid. */
const descs = new Map<string, BdevDesc>();

type Done = (err: Error | null) => void;

export function lvolDescriptor(l: Lvol): LvolDescriptor {
  return { uuid: l.uuid, alias: l.alias, blobId: l.blob.id };
}

function descriptor(lvs: Lvs): LvsDescriptor {
  return {
    uuid: lvs.uuid,
    name: lvs.name,
    base: lvs.base,
    store: lvs.bs.view.descriptor,
    blobs: [...lvs.bs.open.values()].map((b) => b.descriptor()),
    lvols: [...lvs.lvols.values()].map(lvolDescriptor),
  };
}

/** The lvstore each owner descriptor serves (its REMOVE event unloads it). */
const descLvs = new Map<BdevDesc, string>();

function openOwnerDesc(base: string): BdevDesc {
  const b = bdevGetByName(base);
  if (b === undefined) throw new LvolError('ENODEV', `no bdev ${base}`);
  const desc: BdevDesc = bdevOpenExt(base, true, (type) => {
    const u = descLvs.get(desc);
    if (type === BdevEvent.REMOVE && u !== undefined) removeLvs(u);
  });
  try {
    bdevModuleClaimBdev(b, desc, lvolModule);
  } catch (e) {
    bdevClose(desc);
    throw LvolError.from(e, `bdev ${base} cannot hold an lvstore`);
  }
  ownerDescs.set(base, desc);
  return desc;
}

function releaseOwnerDesc(desc: BdevDesc): void {
  ownerDescs.delete(desc.bdev.name);
  descLvs.delete(desc);
  if (desc.isClosed) return;
  bdevModuleReleaseBdev(desc.bdev);
  bdevClose(desc);
}

function adopt(lvs: Lvs, desc: BdevDesc, done: (err: Error | null) => void): void {
  for (const o of stores.values()) {
    if (o.name === lvs.name) {
      lvs.unload(() => {
        releaseOwnerDesc(desc);
        done(new LvolError('EEXIST', `an lvstore named ${lvs.name} exists (on ${o.base})`));
      });
      return;
    }
  }
  stores.set(lvs.uuid, lvs);
  descs.set(lvs.uuid, desc);
  descLvs.set(desc, lvs.uuid);
  attachEverywhere(descriptor(lvs), (err) => done(err));
}

/** bdev_lvol_create_lvstore's work: a new lvstore on `base`, on every reactor. */
export function createLvs(
  base: string,
  o: LvsInitOptions,
  done: (err: Error | null, lvs: Lvs | null) => void,
): void {
  for (const s of stores.values())
    if (s.name === o.name)
      return void getThread()?.sendMsg(() => done(new LvolError('EEXIST', `lvstore ${o.name} exists`), null));
  let desc: BdevDesc;
  try {
    desc = openOwnerDesc(base);
  } catch (e) {
    return void getThread()?.sendMsg(() => done(e as Error, null));
  }
  Lvs.init(desc, o, (err, lvs) => {
    if (err !== null || lvs === null) {
      releaseOwnerDesc(desc);
      return done(err, null);
    }
    adopt(lvs, desc, (e) => done(e, e === null ? lvs : null));
  });
}

/** Examine on reactor 0: a bdev whose page 0 is an LVOLSTORE super block gets its lvstore loaded. */
/**
 * A new bdev may be the external snapshot esnap clones of loaded lvstores wait for (skipped at load
 * because it was not registered yet): open those lvols now and give every reactor their bdevs.
 */
function openWaitingEsnaps(bdev: Bdev, done: () => void): void {
  const names = new Set([bdev.name, bdev.uuid, ...bdev.aliases]);
  const work: [Lvs, number][] = [];
  for (const lvs of stores.values())
    for (const [id, esnap] of lvs.bs.missingEsnaps) {
      const end = esnap.indexOf(0);
      const want = new TextDecoder().decode(end < 0 ? esnap : esnap.subarray(0, end));
      if (names.has(want) || names.has(want.toLowerCase())) work.push([lvs, id]);
    }
  const next = (i: number): void => {
    if (i >= work.length) {
      done();
      return;
    }
    const [lvs, id] = work[i];
    lvs.openLate(id, (l, message) => {
      if (l === null) {
        console.warn(`lvol: lvstore ${lvs.name}: blob 0x${id.toString(16)} still does not open: ${message}`);
        next(i + 1);
        return;
      }
      publish({ lvs: lvs.uuid, add: [lvolDescriptor(l)] }, (err) => {
        if (err !== null) console.warn(`lvol: ${l.alias}: ${err.message}`);
        next(i + 1);
      });
    });
  };
  next(0);
}

function examine(bdev: Bdev, done: () => void): void {
  openWaitingEsnaps(bdev, () => examineBase(bdev, done));
}

function examineBase(bdev: Bdev, done: () => void): void {
  if (bdev.claimedBy !== null) {
    done();
    return;
  }
  if (
    bdev.blockSize > PAGE_SIZE ||
    PAGE_SIZE % bdev.blockSize !== 0 ||
    bdev.numBlocks * bdev.blockSize < 2 * PAGE_SIZE
  ) {
    done();
    return;
  }
  let probe: BdevDesc;
  try {
    probe = bdevOpenExt(bdev.name, false, () => {});
  } catch {
    done();
    return;
  }
  // A peek at the signature and type; the load checks the rest.
  const buf = new Uint8Array(PAGE_SIZE);
  const chan = bdevGetIoChannel(probe);
  const rc = bdevRead(
    probe,
    chan,
    buf,
    0,
    PAGE_SIZE / bdev.blockSize,
    (status) => {
      chan.put();
      bdevClose(probe);
      const sig = new TextDecoder('latin1').decode(buf.subarray(0, 8));
      const type = new TextDecoder().decode(buf.subarray(56, 56 + BSTYPE.length));
      if (
        status !== IoStatus.SUCCESS ||
        sig !== 'SPDKBLOB' ||
        type !== BSTYPE ||
        buf[56 + BSTYPE.length] !== 0
      )
        return done();
      loadLvs(bdev.name, (err) => {
        if (err !== null) console.warn(`lvol: the lvstore on ${bdev.name} does not load: ${err.message}`);
        done();
      });
    },
    undefined,
  );
  if (rc !== 0) {
    chan.put();
    bdevClose(probe);
    done();
  }
}

/** Load the lvstore on `base` and give every reactor its share. */
export function loadLvs(base: string, done: (err: Error | null, lvs: Lvs | null) => void): void {
  let desc: BdevDesc;
  try {
    desc = openOwnerDesc(base);
  } catch (e) {
    return void getThread()?.sendMsg(() => done(e as Error, null));
  }
  Lvs.load(desc, (err, lvs) => {
    if (err !== null || lvs === null) {
      releaseOwnerDesc(desc);
      return done(err, null);
    }
    for (const p of lvs.problems)
      console.warn(`lvol: lvstore ${lvs.name}: blob 0x${p.blob.toString(16)} skipped: ${p.message}`);
    adopt(lvs, desc, (e) => done(e, e === null ? lvs : null));
  });
}

/** The base is going away: every reactor's lvol bdevs go, the lvstore is unloaded (best effort). */
function removeLvs(uuid: string): void {
  const lvs = stores.get(uuid);
  if (lvs === undefined) return;
  unloadLvs(lvs, (err) => {
    if (err !== null) console.warn(`lvol: unloading lvstore ${lvs.name} after its base went: ${err.message}`);
  });
}

/** Unload an lvstore cleanly: its bdevs off every reactor, then the blobstore's clean unload. */
export function unloadLvs(lvs: Lvs, done: Done): void {
  stores.delete(lvs.uuid);
  detachEverywhere(lvs.uuid, () => {
    lvs.unload((err) => {
      const d = descs.get(lvs.uuid);
      descs.delete(lvs.uuid);
      if (d !== undefined) releaseOwnerDesc(d);
      done(err);
    });
  });
}

/** bdev_lvol_delete_lvstore's work: the bdevs go, the super block is zeroed. */
export function destroyLvs(lvs: Lvs, done: Done): void {
  stores.delete(lvs.uuid);
  detachEverywhere(lvs.uuid, () => {
    lvs.destroy((err) => {
      const d = descs.get(lvs.uuid);
      descs.delete(lvs.uuid);
      if (d !== undefined) releaseOwnerDesc(d);
      done(err);
    });
  });
}

/** Tell every reactor about a change (after the metadata is on disk). */
export function publish(c: BdevsChange, done: Done): void {
  changeEverywhere(c, done);
}

/** driver_specific.lvol of bdev_get_bdevs, as SPDK's vbdev_lvol writes it. */
export function lvolInfo(uuid: string): Record<string, unknown> | null {
  for (const lvs of stores.values()) {
    const l = lvs.lvols.get(uuid);
    if (l === undefined) continue;
    const out: Record<string, unknown> = {
      lvol_store_uuid: lvs.uuid,
      base_bdev: lvs.base,
      thin_provision: l.thin,
      num_allocated_clusters: l.blob.allocated,
      snapshot: l.isSnapshot,
      clone: l.isClone,
    };
    if (l.isSnapshot) out.clones = l.clones.map((c) => c.name);
    if (l.isClone && l.parent !== undefined) out.base_snapshot = l.parent.name;
    // SPDK's vbdev_lvol: esnap_clone, and for one the external snapshot's id (the bdev's UUID).
    const esnap = l.blob.esnapId;
    out.esnap_clone = esnap !== null;
    if (esnap !== null && esnap.indexOf(0) === esnap.length - 1)
      out.external_snapshot_name = new TextDecoder().decode(esnap.subarray(0, esnap.length - 1));
    return out;
  }
  return null;
}

installOwner({ examine, remove: removeLvs, info: lvolInfo });

export { attached };

/** The thread the lvol module runs on in this isolate (null when it has nothing). */
export function lvolShutdownThread(): import('@storkit/reactor').Thread | null {
  for (const lvs of stores.values()) return lvs.bs.thread;
  for (const a of attached.values()) if (a.desc !== null) return a.desc.thread;
  return null;
}

/**
 * App shutdown, on this isolate only (the other reactors are shutting down too): this reactor's
 * lvol bdevs and views go; the lvstores it owns are unloaded cleanly.
 */
export function lvolShutdown(done: () => void): void {
  const owned = [...stores.values()];
  const shares = [...attached.keys()];
  const next = (i: number): void => {
    if (i < shares.length) {
      detachHere(shares[i], () => next(i + 1));
      return;
    }
    const unload = (j: number): void => {
      if (j >= owned.length) {
        done();
        return;
      }
      const lvs = owned[j];
      stores.delete(lvs.uuid);
      lvs.unload((err) => {
        if (err !== null) console.warn(`lvol: unloading lvstore ${lvs.name}: ${err.message}`);
        const d = descs.get(lvs.uuid);
        descs.delete(lvs.uuid);
        if (d !== undefined) releaseOwnerDesc(d);
        unload(j + 1);
      });
    };
    unload(0);
  };
  next(0);
}
