// Writing a blob's metadata in an order that survives a crash at any point (blob_persist):
//   1. the super block says "dirty" (once, before the first change after a clean load);
//   2. extent pages that changed (in place: one page, written whole);
//   3. the chain's pages after the root, to pages not in use (never over the old chain);
//   4. the root page, in place: the commit point. Before it the old blob is on disk, after it the
//      new one; a crash in between leaves only pages and clusters no root refers to, which a
//      dirty load does not count as used;
//   5. the old chain's other pages are zeroed and released, truncated clusters cleared (as the
//      blob's clear method says) and released, dropped extent pages zeroed and released.
// Persists of one blob run one at a time; changes made meanwhile go out with the next.
import type { Blob } from './blob.js';
import { ClearMethod } from './blob.js';
import type { Blobstore } from './blobstore.js';
import { BlobError } from './errors.js';
import { serializeBlob, serializeExtentPage } from './format/blob-md.js';
import { INVALID_PAGE, PAGE_SIZE } from './format/layout.js';
import { encodeMdPage } from './format/md-page.js';
import { all, type Done } from './md-io.js';

/** Persist `blob` (spdk_blob_sync_md's engine); `done` once what it holds now is on disk. */
export function persist(bs: Blobstore, blob: Blob, done: Done): void {
  blob.persistQueue.push(done);
  if (!blob.persisting) next(bs, blob);
}

function next(bs: Blobstore, blob: Blob): void {
  const waiting = blob.persistQueue.splice(0);
  if (waiting.length === 0) return;
  blob.persisting = true;
  const finish = (err: BlobError | null) => {
    blob.persisting = false;
    for (const w of waiting) w(err);
    next(bs, blob);
  };
  if (!needsWrite(blob)) {
    bs.thread.sendMsg(() => finish(null));
    return;
  }
  bs.markDirty((err) => {
    if (err !== null) return finish(err);
    if (blob.deleting) deleteChain(bs, blob, finish);
    else writeAll(bs, blob, finish);
  });
}

function needsWrite(b: Blob): boolean {
  return (
    b.deleting || b.chainDirty || b.dirtyEps.size > 0 || b.freeClusters.length > 0 || b.freeEps.length > 0
  );
}

function writeAll(bs: Blobstore, blob: Blob, done: Done): void {
  // What this round writes; changes after this point wait for the next round.
  const eps = [...blob.dirtyEps];
  blob.dirtyEps.clear();
  const chain = blob.chainDirty;
  blob.chainDirty = false;
  const freeClusters = blob.freeClusters.splice(0);
  const freeEps = blob.freeEps.splice(0);
  const md = blob.md();
  const epWrites = eps
    .filter((i) => i < blob.extentPages.length && blob.extentPages[i] !== 0)
    .map(
      (i) => (d: Done) =>
        bs.io.writePages(bs.mdStart + blob.extentPages[i], encodeMdPage(serializeExtentPage(md, i)), d),
    );
  // Extent pages of a grown (or same-size) blob go first: entries past the count the old root
  // declares are ignored until the new root says otherwise. A shrunk blob's go after its root, so
  // the old root never meets an extent page with fewer entries than it declares.
  const shrink = blob.numClusters < blob.clean.numClusters;
  const before = shrink ? [] : epWrites;
  const after = shrink ? epWrites : [];
  const restore = (err: BlobError) => {
    for (const i of eps) blob.dirtyEps.add(i);
    if (chain) blob.chainDirty = true;
    blob.freeClusters.unshift(...freeClusters);
    blob.freeEps.unshift(...freeEps);
    done(err);
  };
  all(
    before,
    (err) => {
      if (err !== null) return restore(err);
      const rest = (oldPages: number[]) =>
        all(
          after,
          (err3) => {
            if (err3 !== null) return restore(err3);
            release(bs, blob, oldPages, freeClusters, freeEps, done);
          },
          bs.thread,
        );
      if (!chain) return rest([]);
      writeChain(bs, blob, (err2, oldPages) => {
        if (err2 !== null) return restore(err2);
        rest(oldPages);
      });
    },
    bs.thread,
  );
}

