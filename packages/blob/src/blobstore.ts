// The blobstore (spdk_blob_store) on its metadata thread: layout, allocators (metadata pages,
// blob ids, clusters), init, load (clean: the masks; dirty: the metadata pages replayed), unload,
// and the blob lifecycle. Snapshots, clones and inflation are in snapshot.ts, the write order of
// metadata in persist.ts, loading in load.ts.
import type { BdevDesc } from '@storkit/bdev';
import { bdevGetAll, bdevGetByName, bdevGetIoChannel } from '@storkit/bdev';
import { getThread, type Thread } from '@storkit/reactor';
import { Bitmap } from './bitmap.js';
import { Blob, ClearMethod } from './blob.js';
import { BlobError } from './errors.js';
import type { Xattr } from './format/blob-md.js';
import {
  BLOBID_INVALID,
  blobIdToPage,
  EXTENTS_PER_PAGE,
  InvalidFlag,
  MASK,
  MaskType,
  PAGE_SIZE,
  pageToBlobId,
  VERSION,
  XattrName,
} from './format/layout.js';
import { encodeMask } from './format/mask.js';
import { encodeSuper, type SuperBlock } from './format/super-block.js';
import { loadStore, openFromDisk } from './load.js';
import { all, type Done, type DoneWith, MdIo } from './md-io.js';
import { persist } from './persist.js';
import { copyForAlloc, createClone, createSnapshot, deleteBlob, inflate } from './snapshot.js';
import {
  type BlobView,
  freezeBlob,
  openStoreView,
  publishBlobs,
  type StoreView,
  setAllocService,
  unfreezeBlob,
} from './views.js';

export interface BsInitOptions {
  /** Bytes per cluster (a multiple of 4 KiB; default 1 MiB, as SPDK). */
  clusterSize?: number;
  /** Metadata pages (default: one per cluster, as SPDK). */
  numMdPages?: number;
  /** Blobstore type written to the super block (lvol: "LVOLSTORE"). */
  bstype?: string;
  /** How the data region is cleared at init: unmap (default), write_zeroes, none. */
  clearMethod?: 'unmap' | 'write_zeroes' | 'none';
}

export interface BsLoadOptions {
  /** Expected blobstore type; "" or absent loads any. A different type fails with ENXIO. */
  bstype?: string;
  /** Replay the metadata even if the super block says clean (SPDK's force_recover). */
  forceRecover?: boolean;
}

export interface BlobCreateOptions {
  numClusters?: number;
  thin?: boolean;
  xattrs?: Xattr[];
  clearMethod?: ClearMethod;
  /** Extent table and extent pages (default, as SPDK) or run-length extents in the chain. */
  useExtentTable?: boolean;
  /**
   * A clone of an external snapshot (spdk_bs_create_esnap_clone): its id, stored in the EXTSNAP
   * internal xattr with the EXTERNAL_SNAPSHOT invalid flag; the blob is thin and reads what it has
   * not written from the bdev `esnapResolver` names for the id.
   */
  esnapId?: Uint8Array;
}

/** A blob that failed to open while the blobstore loaded: skipped, as SPDK skips it. */
export interface LoadProblem {
  id: number;
  error: BlobError;
}

let nextKey = 1;

export class Blobstore {
  readonly key: number;
  readonly io: MdIo;
  readonly thread: Thread;
  readonly view: StoreView;
  clusterSize: number;
  /** Base-device blocks per cluster. */
  readonly clusterBlocks: number;
  readonly pagesPerCluster: number;
  readonly mdStart: number;
  readonly mdLen: number;
  totalClusters: number;
  /** Clusters the metadata occupies at the front of the device. */
  readonly mdClusters: number;
  bstype: string;
  superBlob: number;
  size: number;
  readonly ioUnitSize: number;
  readonly usedPageMaskStart: number;
  readonly usedPageMaskLen: number;
  readonly usedClusterMaskStart: number;
  usedClusterMaskLen: number;
  readonly usedBlobidMaskStart: number;
  readonly usedBlobidMaskLen: number;
  usedMdPages: Bitmap;
  usedBlobids: Bitmap;
  usedClusters: Bitmap;
  /** What the super block on disk says (SPDK's bs->clean): cleared before the first change. */
  clean: boolean;
  /** Open blobs by id. */
  readonly open = new Map<number, Blob>();
  /**
   * The bdev an external snapshot id names (the part of SPDK's esnap_bs_dev_create that finds the
   * device), or null when it is not here (the clone then fails to open with ENODEV). By default the
   * id is NUL-terminated text (SPDK's lvols store the bdev's UUID) naming a bdev by name, alias or
   * UUID.
   */
  esnapResolver: (id: Uint8Array) => string | null = defaultEsnapResolver;
  /**
   * Clones of an external snapshot that did not open because the resolver did not find their bdev,
   * by blob id, with the id they wait for (SPDK's degraded lvols): open them when it is there.
   */
  readonly missingEsnaps = new Map<number, Uint8Array>();
  readonly #opening = new Map<number, DoneWith<Blob | null>[]>();
  /** Snapshot id → its clones (SPDK's snapshot list). */
  readonly clones = new Map<number, Set<number>>();
  /** Blobs skipped at load. */
  readonly problems: LoadProblem[] = [];
  #unloaded = false;

