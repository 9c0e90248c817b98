// Snapshots, clones, inflation, decoupling and deletion (SPDK's bs_snapshot_*, bs_clone_*,
// bs_inflate_blob, bs_delete_blob), in SPDK's order of metadata writes, so that a crash anywhere
// leaves what SPDK's recovery (and ours, at load) finishes or undoes:
//
//   snapshot S of blob B: S is created thin with internal xattr SNAPTMP = B; B's I/O is frozen on
//     every reactor; B's clusters move to S (persisted), B becomes a thin clone of S (persisted),
//     S loses SNAPTMP and becomes read-only (persisted); B's I/O resumes. At load, a blob with
//     SNAPTMP is kept if B already names it as its snapshot, else deleted.
//   delete of snapshot S with one clone C: S gets SNAPRM = C (persisted); C takes S's clusters where
//     it has none and S's snapshot as its own (persisted); S keeps only what C did not take, then is
//     deleted. At load, a blob with SNAPRM is kept if C still names it as its snapshot, else deleted.
import { type BdevDesc, bdevClose, bdevGetIoChannel, bdevOpenExt, bdevReadv, IoStatus } from '@storkit/bdev';
import type { Blob } from './blob.js';
import type { Blobstore } from './blobstore.js';
import { BlobError } from './errors.js';
import type { Xattr } from './format/blob-md.js';
import { EXTENTS_PER_PAGE, InvalidFlag, XattrName } from './format/layout.js';
import type { Done, DoneWith } from './md-io.js';
import { persist } from './persist.js';
import { publishBlobs, unfreezeBlob } from './views.js';

function u64(id: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(id), true);
  return b;
}

function readU64(v: Uint8Array | undefined): number {
  if (v === undefined || v.length !== 8) return -1;
  return Number(new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true));
}

/** The base cluster with blob cluster `ci`'s data below `blob` (its snapshot chain), or 0. */
export function sourceCluster(bs: Blobstore, blob: Blob, ci: number): number {
  let p = blob.parentId >= 0 ? bs.open.get(blob.parentId) : undefined;
  while (p !== undefined) {
    if (ci >= p.numClusters) return 0;
    if (p.clusters[ci] !== 0) return p.clusters[ci];
    p = p.parentId >= 0 ? bs.open.get(p.parentId) : undefined;
  }
  return 0;
}

/**
 * Fill a newly allocated cluster before its metadata is written: a copy of the data below it in
 * the snapshot chain (copy on write); zeroes when it has a snapshot but nothing is below (what
 * reads returned before); nothing for a plain thin blob (freed clusters were cleared).
 */
export function copyForAlloc(bs: Blobstore, blob: Blob, ci: number, cluster: number, done: Done): void {
  const cb = bs.clusterBlocks;
  const src = sourceCluster(bs, blob, ci);
  if (src === 0) {
    if (blob.parentId < 0 && blob.esnapBdev !== '') {
      copyFromEsnap(bs, blob, ci, cluster, done);
      return;
    }
    if (blob.parentId < 0) {
      bs.thread.sendMsg(() => done(null));
      return;
    }
    bs.io.zeroBlocks(cluster * cb, cb, done);
    return;
  }
  const pageBlocks = bs.io.pageBlocks;
  bs.io.readPages((src * cb) / pageBlocks, bs.pagesPerCluster, (err, buf) => {
    if (err !== null) return done(err);
    bs.io.writePages((cluster * cb) / pageBlocks, buf, done);
  });
}

/**
 * Copy on write from an external snapshot: blob cluster `ci`'s bytes read from the external bdev
 * (a descriptor of it opened on the metadata thread for the copy) into new cluster `cluster`;
 * zeroes past its end.
 */
