// SPDK's bdev_lvol_* RPCs as functions with SPDK's parameter names and answers, run on the
// lvstores' owner thread (reactor 0's app thread). Each answers `done(err, result)` once what it
// changed is on disk and on every reactor.
import { bdevGetAll, bdevGetByName } from '@storkit/bdev';
import { getThread } from '@storkit/reactor';
import { LvolError } from './errors.js';
import type { ClearMethodName, Lvol, Lvs } from './lvs.js';
import { createLvs, destroyLvs, lvolDescriptor, publish, stores } from './owner.js';

type Cb<T> = (err: Error | null, value?: T) => void;

const MiB = 1024 * 1024;

function later<T>(done: Cb<T>, err: Error | null, value?: T): void {
  const t = getThread();
  if (t === null) done(err, value);
  else t.sendMsg(() => done(err, value));
}

function failWith<T>(done: Cb<T>, e: unknown, context: string): void {
  later(done, LvolError.from(e, context));
}

/** The lvstore named by uuid or lvs_name (exactly one given, as SPDK requires). */
function findLvs(p: { uuid?: string; lvs_name?: string }, method: string): Lvs {
  if ((p.uuid === undefined) === (p.lvs_name === undefined))
    throw new LvolError('EINVAL', `${method}: give either uuid or lvs_name`);
  for (const s of stores.values()) if (s.uuid === p.uuid || s.name === p.lvs_name) return s;
  throw new LvolError('ENODEV', `${method}: no lvstore ${p.uuid ?? p.lvs_name}`);
}

/** An lvol by its bdev name (its uuid) or alias "lvstore/lvol" (spdk_bdev_get_by_name). */
export function findLvol(name: string, method: string): Lvol {
  for (const s of stores.values()) {
    const l = s.lvols.get(name) ?? [...s.lvols.values()].find((x) => x.alias === name);
    if (l !== undefined) return l;
  }
  const b = bdevGetByName(name);
  if (b !== undefined && b.name !== name)
    for (const s of stores.values()) {
      const l = s.lvols.get(b.name);
      if (l !== undefined) return l;
    }
  throw new LvolError('ENODEV', `${method}: no lvol ${name}`);
}

function mib(v: unknown, k: string, method: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new LvolError('EINVAL', `${method}: ${k} must be an integer >= 0`);
  return v * MiB;
}

export interface CreateLvstoreParams {
  bdev_name: string;
  lvs_name: string;
  cluster_sz?: number;
  clear_method?: ClearMethodName;
  num_md_pages_per_cluster_ratio?: number;
}

/** bdev_lvol_create_lvstore: answers the lvstore's uuid. */
export function bdevLvolCreateLvstore(p: CreateLvstoreParams, done: Cb<string>): void {
  createLvs(
    p.bdev_name,
    {
      name: p.lvs_name,
      clusterSize: p.cluster_sz,
      clearMethod: p.clear_method,
      mdPagesPerClusterRatio: p.num_md_pages_per_cluster_ratio,
    },
    (err, lvs) => done(err, lvs?.uuid),
  );
}

/** bdev_lvol_delete_lvstore */
export function bdevLvolDeleteLvstore(p: { uuid?: string; lvs_name?: string }, done: Cb<true>): void {
  let lvs: Lvs;
  try {
    lvs = findLvs(p, 'bdev_lvol_delete_lvstore');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_delete_lvstore');
    return;
  }
  destroyLvs(lvs, (err) => done(err, true));
}