  /** @internal use init or load */
  constructor(desc: BdevDesc, sb: SuperBlock, maps: { pages: Bitmap; blobids: Bitmap; clusters: Bitmap }) {
    const t = getThread();
    if (t === null) throw new BlobError('ENOTHREAD', 'a blobstore must be opened on a reactor thread');
    this.thread = t;
    this.key = (t.reactor << 20) | nextKey++;
    this.io = new MdIo(desc, bdevGetIoChannel(desc));
    this.clusterSize = sb.clusterSize;
    this.clusterBlocks = sb.clusterSize / desc.bdev.blockSize;
    this.pagesPerCluster = sb.clusterSize / PAGE_SIZE;
    this.mdStart = sb.mdStart;
    this.mdLen = sb.mdLen;
    this.totalClusters = Math.floor(sb.size / sb.clusterSize);
    this.mdClusters = Math.ceil((sb.mdStart + sb.mdLen) / this.pagesPerCluster);
    this.bstype = sb.bstype;
    this.superBlob = sb.superBlob;
    this.size = sb.size;
    this.ioUnitSize = sb.ioUnitSize;
    this.usedPageMaskStart = sb.usedPageMaskStart;
    this.usedPageMaskLen = sb.usedPageMaskLen;
    this.usedClusterMaskStart = sb.usedClusterMaskStart;
    this.usedClusterMaskLen = sb.usedClusterMaskLen;
    this.usedBlobidMaskStart = sb.usedBlobidMaskStart;
    this.usedBlobidMaskLen = sb.usedBlobidMaskLen;
    this.usedMdPages = maps.pages;
    this.usedBlobids = maps.blobids;
    this.usedClusters = maps.clusters;
    this.clean = true;
    this.view = openStoreView(
      {
        key: this.key,
        clusterBlocks: this.clusterBlocks,
        blockSize: desc.bdev.blockSize,
        md: { id: t.id, reactor: t.reactor },
        base: desc.bdev.name,
      },
      [],
    );
    this.view.bind(desc);
    setAllocService(this.key, { allocate: (page, cluster, done) => this.allocate(page, cluster, done) });
  }

  /** The super block as it is now (clean flag as given). */
  superBlock(clean: boolean): SuperBlock {
    return {
      version: VERSION,
      clean,
      superBlob: this.superBlob,
      clusterSize: this.clusterSize,
      usedPageMaskStart: this.usedPageMaskStart,
      usedPageMaskLen: this.usedPageMaskLen,
      usedClusterMaskStart: this.usedClusterMaskStart,
      usedClusterMaskLen: this.usedClusterMaskLen,
      mdStart: this.mdStart,
      mdLen: this.mdLen,
      bstype: this.bstype,
      usedBlobidMaskStart: this.usedBlobidMaskStart,
      usedBlobidMaskLen: this.usedBlobidMaskLen,
      size: this.size,
      ioUnitSize: this.ioUnitSize,
    };
  }

  // ---- init, load, unload ------------------------------------------------------------------