function copyFromEsnap(bs: Blobstore, blob: Blob, ci: number, cluster: number, done: Done): void {
  const cb = bs.clusterBlocks;
  let desc: BdevDesc;
  try {
    desc = bdevOpenExt(blob.esnapBdev, false, () => {});
  } catch (e) {
    const err = new BlobError(
      'EIO',
      `external snapshot ${blob.esnapBdev} does not open: ${(e as Error).message}`,
    );
    bs.thread.sendMsg(() => done(err));
    return;
  }
  const k = bs.io.blockSize / desc.bdev.blockSize;
  const first = ci * cb * k;
  if (first >= desc.bdev.numBlocks) {
    bdevClose(desc);
    bs.io.zeroBlocks(cluster * cb, cb, done);
    return;
  }
  const count = Math.min(cb * k, desc.bdev.numBlocks - first);
  const buf = new Uint8Array(bs.clusterSize);
  const ch = bdevGetIoChannel(desc);
  const rc = bdevReadv(
    desc,
    ch,
    [buf.subarray(0, count * desc.bdev.blockSize)],
    first,
    count,
    (status) => {
      ch.put();
      bdevClose(desc);
      if (status !== IoStatus.SUCCESS)
        return done(
          new BlobError('EIO', `reading cluster ${ci} of external snapshot ${blob.esnapBdev} failed`),
        );
      bs.io.writePages((cluster * cb) / bs.io.pageBlocks, buf, done);
    },
    null,
  );
  if (rc !== 0) {
    ch.put();
    bdevClose(desc);
    bs.thread.sendMsg(() => done(new BlobError('EIO', `reading external snapshot ${blob.esnapBdev}: ${rc}`)));
  }
}

function swapMaps(a: Blob, b: Blob): void {
  [a.clusters, b.clusters] = [b.clusters, a.clusters];
  [a.cmap, b.cmap] = [b.cmap, a.cmap];
  [a.extentPages, b.extentPages] = [b.extentPages, a.extentPages];
  [a.allocated, b.allocated] = [b.allocated, a.allocated];
  a.chainDirty = true;
  b.chainDirty = true;
}

/**
 * Snapshot blob `id` (spdk_bs_create_snapshot): `done(null, snapshotId)`. The blob must not be
 * read-only; its I/O is held on every reactor from the cluster swap until the metadata is written.
 */
export function createSnapshot(bs: Blobstore, id: number, xattrs: Xattr[], done: DoneWith<number>): void {
  let snapId = 0;
  bs.openBlob(id, (err, orig) => {
    if (err !== null || orig === null) return done(err, 0);
    const finish = (e: BlobError | null, snapId: number) => bs.closeBlob(orig, (e2) => done(e ?? e2, snapId));
    if (orig.readOnly)
      return finish(
        new BlobError('EINVAL', `blob 0x${id.toString(16)} is read-only: snapshot a writable blob`),
        0,
      );
    if (orig.esnapId !== null)
      return finish(
        new BlobError(
          'ENOTSUP',
          `blob 0x${id.toString(16)} is a clone of an external snapshot: snapshots of one are not implemented`,
        ),
        0,
      );
    bs.withLock(
      orig,
      (e) => finish(e, snapId),
      (unlock) => {
        bs.createBlob(
          { thin: true, numClusters: orig.numClusters, useExtentTable: orig.useExtentTable, xattrs },
          (e1, sid) => {
            if (e1 !== null) return unlock(e1);
            snapId = sid;
            bs.openBlob(sid, (e2, snap) => {
              if (e2 !== null || snap === null) return unlock(e2);
              bs.freezeLocked(orig, (e3) => {
                if (e3 !== null) return unlock(e3);
                swapIn(bs, orig, snap, (e4) => {
                  unfreezeBlob(bs.key, orig.id, [snap.descriptor(), orig.descriptor()], (e5) =>
                    unlock(e4 ?? e5),
                  );
                });
              });
            });
          },
          [{ name: XattrName.SNAPSHOT_IN_PROGRESS, value: u64(orig.id) }],
        );
      },
    );
  });
}