/** bdev_lvol_rename_lvstore: the lvstore's name and every lvol's alias. */
export function bdevLvolRenameLvstore(p: { old_name: string; new_name: string }, done: Cb<true>): void {
  let lvs: Lvs;
  try {
    lvs = findLvs({ lvs_name: p.old_name }, 'bdev_lvol_rename_lvstore');
    for (const s of stores.values())
      if (s !== lvs && s.name === p.new_name) throw new LvolError('EEXIST', `lvstore ${p.new_name} exists`);
  } catch (e) {
    failWith(done, e, 'bdev_lvol_rename_lvstore');
    return;
  }
  const old = [...lvs.lvols.values()].map((l) => [l.uuid, l.alias] as const);
  lvs.renameLvs(p.new_name, (err) => {
    if (err !== null) return done(err);
    const rename = old.map(
      ([u, a]) => [u, a, `${p.new_name}/${(lvs.lvols.get(u) as Lvol).name}`] as [string, string, string],
    );
    publish({ lvs: lvs.uuid, lvsName: p.new_name, rename }, (e2) => done(e2, true));
  });
}

/** bdev_lvol_grow_lvstore: take in a base bdev that grew. */
export function bdevLvolGrowLvstore(p: { uuid?: string; lvs_name?: string }, done: Cb<true>): void {
  let lvs: Lvs;
  try {
    lvs = findLvs(p, 'bdev_lvol_grow_lvstore');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_grow_lvstore');
    return;
  }
  lvs.bs.grow((err) => done(err, true));
}

export interface LvstoreJson {
  uuid: string;
  name: string;
  base_bdev: string;
  total_data_clusters: number;
  free_clusters: number;
  block_size: number;
  cluster_size: number;
}

/** bdev_lvol_get_lvstores */
export function bdevLvolGetLvstores(p: { uuid?: string; lvs_name?: string } = {}): LvstoreJson[] {
  if (p.uuid !== undefined && p.lvs_name !== undefined)
    throw new LvolError('EINVAL', 'bdev_lvol_get_lvstores: give uuid or lvs_name, not both');
  const list =
    p.uuid !== undefined || p.lvs_name !== undefined
      ? [findLvs(p, 'bdev_lvol_get_lvstores')]
      : [...stores.values()];
  return list.map((s) => ({
    uuid: s.uuid,
    name: s.name,
    base_bdev: s.base,
    total_data_clusters: s.bs.totalDataClusters,
    free_clusters: s.bs.freeClusters,
    block_size: s.blockSize,
    cluster_size: s.bs.clusterSize,
  }));
}

export interface CreateParams {
  lvol_name: string;
  size_in_mib: number;
  thin_provision?: boolean;
  uuid?: string;
  lvs_name?: string;
  clear_method?: ClearMethodName;
}

/** bdev_lvol_create: answers the new lvol bdev's name (its uuid). */
export function bdevLvolCreate(p: CreateParams, done: Cb<string>): void {
  let lvs: Lvs;
  let bytes: number;
  try {
    lvs = findLvs(p, 'bdev_lvol_create');
    bytes = mib(p.size_in_mib, 'size_in_mib', 'bdev_lvol_create');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_create');
    return;
  }
  lvs.createLvol(p.lvol_name, bytes, p.thin_provision ?? false, p.clear_method, (err, l) => {
    if (err !== null || l === null) return done(err);
    publish({ lvs: lvs.uuid, add: [lvolDescriptor(l)] }, (e2) => done(e2, l.bdevName));
  });
}

/** bdev_lvol_snapshot: answers the snapshot's bdev name. */
export function bdevLvolSnapshot(p: { lvol_name: string; snapshot_name: string }, done: Cb<string>): void {
  let l: Lvol;
  try {
    l = findLvol(p.lvol_name, 'bdev_lvol_snapshot');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_snapshot');
    return;
  }
  l.lvs.snapshot(l, p.snapshot_name, (err, s) => {
    if (err !== null || s === null) return done(err);
    publish({ lvs: l.lvs.uuid, add: [lvolDescriptor(s)] }, (e2) => done(e2, s.bdevName));
  });
}

/** bdev_lvol_clone: answers the clone's bdev name. */
export function bdevLvolClone(p: { snapshot_name: string; clone_name: string }, done: Cb<string>): void {
  let s: Lvol;
  try {
    s = findLvol(p.snapshot_name, 'bdev_lvol_clone');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_clone');
    return;
  }
  s.lvs.clone(s, p.clone_name, (err, c) => {
    if (err !== null || c === null) return done(err);
    publish({ lvs: s.lvs.uuid, add: [lvolDescriptor(c)] }, (e2) => done(e2, c.bdevName));
  });
}