  /**
   * Make a new blobstore on the bdev behind `desc` (spdk_bs_init), on the calling thread, which
   * becomes its metadata thread. Lays out the super block, masks and metadata as SPDK does, clears
   * the metadata and (by clearMethod) the data region, writes the super block.
   */
  static init(desc: BdevDesc, opts: BsInitOptions, done: DoneWith<Blobstore | null>): void {
    let bs: Blobstore;
    let mdPagesTotal: number;
    try {
      const l = layout(desc, opts);
      mdPagesTotal = l.sb.mdStart + l.sb.mdLen;
      const clusters = new Bitmap(Math.floor(l.sb.size / l.sb.clusterSize));
      const mdClusters = Math.ceil(mdPagesTotal / (l.sb.clusterSize / PAGE_SIZE));
      for (let i = 0; i < mdClusters; i++) clusters.set(i);
      bs = new Blobstore(desc, l.sb, {
        pages: new Bitmap(l.sb.mdLen),
        blobids: new Bitmap(l.sb.mdLen),
        clusters,
      });
      bs.clean = false;
    } catch (e) {
      getThread()?.sendMsg(() => done(e as BlobError, null));
      return;
    }
    const pageBlocks = bs.io.pageBlocks;
    const dataLba = mdPagesTotal * pageBlocks;
    const dataBlocks = bs.io.numBlocks - dataLba;
    const clearData = (d: Done) => {
      if (opts.clearMethod === 'none' || dataBlocks <= 0) bs.thread.sendMsg(() => d(null));
      else if (opts.clearMethod === 'write_zeroes') bs.io.zeroBlocks(dataLba, dataBlocks, d);
      else bs.io.unmapBlocks(dataLba, dataBlocks, d);
    };
    all(
      [(d) => bs.io.zeroPages(0, mdPagesTotal, d), clearData],
      (err) => {
        if (err !== null) return bs.#fail(err, done);
        bs.io.writePages(0, encodeSuper(bs.superBlock(false)), (err2) => {
          if (err2 !== null) return bs.#fail(err2, done);
          done(null, bs);
        });
      },
      bs.thread,
    );
  }

  /**
   * Load the blobstore on the bdev behind `desc` (spdk_bs_load) on the calling thread. Nothing is
   * written unless a blob left mid-snapshot or mid-delete by a crash has to be finished.
   */
  static load(desc: BdevDesc, opts: BsLoadOptions, done: DoneWith<Blobstore | null>): void {
    loadStore(desc, opts, (sb, maps) => new Blobstore(desc, sb, maps), done);
  }