/** The frozen part of a snapshot: move the clusters, write both blobs in SPDK's order. */
function swapIn(bs: Blobstore, orig: Blob, snap: Blob, done: Done): void {
  snap.invalidFlags = orig.invalidFlags;
  if (orig.parentId >= 0) snap.setXattr(XattrName.SNAPSHOT, u64(orig.parentId), true);
  snap.parentId = orig.parentId;
  swapMaps(snap, orig);
  snap.setClearMethod(orig.clearMethod);
  persist(bs, snap, (err) => {
    if (err !== null) {
      swapMaps(snap, orig);
      snap.setThin();
      return done(err);
    }
    // orig now reads through snap: the reference orig held on its old snapshot moves to snap, and
    // the reference this operation opened snap with becomes orig's.
    if (orig.parentId >= 0) {
      bs.removeClone(orig.parentId, orig.id);
      bs.addClone(orig.parentId, snap.id);
    }
    orig.setXattr(XattrName.SNAPSHOT, u64(snap.id), true);
    orig.parentId = snap.id;
    orig.setThin();
    bs.addClone(snap.id, orig.id);
    persist(bs, orig, (err2) => {
      if (err2 !== null) return done(err2);
      snap.removeXattr(XattrName.SNAPSHOT_IN_PROGRESS, true);
      snap.setReadOnlyFlag();
      persist(bs, snap, (err3) => {
        if (err3 === null) {
          snap.dataRo = true;
          snap.mdRo = true;
        }
        done(err3);
      });
    });
  });
}

/** Clone a snapshot (spdk_bs_create_clone): a thin blob reading through it. `done(null, cloneId)`. */
export function createClone(bs: Blobstore, snapId: number, xattrs: Xattr[], done: DoneWith<number>): void {
  bs.openBlob(snapId, (err, snap) => {
    if (err !== null || snap === null) return done(err, 0);
    let cloneId = 0;
    const finish = (e: BlobError | null) => bs.closeBlob(snap, (e2) => done(e ?? e2, cloneId));
    if (!snap.dataRo || !snap.mdRo)
      return finish(
        new BlobError('EINVAL', `blob 0x${snapId.toString(16)} is not a snapshot (not read-only)`),
      );
    bs.withLock(snap, finish, (unlock) => {
      bs.createBlob(
        { thin: true, numClusters: snap.numClusters, useExtentTable: snap.useExtentTable, xattrs },
        (e1, id) => {
          if (e1 === null) {
            cloneId = id;
            bs.addClone(snap.id, id);
          }
          unlock(e1);
        },
        [{ name: XattrName.SNAPSHOT, value: u64(snap.id) }],
      );
    });
  });
}

/**
 * Inflate (allocateAll: every cluster allocated, no snapshot below any more, thick) or decouple
 * from the snapshot (only the clusters the snapshot holds are copied; the snapshot's own snapshot
 * becomes the blob's) (spdk_bs_inflate_blob, spdk_bs_blob_decouple_parent). I/O continues.
 */
export function inflate(bs: Blobstore, id: number, allocateAll: boolean, done: Done): void {
  bs.openBlob(id, (err, blob) => {
    if (err !== null || blob === null) return done(err);
    const finish = (e: BlobError | null) => bs.closeBlob(blob, (e2) => done(e ?? e2));
    if (blob.esnapId !== null)
      return finish(
        new BlobError(
          'ENOTSUP',
          `blob 0x${id.toString(16)} is a clone of an external snapshot: inflate and decouple of one are not implemented`,
        ),
      );
    if (blob.parentId < 0 && !allocateAll)
      return finish(new BlobError('EINVAL', `blob 0x${id.toString(16)} has no snapshot to decouple from`));
    if (!blob.thin) return finish(null);
    if (blob.locked)
      return finish(new BlobError('EBUSY', `blob 0x${id.toString(16)}: another operation is in progress`));
    const parent = blob.parentId >= 0 ? bs.open.get(blob.parentId) : undefined;
    const needs = (i: number) =>
      blob.clusters[i] === 0 &&
      (allocateAll || (parent !== undefined && i < parent.numClusters && parent.clusters[i] !== 0));
    let n = 0;
    for (let i = 0; i < blob.numClusters; i++) if (needs(i)) n++;
    if (n > bs.freeClusters)
      return finish(new BlobError('ENOSPC', `${n} clusters needed, ${bs.freeClusters} free`));
    // Through the thin-allocation path (copy, persist, publish), a few at a time.
    let next = 0;
    let failed: BlobError | null = null;
    let running = 0;
    const pump = () => {
      while (running < 8 && failed === null && next < blob.numClusters) {
        const i = next++;
        if (!needs(i)) continue;
        running++;
        bs.allocate(blob.page, i, (status) => {
          running--;
          if (status !== 0 && failed === null)
            failed = new BlobError('EIO', `inflating cluster ${i} failed (${status})`);
          pump();
        });
      }
      if (running === 0 && (failed !== null || next >= blob.numClusters)) {
        if (failed !== null) return finish(failed);
        bs.withLock(blob, finish, (unlock) => relink(bs, blob, allocateAll, unlock));
      }
    };
    pump();
  });
}