/** Steps 3 and 4: new chain pages, then the root. Returns the old chain's other pages. */
function writeChain(bs: Blobstore, blob: Blob, done: (err: BlobError | null, old: number[]) => void): void {
  let pages: ReturnType<typeof serializeBlob>;
  try {
    pages = serializeBlob(blob.md());
  } catch (e) {
    done(e as BlobError, []);
    return;
  }
  // Claim pages for the chain after the root (never the old chain's, which stay until step 5).
  const placed = [blob.page];
  for (let i = 1; i < pages.length; i++) {
    const p = bs.usedMdPages.findFirstClear(0);
    if (p < 0) {
      for (const q of placed.slice(1)) bs.usedMdPages.clear(q);
      done(new BlobError('ENOMEM', `no free metadata page for blob 0x${blob.id.toString(16)}'s chain`), []);
      return;
    }
    bs.usedMdPages.set(p);
    placed.push(p);
  }
  pages.forEach((p, i) => {
    p.next = i + 1 < placed.length ? placed[i + 1] : INVALID_PAGE;
  });
  const bytes = pages.map(encodeMdPage);
  const rest = placed.slice(1).map((p, i) => (d: Done) => bs.io.writePages(bs.mdStart + p, bytes[i + 1], d));
  all(
    rest,
    (err) => {
      if (err !== null) {
        for (const q of placed.slice(1)) bs.usedMdPages.clear(q);
        return done(err, []);
      }
      bs.io.writePages(bs.mdStart + blob.page, bytes[0], (err2) => {
        if (err2 !== null) {
          for (const q of placed.slice(1)) bs.usedMdPages.clear(q);
          return done(err2, []);
        }
        const old = blob.mdPages.slice(1);
        blob.mdPages = placed;
        done(null, old);
      });
    },
    bs.thread,
  );
}

/** Step 5: what the new metadata no longer refers to goes back to the pools. */
function release(
  bs: Blobstore,
  blob: Blob,
  oldPages: number[],
  clusters: number[],
  eps: number[],
  done: Done,
): void {
  const ops: ((d: Done) => void)[] = [];
  for (const p of oldPages) ops.push((d) => bs.io.zeroPages(bs.mdStart + p, 1, d));
  for (const p of eps) ops.push((d) => bs.io.zeroPages(bs.mdStart + p, 1, d));
  for (const [lba, n] of runs(bs, clusters)) ops.push((d) => clear(bs, blob, lba, n, d));
  all(
    ops,
    (err) => {
      // Released even when a clear failed: the metadata no longer refers to them.
      for (const p of oldPages) bs.usedMdPages.clear(p);
      for (const p of eps) bs.usedMdPages.clear(p);
      for (const c of clusters) bs.releaseCluster(c);
      blob.clean = {
        mdPages: blob.mdPages.slice(),
        numClusters: blob.numClusters,
        extentPages: blob.extentPages.slice(),
      };
      done(err);
    },
    bs.thread,
  );
}

/** Contiguous runs of clusters as [lba, blocks]. */
function runs(bs: Blobstore, clusters: number[]): [number, number][] {
  const sorted = [...clusters].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const c of sorted) {
    const last = out[out.length - 1];
    const lba = c * bs.clusterBlocks;
    if (last !== undefined && last[0] + last[1] === lba) last[1] += bs.clusterBlocks;
    else out.push([lba, bs.clusterBlocks]);
  }
  return out;
}

function clear(bs: Blobstore, blob: Blob, lba: number, n: number, d: Done): void {
  switch (blob.clearMethod) {
    case ClearMethod.NONE:
      bs.thread.sendMsg(() => d(null));
      return;
    case ClearMethod.WRITE_ZEROES:
      bs.io.zeroBlocks(lba, n, d);
      return;
    default:
      bs.io.unmapBlocks(lba, n, d);
  }
}

/**
 * A deleted blob: its root page zeroed first (the commit point: from then on no blob refers to the
 * rest), then the rest of its chain, its clusters and extent pages released.
 */
function deleteChain(bs: Blobstore, blob: Blob, done: Done): void {
  const rest = blob.mdPages.slice(1);
  const clusters = blob.freeClusters.splice(0);
  const eps = blob.freeEps.splice(0);
  bs.io.zeroPages(bs.mdStart + blob.page, 1, (err) => {
    if (err !== null) {
      blob.freeClusters.unshift(...clusters);
      blob.freeEps.unshift(...eps);
      return done(err);
    }
    bs.usedMdPages.clear(blob.page);
    blob.mdPages = [];
    release(bs, blob, rest, clusters, eps, done);
  });
}

export { PAGE_SIZE };