  #fail(err: BlobError, done: DoneWith<Blobstore | null>): void {
    this.#teardown(() => done(err, null));
  }

  #teardown(done: () => void): void {
    setAllocService(this.key, null);
    this.io.ch.put();
    this.view.close(() => {
      for (const b of this.open.values()) b.cmap.close();
      done();
    });
  }

  /** @internal close this half-loaded blobstore without writing */
  abandon(done: () => void): void {
    this.#unloaded = true;
    this.#teardown(done);
  }

  /** Mark the super block dirty before the first metadata change (bs_mark_dirty). */
  markDirty(done: Done): void {
    if (!this.clean) {
      this.thread.sendMsg(() => done(null));
      return;
    }
    this.io.writePages(0, encodeSuper(this.superBlock(false)), (err) => {
      if (err === null) this.clean = false;
      done(err);
    });
  }

  /**
   * Write the masks and a clean super block and close (spdk_bs_unload). Every blob must be closed
   * (EBUSY otherwise).
   */
  unload(done: Done): void {
    if (this.#unloaded) {
      this.thread.sendMsg(() => done(new BlobError('EINVAL', 'blobstore already unloaded')));
      return;
    }
    if (this.open.size > 0) {
      this.thread.sendMsg(() =>
        done(new BlobError('EBUSY', `blobstore still has ${this.open.size} open blobs`)),
      );
      return;
    }
    this.#unloaded = true;
    const masks: [number, Uint8Array][] = [
      [this.usedPageMaskStart, encodeMask(MaskType.USED_PAGES, this.usedMdPages, this.usedPageMaskLen)],
      [this.usedBlobidMaskStart, encodeMask(MaskType.USED_BLOBIDS, this.usedBlobids, this.usedBlobidMaskLen)],
      [
        this.usedClusterMaskStart,
        encodeMask(MaskType.USED_CLUSTERS, this.usedClusters, this.usedClusterMaskLen),
      ],
    ];
    all(
      masks.map(
        ([p, b]) =>
          (d: Done) =>
            this.io.writePages(p, b, d),
      ),
      (err) => {
        if (err !== null) return this.#teardown(() => done(err));
        // The super block last: clean only once the masks it vouches for are on disk.
        this.io.writePages(0, encodeSuper(this.superBlock(true)), (err2) => {
          this.#teardown(() => done(err2));
        });
      },
      this.thread,
    );
  }

  /** Zero the super block so nothing loads here any more (spdk_bs_destroy). */
  destroy(done: Done): void {
    if (this.open.size > 0) {
      this.thread.sendMsg(() =>
        done(new BlobError('EBUSY', `blobstore still has ${this.open.size} open blobs`)),
      );
      return;
    }
    this.#unloaded = true;
    this.io.zeroPages(0, 1, (err) => this.#teardown(() => done(err)));
  }

  // ---- allocators --------------------------------------------------------------------------

  get freeClusters(): number {
    return this.usedClusters.countClear;
  }

  get totalDataClusters(): number {
    return this.totalClusters - this.mdClusters;
  }

  /** @internal claim the lowest free cluster, or -1 */
  claimCluster(): number {
    const c = this.usedClusters.findFirstClear(0);
    if (c < 0) return -1;
    this.usedClusters.set(c);
    return c;
  }

  /** @internal */
  releaseCluster(c: number): void {
    if (c > 0 && c < this.usedClusters.length) this.usedClusters.clear(c);
  }

  /** @internal claim the lowest free metadata page from 1 (an extent page never takes page 0), or -1 */
  claimExtentPage(): number {
    const p = this.usedMdPages.findFirstClear(1);
    if (p < 0) return -1;
    this.usedMdPages.set(p);
    return p;
  }

  // ---- blobs -------------------------------------------------------------------------------

  /** Blob ids in use, in order (what spdk_bs_iter_first/next visit). */
  blobIds(): number[] {
    const out: number[] = [];
    for (let p = this.usedBlobids.findFirstSet(0); p >= 0; p = this.usedBlobids.findFirstSet(p + 1))
      out.push(pageToBlobId(p));
    return out;
  }

  /**
   * Create a blob (spdk_bs_create_blob_ext): its first page gives its id; thick blobs get their
   * clusters now. Persisted before `done(null, id)`.
   */
  createBlob(opts: BlobCreateOptions, done: DoneWith<number>, internal: Xattr[] = []): void {
    const page = this.usedMdPages.findFirstClear(0);
    if (page < 0) {
      this.thread.sendMsg(() => done(new BlobError('ENOMEM', 'no free metadata page for a new blob'), 0));
      return;
    }
    this.usedMdPages.set(page);
    this.usedBlobids.set(page);
    const id = pageToBlobId(page);
    const n = opts.numClusters ?? 0;
    const blob = new Blob(id, page, n);
    const undo = (err: BlobError) => {
      this.usedBlobids.clear(page);
      this.usedMdPages.clear(page);
      for (let i = 0; i < blob.numClusters; i++)
        if (blob.clusters[i] !== 0) this.releaseCluster(blob.clusters[i]);
      for (const e of blob.extentPages) if (e !== 0) this.usedMdPages.clear(e);
      blob.cmap.close();
      done(err, 0);
    };
    try {
      blob.useExtentTable = opts.useExtentTable ?? true;
      if (blob.useExtentTable) blob.invalidFlags |= InvalidFlag.EXTENT_TABLE;
      for (const x of opts.xattrs ?? []) blob.setXattr(x.name, x.value, false);
      for (const x of internal) blob.setXattr(x.name, x.value, true);
      if (opts.esnapId !== undefined) {
        blob.invalidFlags |= InvalidFlag.EXTERNAL_SNAPSHOT;
        blob.setXattr(XattrName.EXTERNAL_SNAPSHOT_ID, opts.esnapId, true);
      }
      if (opts.thin || opts.esnapId !== undefined) blob.setThin();
      blob.setClearMethod(opts.clearMethod ?? ClearMethod.DEFAULT);
      this.resizeNow(blob, n);
    } catch (e) {
      this.thread.sendMsg(() => undo(e as BlobError));
      return;
    }
    persist(this, blob, (err) => {
      if (err !== null) return undo(err);
      blob.cmap.close();
      done(null, id);
    });
  }

  /**
   * Open a blob (spdk_bs_open_blob): its metadata read and checked, its snapshot opened too, its
   * view published to every reactor. A blob already open gets one more reference.
   */
  openBlob(id: number, done: DoneWith<Blob | null>): void {
    this.openFrom(id, [], done);
  }

  /** @internal open `id` for the blobs in `path` (its clones being opened): a loop is refused */
  openFrom(id: number, path: readonly number[], done: DoneWith<Blob | null>): void {
    const b = this.open.get(id);
    if (b !== undefined) {
      b.openRef++;
      this.thread.sendMsg(() => done(null, b));
      return;
    }
    const page = blobIdToPage(id);
    if (id < 2 ** 32 || page >= this.mdLen || !this.usedBlobids.get(page)) {
      this.thread.sendMsg(() => done(new BlobError('ENOENT', `no blob 0x${id.toString(16)}`), null));
      return;
    }
    const waiting = this.#opening.get(id);
    if (waiting !== undefined) {
      // Opening already (the snapshot of two clones opened at once): share the result.
      waiting.push((err, blob) => {
        if (blob !== null) blob.openRef++;
        done(err, blob);
      });
      return;
    }
    this.#opening.set(id, []);
    openFromDisk(this, id, path, (err, blob) => {
      const ws = this.#opening.get(id) ?? [];
      this.#opening.delete(id);
      if (err !== null || blob === null) {
        done(err, null);
        for (const w of ws) w(err, null);
        return;
      }
      blob.openRef = 1;
      this.open.set(id, blob);
      this.view.adoptMap(blob.cmap);
      publishBlobs(this.key, [blob.descriptor()], [], (e) => {
        done(e, e === null ? blob : null);
        for (const w of ws) w(e, e === null ? blob : null);
      });
    });
  }

  /** Close (spdk_blob_close): the last close persists what changed and drops the views. */
  closeBlob(blob: Blob, done: Done): void {
    if (blob.openRef <= 0) {
      this.thread.sendMsg(() => done(new BlobError('EINVAL', 'blob is not open')));
      return;
    }
    persist(this, blob, (err) => {
      if (err !== null) return done(err);
      if (--blob.openRef > 0) return done(null);
      this.open.delete(blob.id);
      publishBlobs(this.key, [], [blob.id], () => {
        this.view.releaseMap(blob.cmap);
        const parent = blob.parentId >= 0 ? this.open.get(blob.parentId) : undefined;
        if (parent !== undefined) this.closeBlob(parent, done);
        else done(null);
      });
    });
  }

  /** Write the blob's metadata (spdk_blob_sync_md). */
  syncMd(blob: Blob, done: Done): void {
    persist(this, blob, done);
  }

  /** The view I/O uses on this thread for an open blob. */
  viewOf(blob: Blob): BlobView {
    const v = this.view.blobs.get(blob.id);
    if (v === undefined) throw new BlobError('ENOENT', `blob 0x${blob.id.toString(16)} is not open`);
    return v;
  }

  /**
   * @internal Change the cluster count in memory (blob_resize): thick blobs get clusters (and
   * extent pages) now, the lowest free; a shrink queues the dropped ones for the next persist.
   */
  resizeNow(blob: Blob, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new BlobError('EINVAL', `cluster count ${n}`);
    const cur = blob.numClusters;
    if (n === cur) return;
    const eps = blob.useExtentTable ? Math.ceil(n / EXTENTS_PER_PAGE) : 0;
    if (n > cur) {
      if (!blob.thin) {
        if (n - cur > this.freeClusters)
          throw new BlobError('ENOSPC', `${n - cur} clusters needed, ${this.freeClusters} free`);
        const newEps = eps - blob.extentPages.length;
        if (newEps > this.usedMdPages.countClear)
          throw new BlobError('ENOSPC', 'no free metadata pages for extent pages');
      }
      const old = blob.ensureCapacity(n);
      if (old !== null && this.open.get(blob.id) === blob) {
        this.view.adoptMap(blob.cmap);
        this.view.releaseMap(old);
      } else if (old !== null) old.close();
      while (blob.extentPages.length < eps) blob.extentPages.push(0);
      if (!blob.thin) {
        for (let i = cur; i < n; i++) {
          const c = this.claimCluster();
          blob.clusters[i] = c;
          blob.allocated++;
          if (blob.useExtentTable) {
            const e = Math.floor(i / EXTENTS_PER_PAGE);
            if (blob.extentPages[e] === 0) blob.extentPages[e] = this.claimExtentPage();
            blob.dirtyEps.add(e);
          }
        }
        blob.cmap.map.set(blob.clusters.subarray(cur, n), cur);
      } else if (
        blob.useExtentTable &&
        cur > 0 &&
        blob.extentPages[Math.floor((cur - 1) / EXTENTS_PER_PAGE)] !== 0
      ) {
        // The last extent page now covers more clusters: rewrite it with the new count.
        blob.dirtyEps.add(Math.floor((cur - 1) / EXTENTS_PER_PAGE));
      }
    } else {
      for (let i = n; i < cur; i++) {
        if (blob.clusters[i] !== 0) {
          blob.freeClusters.push(blob.clusters[i]);
          blob.allocated--;
        }
        blob.clusters[i] = 0;
        blob.cmap.map[i] = 0;
      }
      while (blob.extentPages.length > eps) {
        const e = blob.extentPages.pop() as number;
        if (e !== 0) blob.freeEps.push(e);
        blob.dirtyEps.delete(blob.extentPages.length);
      }
      if (eps > 0 && blob.extentPages[eps - 1] !== 0) blob.dirtyEps.add(eps - 1);
    }
    blob.numClusters = n;
    blob.chainDirty = true;
  }

  /**
   * Resize an open blob (spdk_blob_resize + sync): I/O of the blob is held on every reactor while
   * its size changes, and the new size is on disk before `done`.
   */
  resizeBlob(blob: Blob, n: number, done: Done): void {
    if (blob.mdRo) {
      this.thread.sendMsg(() => done(new BlobError('EPERM', `blob 0x${blob.id.toString(16)} is read-only`)));
      return;
    }
    this.withLock(blob, done, (unlock) => {
      if (n === blob.numClusters) return unlock(null);
      this.freezeLocked(blob, (err) => {
        if (err !== null) return unlock(err);
        try {
          this.resizeNow(blob, n);
        } catch (e) {
          return unfreezeBlob(this.key, blob.id, [blob.descriptor()], () => unlock(e as BlobError));
        }
        persist(this, blob, (err2) => {
          unfreezeBlob(this.key, blob.id, [blob.descriptor()], (err3) => unlock(err2 ?? err3));
        });
      });
    });
  }

  /** Mark read-only (spdk_blob_set_read_only + sync); data and metadata read-only from then on. */
  setReadOnly(blob: Blob, done: Done): void {
    if (blob.dataRo) {
      this.thread.sendMsg(() => done(null));
      return;
    }
    this.withLock(blob, done, (unlock) => {
      blob.setReadOnlyFlag();
      persist(this, blob, (err) => {
        if (err !== null) return unlock(err);
        blob.dataRo = true;
        blob.mdRo = true;
        publishBlobs(this.key, [blob.descriptor()], [], unlock);
      });
    });
  }

  /**
   * @internal Run `f` holding the blob (no other locked operation, no thin allocation in flight);
   * `unlock(err)` releases it and reports to `done`.
   */
  withLock(blob: Blob, done: Done, f: (unlock: Done) => void): void {
    const go = () => {
      blob.locked = true;
      f((err) => {
        blob.locked = false;
        blob.checkIdle();
        done(err);
      });
    };
    blob.whenIdle(go);
  }

  /**
   * @internal Hold the blob's I/O on every reactor, from inside its lock (withLock), and wait for
   * the I/O in flight. That I/O may be waiting for a thin allocation, which the lock would hold
   * back: allocations run until the freeze is done. After it, no I/O is in
   * flight and none starts, so nothing allocates until `unfreezeBlob`.
   */
  freezeLocked(blob: Blob, done: Done): void {
    blob.allocWhileLocked = true;
    for (const h of blob.heldAllocs.splice(0)) h();
    freezeBlob(this.key, blob.id, (err) => {
      blob.allocWhileLocked = false;
      done(err);
    });
  }

  /** Delete a blob (spdk_bs_delete_blob); a snapshot with one clone merges into it first. */
  deleteBlob(id: number, done: Done): void {
    deleteBlob(this, id, done);
  }

  /** Snapshot blob `id` (spdk_bs_create_snapshot); `done(null, snapshotId)`. */
  createSnapshot(id: number, xattrs: Xattr[], done: DoneWith<number>): void {
    createSnapshot(this, id, xattrs, done);
  }

  /** Clone snapshot `id` (spdk_bs_create_clone); `done(null, cloneId)`. */
  createClone(id: number, xattrs: Xattr[], done: DoneWith<number>): void {
    createClone(this, id, xattrs, done);
  }

  /** Allocate every cluster and drop the snapshot below (spdk_bs_inflate_blob). */
  inflateBlob(id: number, done: Done): void {
    inflate(this, id, true, done);
  }

  /** Copy what the snapshot holds and read through its snapshot instead (spdk_bs_blob_decouple_parent). */
  decoupleParent(id: number, done: Done): void {
    inflate(this, id, false, done);
  }

  /** Clones of snapshot `id` (spdk_blob_get_clones). */
  clonesOf(id: number): number[] {
    return [...(this.clones.get(id) ?? [])];
  }

  /** @internal */
  addClone(parent: number, clone: number): void {
    let s = this.clones.get(parent);
    if (s === undefined) this.clones.set(parent, (s = new Set()));
    s.add(clone);
  }

  /** @internal */
  removeClone(parent: number, clone: number): void {
    const s = this.clones.get(parent);
    if (s === undefined) return;
    s.delete(clone);
    if (s.size === 0) this.clones.delete(parent);
  }

  /**
   * Take in a grown device (spdk_bs_grow_live): the blobstore's size and cluster count follow the
   * base bdev's, as far as the cluster mask's reserved pages reach (ENOSPC beyond). The new size is
   * in the super block before `done`; the longer mask is written at unload.
   */
  grow(done: Done): void {
    const devBytes = this.io.numBlocks * this.io.blockSize;
    if (devBytes <= this.size) {
      this.thread.sendMsg(() => done(null));
      return;
    }
    const total = Math.floor(devBytes / this.clusterSize);
    const maskLen = Math.ceil((MASK.BITS + Math.ceil(total / 8)) / PAGE_SIZE);
    if (maskLen > this.usedBlobidMaskStart - this.usedClusterMaskStart) {
      this.thread.sendMsg(() =>
        done(
          new BlobError(
            'ENOSPC',
            `the cluster mask has room for ${this.usedBlobidMaskStart - this.usedClusterMaskStart} pages, ${total} clusters need ${maskLen}`,
          ),
        ),
      );
      return;
    }
    const old = { size: this.size, total: this.totalClusters, len: this.usedClusterMaskLen };
    this.size = devBytes;
    this.totalClusters = total;
    this.usedClusterMaskLen = maskLen;
    this.io.writePages(0, encodeSuper(this.superBlock(false)), (err) => {
      if (err !== null) {
        this.size = old.size;
        this.totalClusters = old.total;
        this.usedClusterMaskLen = old.len;
        return done(err);
      }
      this.clean = false;
      this.usedClusters.resize(total);
      done(null);
    });
  }

  /** Set the super blob (spdk_bs_set_super): written to the super block now. */
  setSuper(id: number, done: Done): void {
    this.superBlob = id;
    this.io.writePages(0, encodeSuper(this.superBlock(this.clean)), done);
  }

  // ---- thin allocation (the metadata thread's end of requests from any reactor) -------------

  /** @internal allocate blob cluster `ci` of the blob at page `page` for a write */
  allocate(page: number, ci: number, done: (status: number) => void): void {
    const blob = this.open.get(pageToBlobId(page));
    if (blob === undefined) {
      done(-2);
      return;
    }
    if (blob.locked && !blob.allocWhileLocked) {
      blob.heldAllocs.push(() => this.allocate(page, ci, done));
      return;
    }
    if (ci >= blob.numClusters) {
      done(-22);
      return;
    }
    const pending = blob.allocs.get(ci);
    if (pending !== undefined) {
      pending.waiters.push(done);
      return;
    }
    if (blob.clusters[ci] !== 0) {
      // Allocated and on disk (published), or a write of an already persisted cluster raced us.
      if (blob.cmap.map[ci] === 0) blob.cmap.publish(ci, blob.clusters[ci]);
      done(0);
      return;
    }
    const c = this.claimCluster();
    if (c < 0) {
      done(-28);
      return;
    }
    let newEp = -1;
    const e = Math.floor(ci / EXTENTS_PER_PAGE);
    if (blob.useExtentTable && blob.extentPages[e] === 0) {
      newEp = this.claimExtentPage();
      if (newEp < 0) {
        this.releaseCluster(c);
        done(-28);
        return;
      }
      blob.extentPages[e] = newEp;
      blob.chainDirty = true;
    }
    const pa = { cluster: c, index: ci, waiters: [done], ready: false };
    blob.allocs.set(ci, pa);
    blob.clusters[ci] = c;
    blob.allocated++;
    if (blob.useExtentTable) blob.dirtyEps.add(e);
    else blob.chainDirty = true;
    copyForAlloc(this, blob, ci, c, (err) => {
      if (err !== null) {
        blob.allocs.delete(ci);
        blob.clusters[ci] = 0;
        blob.allocated--;
        this.releaseCluster(c);
        for (const w of pa.waiters) w(-5);
        blob.checkIdle();
        return;
      }
      pa.ready = true;
      persist(this, blob, (err2) => {
        blob.allocs.delete(ci);
        if (err2 === null) blob.cmap.publish(ci, c);
        else {
          blob.clusters[ci] = 0;
          blob.allocated--;
          this.releaseCluster(c);
        }
        for (const w of pa.waiters) w(err2 === null ? 0 : -5);
        blob.checkIdle();
      });
    });
  }
}