/** The end of inflate/decouple: a new snapshot below (or none), persisted and published. */
function relink(bs: Blobstore, blob: Blob, allocateAll: boolean, done: Done): void {
  const old = blob.parentId;
  const parent = old >= 0 ? bs.open.get(old) : undefined;
  const grand = !allocateAll && parent !== undefined ? parent.parentId : -1;
  const link = (then: Done) => {
    if (grand < 0) return bs.thread.sendMsg(() => then(null));
    bs.openBlob(grand, (e) => then(e));
  };
  link((err) => {
    if (err !== null) return done(err);
    if (old >= 0) bs.removeClone(old, blob.id);
    // An internal change: allowed on a read-only blob too, as in SPDK (only its users' md changes
    // are refused).
    const ro = blob.mdRo;
    blob.mdRo = false;
    if (grand >= 0) {
      blob.setXattr(XattrName.SNAPSHOT, u64(grand), true);
      bs.addClone(grand, blob.id);
    } else blob.removeXattr(XattrName.SNAPSHOT, true);
    blob.mdRo = ro;
    blob.parentId = grand;
    if (allocateAll) {
      blob.invalidFlags &= ~InvalidFlag.THIN_PROV;
      blob.chainDirty = true;
    }
    persist(bs, blob, (err2) => {
      if (err2 !== null) return done(err2);
      publishBlobs(bs.key, [blob.descriptor()], [], (err3) => {
        if (parent === undefined) return done(err3);
        bs.closeBlob(parent, (err4) => done(err3 ?? err4));
      });
    });
  });
}

/**
 * Delete blob `id` (spdk_bs_delete_blob): refused while other users hold it open or, for a
 * snapshot, while it has more than one clone; a snapshot with one clone is merged into it first.
 */
export function deleteBlob(bs: Blobstore, id: number, done: Done): void {
  bs.openBlob(id, (err, blob) => {
    if (err !== null || blob === null) return done(err);
    const clones = [...(bs.clones.get(id) ?? [])];
    const fail = (e: BlobError) => bs.closeBlob(blob, () => done(e));
    if (clones.length > 1)
      return fail(
        new BlobError('EBUSY', `blob 0x${id.toString(16)} is a snapshot with ${clones.length} clones`),
      );
    const clone = clones.length === 1 ? bs.open.get(clones[0]) : undefined;
    const holders = blob.openRef - 1 - (clone !== undefined ? 1 : 0);
    if (holders > 0) return fail(new BlobError('EBUSY', `blob 0x${id.toString(16)} is open`));
    if (!blob.idle)
      return fail(new BlobError('EBUSY', `blob 0x${id.toString(16)}: another operation is in progress`));
    if (clones.length === 1) mergeIntoClone(bs, blob, clones[0], done);
    else removeBlob(bs, blob, done);
  });
}