/**
 * bdev_lvol_clone_bdev: a clone of any bdev (not an lvol of the same lvstore), its external
 * snapshot, found again by its UUID when the lvstore loads; answers the clone's bdev name. As in
 * SPDK, the bdev's size must be a whole number of clusters.
 */
export function bdevLvolCloneBdev(
  p: { bdev: string; lvs_name: string; clone_name: string },
  done: Cb<string>,
): void {
  let lvs: Lvs;
  let uuid: string;
  let bytes: number;
  try {
    lvs = findLvs({ lvs_name: p.lvs_name }, 'bdev_lvol_clone_bdev');
    const b = bdevGetByName(p.bdev) ?? bdevGetAll().find((x) => x.uuid === p.bdev.toLowerCase());
    if (b === undefined) throw new LvolError('ENODEV', `bdev_lvol_clone_bdev: bdev ${p.bdev} does not exist`);
    if (lvs.lvols.has(b.uuid))
      throw new LvolError(
        'EINVAL',
        `bdev_lvol_clone_bdev: ${p.bdev} is an lvol of lvstore ${lvs.name}: clone its snapshot with bdev_lvol_clone`,
      );
    if (lvs.blockSize % b.blockSize !== 0)
      throw new LvolError(
        'EINVAL',
        `bdev_lvol_clone_bdev: ${p.bdev}'s block size ${b.blockSize} does not divide the lvstore's ${lvs.blockSize}`,
      );
    uuid = b.uuid;
    bytes = b.numBlocks * b.blockSize;
    if (bytes % lvs.bs.clusterSize !== 0)
      throw new LvolError(
        'EINVAL',
        `bdev_lvol_clone_bdev: cannot create '${lvs.name}/${p.clone_name}': size ${bytes} is not an integer multiple of cluster size ${lvs.bs.clusterSize}`,
      );
  } catch (e) {
    failWith(done, e, 'bdev_lvol_clone_bdev');
    return;
  }
  lvs.esnapClone(p.clone_name, uuid, bytes, (err, c) => {
    if (err !== null || c === null) return done(err);
    publish({ lvs: lvs.uuid, add: [lvolDescriptor(c)] }, (e2) => done(e2, c.bdevName));
  });
}

/** bdev_lvol_rename: the lvol's name, its bdev's alias on every reactor. */
export function bdevLvolRename(p: { old_name: string; new_name: string }, done: Cb<true>): void {
  let l: Lvol;
  try {
    l = findLvol(p.old_name, 'bdev_lvol_rename');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_rename');
    return;
  }
  const from = l.alias;
  l.lvs.rename(l, p.new_name, (err) => {
    if (err !== null) return done(err);
    publish({ lvs: l.lvs.uuid, rename: [[l.uuid, from, l.alias]] }, (e2) => done(e2, true));
  });
}

/** bdev_lvol_resize: size_in_mib rounded up to whole clusters; the bdev's size follows everywhere. */
export function bdevLvolResize(p: { name: string; size_in_mib: number }, done: Cb<true>): void {
  let l: Lvol;
  let bytes: number;
  try {
    l = findLvol(p.name, 'bdev_lvol_resize');
    bytes = mib(p.size_in_mib, 'size_in_mib', 'bdev_lvol_resize');
    const b = bdevGetByName(l.uuid);
    const clusters = Math.ceil(bytes / l.lvs.bs.clusterSize);
    if (b !== undefined && clusters < l.blob.numClusters && b.descs.size > 0)
      throw new LvolError('EBUSY', `bdev_lvol_resize: ${l.alias} is open: it cannot shrink`);
  } catch (e) {
    failWith(done, e, 'bdev_lvol_resize');
    return;
  }
  l.lvs.resize(l, bytes, (err) => {
    if (err !== null) return done(err);
    publish({ lvs: l.lvs.uuid, resize: [[l.uuid, Math.max(1, l.numBlocks)]] }, (e2) => done(e2, true));
  });
}