function defaultEsnapResolver(id: Uint8Array): string | null {
  const end = id.indexOf(0);
  const text = new TextDecoder().decode(end < 0 ? id : id.subarray(0, end));
  if (text === '') return null;
  if (bdevGetByName(text) !== undefined) return text;
  return bdevGetAll().find((b) => b.uuid === text.toLowerCase())?.name ?? null;
}

/** SPDK's layout of a new blobstore (spdk_bs_init). */
function layout(desc: BdevDesc, opts: BsInitOptions): { sb: SuperBlock } {
  const bs = desc.bdev.blockSize;
  const devBytes = desc.bdev.numBlocks * bs;
  const clusterSize = opts.clusterSize ?? 1024 * 1024;
  if (!Number.isSafeInteger(clusterSize) || clusterSize <= 0 || clusterSize % PAGE_SIZE !== 0)
    throw new BlobError('EINVAL', `cluster size ${clusterSize} is not a multiple of ${PAGE_SIZE}`);
  if (PAGE_SIZE % bs !== 0) throw new BlobError('EINVAL', `block size ${bs} does not divide a 4 KiB page`);
  if (devBytes < clusterSize)
    throw new BlobError('ENOSPC', `device of ${devBytes} bytes is smaller than a cluster (${clusterSize})`);
  const totalClusters = Math.floor(desc.bdev.numBlocks / (clusterSize / bs));
  const mdLen = opts.numMdPages ?? totalClusters;
  if (!Number.isSafeInteger(mdLen) || mdLen < 1) throw new BlobError('EINVAL', `metadata pages ${mdLen}`);
  const maskPages = (bits: number) => Math.ceil((MASK.BITS + Math.ceil(bits / 8)) / PAGE_SIZE);
  let next = 1;
  const usedPageMaskStart = next;
  const usedPageMaskLen = maskPages(mdLen);
  next += usedPageMaskLen;
  const usedClusterMaskStart = next;
  const usedClusterMaskLen = maskPages(totalClusters);
  // Room for the cluster mask of a device grown up to as many clusters as metadata pages.
  next += Math.max(maskPages(mdLen), usedClusterMaskLen);
  const usedBlobidMaskStart = next;
  const usedBlobidMaskLen = maskPages(mdLen);
  next += usedBlobidMaskLen;
  const mdStart = next;
  const mdClusters = Math.ceil((mdStart + mdLen) / (clusterSize / PAGE_SIZE));
  if (mdClusters > totalClusters)
    throw new BlobError(
      'ENOMEM',
      'the metadata would take more clusters than the device has: use fewer metadata pages or larger clusters',
    );
  const bstype = opts.bstype ?? '';
  if (new TextEncoder().encode(bstype).length > 16)
    throw new BlobError('EINVAL', `bstype "${bstype}" is over 16 bytes`);
  return {
    sb: {
      version: VERSION,
      clean: false,
      superBlob: BLOBID_INVALID,
      clusterSize,
      usedPageMaskStart,
      usedPageMaskLen,
      usedClusterMaskStart,
      usedClusterMaskLen,
      mdStart,
      mdLen,
      bstype,
      usedBlobidMaskStart,
      usedBlobidMaskLen,
      size: devBytes,
      ioUnitSize: bs,
    },
  };
}

export { XattrName };