/** Delete an open blob nobody else holds (the caller's reference is the last). */
export function removeBlob(bs: Blobstore, blob: Blob, done: Done): void {
  blob.locked = true;
  if (blob.parentId >= 0) bs.removeClone(blob.parentId, blob.id);
  bs.clones.delete(blob.id);
  bs.usedBlobids.clear(blob.page);
  blob.mdRo = false;
  blob.deleting = true;
  bs.resizeNow(blob, 0);
  persist(bs, blob, (err) => {
    if (err !== null) {
      blob.locked = false;
      return done(err);
    }
    bs.open.delete(blob.id);
    blob.openRef = 0;
    publishBlobs(bs.key, [], [blob.id], () => {
      bs.view.releaseMap(blob.cmap);
      const parent = blob.parentId >= 0 ? bs.open.get(blob.parentId) : undefined;
      if (parent === undefined) return done(null);
      bs.closeBlob(parent, done);
    });
  });
}

/** Delete snapshot `snap` into its only clone (SNAPRM protocol). */
function mergeIntoClone(bs: Blobstore, snap: Blob, cloneId: number, done: Done): void {
  bs.openBlob(cloneId, (err, clone) => {
    if (err !== null || clone === null) return bs.closeBlob(snap, () => done(err));
    // Another locked operation (SPDK's locked_operation_in_progress); thin allocations of writes
    // in flight are not one: the lock waits for them.
    if (clone.locked) {
      return bs.closeBlob(clone, () =>
        bs.closeBlob(snap, () => done(new BlobError('EBUSY', 'its clone has an operation in progress'))),
      );
    }
    const fail = (e: BlobError) => bs.closeBlob(clone, () => bs.closeBlob(snap, () => done(e)));
    bs.withLock(
      clone,
      (e) => (e === null ? removeAfterMerge(bs, snap, clone, done) : fail(e)),
      (unlock) => {
        bs.freezeLocked(clone, (e0) => {
          if (e0 !== null) return unlock(e0);
          const thaw = (e: BlobError | null) =>
            unfreezeBlob(bs.key, clone.id, [clone.descriptor()], (e2) => unlock(e ?? e2));
          const wasRo = snap.mdRo;
          snap.mdRo = false;
          snap.setXattr(XattrName.SNAPSHOT_PENDING_REMOVAL, u64(clone.id), true);
          persist(bs, snap, (e1) => {
            if (e1 !== null) {
              snap.removeXattr(XattrName.SNAPSHOT_PENDING_REMOVAL, true);
              snap.mdRo = wasRo;
              return thaw(e1);
            }
            // An extent page maps the clusters of its range the blob has: one of the snapshot's
            // that the clone (of another size) would adopt as it is maps too few or too many for
            // the clone. The clone gets a new page for that range instead (written before its
            // root; the snapshot's goes with it), claimed before anything changes.
            const covers = (e: number, n: number) =>
              Math.max(0, Math.min((e + 1) * EXTENTS_PER_PAGE, n) - e * EXTENTS_PER_PAGE);
            const fresh = new Map<number, number>();
            for (let e = 0; e < Math.min(snap.extentPages.length, clone.extentPages.length); e++) {
              if (snap.extentPages[e] === 0 || clone.extentPages[e] !== 0) continue;
              if (covers(e, snap.numClusters) === covers(e, clone.numClusters)) continue;
              const np = bs.claimExtentPage();
              if (np < 0) {
                for (const p of fresh.values()) bs.usedMdPages.clear(p);
                snap.removeXattr(XattrName.SNAPSHOT_PENDING_REMOVAL, true);
                snap.mdRo = wasRo;
                return thaw(new BlobError('ENOSPC', "no free metadata page for the clone's extent page"));
              }
              fresh.set(e, np);
            }
            const n = Math.min(snap.numClusters, clone.numClusters);
            const taken: number[] = [];
            for (let i = 0; i < n; i++) {
              if (clone.clusters[i] === 0 && snap.clusters[i] !== 0) {
                clone.clusters[i] = snap.clusters[i];
                clone.allocated++;
                taken.push(i);
              }
            }
            const ne = Math.min(snap.extentPages.length, clone.extentPages.length);
            for (let e = 0; e < ne; e++) {
              if (snap.extentPages[e] === 0) continue;
              const np = fresh.get(e);
              if (np !== undefined) {
                clone.extentPages[e] = np;
                clone.dirtyEps.add(e);
              } else if (clone.extentPages[e] === 0) clone.extentPages[e] = snap.extentPages[e];
              else if (taken.some((i) => Math.floor(i / EXTENTS_PER_PAGE) === e)) clone.dirtyEps.add(e);
            }
            // The clone reads through the snapshot's snapshot now; the snapshot's reference to it moves.
            bs.removeClone(snap.id, clone.id);
            // The clone may itself be a snapshot (read-only): an internal change, allowed as in
            // SPDK, which overrides the clone's md_ro for it.
            const cloneRo = clone.mdRo;
            clone.mdRo = false;
            if (snap.parentId >= 0) {
              clone.setXattr(XattrName.SNAPSHOT, u64(snap.parentId), true);
              bs.removeClone(snap.parentId, snap.id);
              bs.addClone(snap.parentId, clone.id);
            } else clone.removeXattr(XattrName.SNAPSHOT, true);
            clone.mdRo = cloneRo;
            clone.parentId = snap.parentId;
            snap.parentId = -1;
            clone.chainDirty = true;
            persist(bs, clone, (e2) => {
              if (e2 !== null) return thaw(e2);
              for (const i of taken) clone.cmap.publish(i, clone.clusters[i]);
              dropShared(snap, clone);
              persist(bs, snap, (e3) => {
                snap.openRef--; // the clone's reference
                thaw(e3);
              });
            });
          });
        });
      },
    );
  });
}