/** bdev_lvol_set_read_only */
export function bdevLvolSetReadOnly(p: { name: string }, done: Cb<true>): void {
  let l: Lvol;
  try {
    l = findLvol(p.name, 'bdev_lvol_set_read_only');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_set_read_only');
    return;
  }
  l.lvs.bs.setReadOnly(l.blob, (err) => done(err, true));
}

/** bdev_lvol_delete: the bdev goes from every reactor, then the blob (a snapshot with one clone merges). */
export function bdevLvolDelete(p: { name: string }, done: Cb<true>): void {
  let l: Lvol;
  try {
    l = findLvol(p.name, 'bdev_lvol_delete');
    const clones = l.clones.length;
    if (clones > 1)
      throw new LvolError('EBUSY', `bdev_lvol_delete: ${l.alias} is a snapshot with ${clones} clones`);
  } catch (e) {
    failWith(done, e, 'bdev_lvol_delete');
    return;
  }
  publish({ lvs: l.lvs.uuid, remove: [l.uuid] }, (err) => {
    if (err !== null) return done(err);
    l.lvs.delete(l, (e2) => {
      if (e2 === null) return done(null, true);
      // Still there (refused by the blobstore): its bdev comes back.
      const back = l.lvs.lvols.get(l.uuid);
      if (back === undefined) return done(e2);
      publish({ lvs: l.lvs.uuid, add: [lvolDescriptor(back)] }, () => done(e2));
    });
  });
}

/** bdev_lvol_inflate: every cluster allocated, no snapshot below. */
export function bdevLvolInflate(p: { name: string }, done: Cb<true>): void {
  let l: Lvol;
  try {
    l = findLvol(p.name, 'bdev_lvol_inflate');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_inflate');
    return;
  }
  l.lvs.bs.inflateBlob(l.blob.id, (err) => done(err, true));
}

/** bdev_lvol_decouple_parent */
export function bdevLvolDecoupleParent(p: { name: string }, done: Cb<true>): void {
  let l: Lvol;
  try {
    l = findLvol(p.name, 'bdev_lvol_decouple_parent');
  } catch (e) {
    failWith(done, e, 'bdev_lvol_decouple_parent');
    return;
  }
  l.lvs.bs.decoupleParent(l.blob.id, (err) => done(err, true));
}

export interface LvolJson {
  alias: string;
  uuid: string;
  name: string;
  is_thin_provisioned: boolean;
  is_snapshot: boolean;
  is_clone: boolean;
  is_esnap_clone: boolean;
  is_degraded: boolean;
  lvs: { name: string; uuid: string };
}

/** bdev_lvol_get_lvols */
export function bdevLvolGetLvols(p: { lvs_uuid?: string; lvs_name?: string } = {}): LvolJson[] {
  if (p.lvs_uuid !== undefined && p.lvs_name !== undefined)
    throw new LvolError('EINVAL', 'bdev_lvol_get_lvols: give lvs_uuid or lvs_name, not both');
  const list =
    p.lvs_uuid !== undefined || p.lvs_name !== undefined
      ? [findLvs({ uuid: p.lvs_uuid, lvs_name: p.lvs_name }, 'bdev_lvol_get_lvols')]
      : [...stores.values()];
  return list.flatMap((s) =>
    [...s.lvols.values()].map((l) => ({
      alias: l.alias,
      uuid: l.uuid,
      name: l.name,
      is_thin_provisioned: l.thin,
      is_snapshot: l.isSnapshot,
      is_clone: l.isClone,
      is_esnap_clone: l.blob.esnapId !== null,
      is_degraded: false,
      lvs: { name: s.name, uuid: s.uuid },
    })),
  );
}