/** Keep in `snap` only the clusters and extent pages `other` does not also map; make it thin. */
function dropShared(snap: Blob, other: Blob): void {
  const n = Math.min(snap.numClusters, other.numClusters);
  for (let i = 0; i < n; i++) {
    if (snap.clusters[i] !== 0 && snap.clusters[i] === other.clusters[i]) {
      snap.clusters[i] = 0;
      snap.cmap.map[i] = 0;
      snap.allocated--;
    }
  }
  for (let e = 0; e < Math.min(snap.extentPages.length, other.extentPages.length); e++)
    if (snap.extentPages[e] === other.extentPages[e]) snap.extentPages[e] = 0;
  snap.setThin();
  snap.chainDirty = true;
}

function removeAfterMerge(bs: Blobstore, snap: Blob, clone: Blob, done: Done): void {
  bs.closeBlob(clone, (e) => {
    if (e !== null) return bs.closeBlob(snap, () => done(e));
    removeBlob(bs, snap, done);
  });
}

/**
 * At load: finish or undo a snapshot (SNAPTMP) or snapshot delete (SNAPRM) a crash interrupted
 * (bs_load_iter's recovery): keep the blob if the other blob names it as its snapshot, else delete
 * it (keeping the clusters the other blob maps).
 */
export function recoverBlob(bs: Blobstore, blob: Blob, done: Done): void {
  const rm = blob.getXattr(XattrName.SNAPSHOT_PENDING_REMOVAL, true);
  const tmp = blob.getXattr(XattrName.SNAPSHOT_IN_PROGRESS, true);
  const otherId = readU64(rm ?? tmp);
  if (otherId < 0) {
    bs.thread.sendMsg(() => done(null));
    return;
  }
  bs.openBlob(otherId, (err, other) => {
    if (err !== null || other === null)
      return done(err ?? new BlobError('EIO', 'recovery: the other blob does not open'));
    if (other.parentId === blob.id) {
      blob.mdRo = false;
      blob.removeXattr(XattrName.SNAPSHOT_PENDING_REMOVAL, true);
      blob.removeXattr(XattrName.SNAPSHOT_IN_PROGRESS, true);
      blob.setReadOnlyFlag();
      persist(bs, blob, (e) => {
        blob.dataRo = true;
        blob.mdRo = true;
        publishBlobs(bs.key, [blob.descriptor()], [], () => bs.closeBlob(other, (e2) => done(e ?? e2)));
      });
      return;
    }
    blob.mdRo = false;
    dropShared(blob, other);
    bs.closeBlob(other, (e) => {
      if (e !== null) return done(e);
      removeBlob(bs, blob, done);
    });
  });
}
