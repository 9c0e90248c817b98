// What every reactor knows of a blobstore and its open blobs, for I/O: the store's geometry and
// base device, and per blob its cluster map (shared memory), size, flags and parent. The metadata
// thread owns the blobstore and is the only one that changes these; it tells the other reactors
// through named global walks (one per change), and each reactor's copy is changed on that reactor.
// In the test harness every reactor shares one isolate and so one copy: the walks then visit the
// same objects once per reactor, which is why every step is idempotent or balanced.
import { type BdevDesc, bdevClose, bdevGetIoChannel, bdevOpenExt } from '@storkit/bdev';
import {
  type ChannelIter,
  codec,
  defineChannelIterator,
  defineHandler,
  forEachChannelGlobal,
  getIoChannel,
  getThread,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
  send,
  type Thread,
  type ThreadRef,
} from '@storkit/reactor';
import { BlobChannel } from './channel.js';
import { ClusterMap } from './cluster-map.js';
import { BlobError } from './errors.js';

/** A blob as I/O sees it: plain JSON, so it can travel to every reactor. */
export interface BlobDescriptor {
  id: number;
  /** The cluster map's region handle. */
  map: number;
  numClusters: number;
  thin: boolean;
  readOnly: boolean;
  /** The snapshot it reads unallocated clusters from, or -1. */
  parent: number;
  /** A clone of an external snapshot: the bdev it reads unallocated clusters from, else ''. */
  esnap: string;
}

/** A blobstore as I/O sees it. */
export interface StoreDescriptor {
  key: number;
  /** Blocks of the base device per cluster. */
  clusterBlocks: number;
  blockSize: number;
  /** The metadata thread (thin allocations are asked of it). */
  md: ThreadRef;
  /** The base bdev's name (each reactor opens its own descriptor). */
  base: string;
}

/** One reactor's view of an open blob. */
export class BlobView {
  readonly store: StoreView;
  readonly id: number;
  cmap: ClusterMap;
  map: Uint32Array;
  numClusters: number;
  thin: boolean;
  readOnly: boolean;
  parentId: number;
  parent: BlobView | null = null;
  /** The external snapshot's bdev ('' for none) and each thread's descriptor of it (opened on first use). */
  esnap: string;
  readonly esnapDescs = new Map<Thread, BdevDesc>();
  /** Freezes in progress (new I/O waits on the channel). */
  frozen = 0;
  /** I/O of this blob in flight on this reactor. */
  inflight = 0;
  /** @internal run when inflight drops to 0 */ drained: (() => void)[] = [];

  constructor(store: StoreView, d: BlobDescriptor, cmap: ClusterMap) {
    this.store = store;
    this.id = d.id;
    this.cmap = cmap;
    this.map = cmap.map;
    this.numClusters = d.numClusters;
    this.thin = d.thin;
    this.readOnly = d.readOnly;
    this.parentId = d.parent;
    this.esnap = d.esnap;
  }

  /** @internal this reactor's read-only descriptor of the external snapshot (throws if it is gone) */
  esnapOpen(): BdevDesc {
    const t = getThread() as Thread;
    let d = this.esnapDescs.get(t);
    if (d === undefined) {
      d = bdevOpenExt(this.esnap, false, () => {});
      this.esnapDescs.set(t, d);
    }
    return d;
  }

  /** @internal close every thread's descriptor, each on its own thread */
  esnapClose(): void {
    for (const [t, d] of this.esnapDescs) {
      if (t === getThread()) bdevClose(d);
      else t.sendMsg(bdevClose, d);
    }
    this.esnapDescs.clear();
  }

  /** Blocks the blob spans. */
  get numBlocks(): number {
    return this.numClusters * this.store.clusterBlocks;
  }

  /** @internal */
  apply(d: BlobDescriptor): void {
    if (d.map !== this.cmap.handle) {
      const old = this.cmap;
      this.cmap = this.store.mapFor(d.map);
      this.map = this.cmap.map;
      this.store.releaseMap(old);
    }
    this.numClusters = d.numClusters;
    this.thin = d.thin;
    this.readOnly = d.readOnly;
    this.parentId = d.parent;
    if (d.esnap !== this.esnap) this.esnapClose();
    this.esnap = d.esnap;
  }

  /** @internal one I/O of this blob finished on this reactor */
  done(): void {
    if (--this.inflight === 0 && this.drained.length > 0) {
      const ws = this.drained.splice(0);
      for (const w of ws) w();
    }
  }
}

/** One reactor's view of a blobstore: its open blobs and its base descriptor there. */
export class StoreView {
  readonly key: number;
  readonly clusterBlocks: number;
  /** log2(clusterBlocks), or -1 when it is not a power of two. */
  readonly clusterShift: number;
  readonly blockSize: number;
  readonly md: ThreadRef;
  readonly base: string;
  /** This reactor's descriptor of the base (null until the base is there). */
  desc: BdevDesc | null = null;
  readonly blobs = new Map<number, BlobView>();
  /** @internal this isolate's channels of the store, by thread */
  readonly channels = new Map<Thread, BlobChannel>();
  /** Maps this worker holds: the owner's (in the md isolate) or attached views, shared by views. */
  readonly #maps = new Map<number, { cmap: ClusterMap; refs: number; owned: boolean }>();
  readonly device: object = {};
  #closed = false;

  constructor(d: StoreDescriptor) {
    this.key = d.key;
    this.clusterBlocks = d.clusterBlocks;
    this.clusterShift = Number.isInteger(Math.log2(d.clusterBlocks)) ? Math.log2(d.clusterBlocks) : -1;
    this.blockSize = d.blockSize;
    this.md = d.md;
    this.base = d.base;
  }

  /** Give this reactor's base descriptor: channels (and so I/O) become possible here. */
  bind(desc: BdevDesc): void {
    if (this.desc !== null) return;
    this.desc = desc;
    ioDeviceRegister<BlobChannel>(this.device, {
      name: deviceName(this.key),
      create: (ch) => new BlobChannel(this, bdevGetIoChannel(desc), ch.thread),
      destroy: (ch) => ch.ctx.destroy(),
    });
  }

  get bound(): boolean {
    return this.desc !== null;
  }

  get descriptor(): StoreDescriptor {
    return {
      key: this.key,
      clusterBlocks: this.clusterBlocks,
      blockSize: this.blockSize,
      md: this.md,
      base: this.base,
    };
  }

  /** The I/O channel of this store on the current thread (put() it when done). */
  getChannel(): IoChannel<BlobChannel> {
    return getIoChannel<BlobChannel>(this.device);
  }

  /** @internal a map this worker owns (made by the metadata thread here) */
  adoptMap(cmap: ClusterMap): void {
    const e = this.#maps.get(cmap.handle);
    if (e) e.refs++;
    else this.#maps.set(cmap.handle, { cmap, refs: 1, owned: true });
  }

  /** @internal */
  mapFor(handle: number): ClusterMap {
    let e = this.#maps.get(handle);
    if (e === undefined) {
      e = { cmap: ClusterMap.attach(handle), refs: 0, owned: false };
      this.#maps.set(handle, e);
    }
    e.refs++;
    return e.cmap;
  }

  /** @internal */
  releaseMap(cmap: ClusterMap): void {
    const e = this.#maps.get(cmap.handle);
    if (e === undefined) return;
    if (--e.refs <= 0) {
      this.#maps.delete(cmap.handle);
      cmap.close();
    }
  }

  /** Apply descriptors: add new blobs, update known ones, then link parents. */
  applyBlobs(list: readonly BlobDescriptor[]): void {
    for (const d of list) {
      const v = this.blobs.get(d.id);
      if (v === undefined) this.blobs.set(d.id, new BlobView(this, d, this.mapFor(d.map)));
      else v.apply(d);
    }
    this.linkParents();
  }

  /** Forget blobs (closed by the metadata thread). */
  dropBlobs(ids: readonly number[]): void {
    for (const id of ids) {
      const v = this.blobs.get(id);
      if (v === undefined) continue;
      this.blobs.delete(id);
      v.esnapClose();
      this.releaseMap(v.cmap);
    }
    this.linkParents();
  }

  linkParents(): void {
    for (const v of this.blobs.values())
      v.parent = v.parentId < 0 ? null : (this.blobs.get(v.parentId) ?? null);
  }

  /** Drop every view and the io_device; `done` once the channels are gone. */
  close(done: () => void): void {
    if (this.#closed) {
      done();
      return;
    }
    this.#closed = true;
    stores.delete(this.key);
    const release = () => {
      for (const v of this.blobs.values()) {
        v.esnapClose();
        this.releaseMap(v.cmap);
      }
      this.blobs.clear();
      for (const e of this.#maps.values()) if (!e.owned) e.cmap.close();
      this.#maps.clear();
      done();
    };
    if (this.desc === null) getThread()?.sendMsg(release);
    else ioDeviceUnregister(this.device, release);
  }
}

const stores = new Map<number, StoreView>();

export function deviceName(key: number): string {
  return `blobstore/${key}`;
}

/** This isolate's view of store `key`, if it has one. */
export function storeView(key: number): StoreView | undefined {
  return stores.get(key);
}

/**
 * Make this reactor's view of a blobstore, with `blobs` open; `bind(desc)` it to this reactor's
 * descriptor of the base for I/O. Idempotent: the isolate's existing view is returned (the
 * harness's reactors share one).
 */
export function openStoreView(d: StoreDescriptor, blobs: readonly BlobDescriptor[]): StoreView {
  let s = stores.get(d.key);
  if (s === undefined) {
    s = new StoreView(d);
    stores.set(d.key, s);
  }
  s.applyBlobs(blobs);
  return s;
}

// ---- walks: the metadata thread changing every reactor's view --------------------------------

interface UpdateArg {
  key: number;
  blobs: BlobDescriptor[];
  drop: number[];
}

const updateIter = defineChannelIterator<UpdateArg>(
  'blob.update',
  (it) => it.continue(0),
  (a) => {
    const s = stores.get(a.key);
    if (s === undefined) return;
    s.applyBlobs(a.blobs);
    s.dropBlobs(a.drop);
  },
);

interface FreezeArg {
  key: number;
  id: number;
  /** Descriptors to apply on unfreeze (the change the freeze protected). */
  blobs: BlobDescriptor[];
}

const freezeIter = defineChannelIterator<FreezeArg>(
  'blob.freeze',
  (it: ChannelIter<unknown, FreezeArg>) => {
    const s = stores.get(it.arg.key);
    const v = s?.blobs.get(it.arg.id);
    if (v === undefined || v.inflight === 0) {
      it.continue(0);
      return;
    }
    v.drained.push(() => it.continue(0));
  },
  (a) => {
    const v = stores.get(a.key)?.blobs.get(a.id);
    if (v !== undefined) v.frozen++;
  },
);

const unfreezeIter = defineChannelIterator<FreezeArg>(
  'blob.unfreeze',
  (it: ChannelIter<unknown, FreezeArg>) => {
    (it.ctx as BlobChannel).resumeFrozen(it.arg.id);
    it.continue(0);
  },
  (a) => {
    const s = stores.get(a.key);
    if (s === undefined) return;
    s.applyBlobs(a.blobs);
    const v = s.blobs.get(a.id);
    if (v !== undefined && v.frozen > 0) v.frozen--;
  },
);

function walk<A>(
  key: number,
  it: Parameters<typeof forEachChannelGlobal<A>>[1],
  arg: A,
  done: (err: BlobError | null) => void,
): void {
  forEachChannelGlobal(deviceName(key), it, arg, (status) =>
    done(
      status === 0 ? null : new BlobError('EIO', `blobstore walk ${it.name} stopped with status ${status}`),
    ),
  );
}

/** Tell every reactor about new or changed blobs, and blobs no longer open. */
export function publishBlobs(
  key: number,
  blobs: BlobDescriptor[],
  drop: number[],
  done: (err: BlobError | null) => void,
): void {
  walk(key, updateIter, { key, blobs, drop }, done);
}

/** Stop new I/O of blob `id` on every reactor and wait until its I/O in flight is done. */
export function freezeBlob(key: number, id: number, done: (err: BlobError | null) => void): void {
  walk(key, freezeIter, { key, id, blobs: [] }, done);
}

/** Apply `blobs`, then let blob `id`'s I/O go again on every reactor (held-back I/O first). */
export function unfreezeBlob(
  key: number,
  id: number,
  blobs: BlobDescriptor[],
  done: (err: BlobError | null) => void,
): void {
  walk(key, unfreezeIter, { key, id, blobs }, done);
}

// ---- thin allocations: any reactor asks the metadata thread ----------------------------------

const AllocReq = codec.struct('blob.alloc', {
  key: 'u32',
  blob: 'u32',
  cluster: 'u32',
  reactor: 'u32',
  thread: 'u32',
  token: 'u32',
});
const AllocDone = codec.struct('blob.allocDone', { key: 'u32', token: 'u32', status: 'i32' });

/** The metadata side of a blobstore (set by the Blobstore when it opens in this isolate). */
export interface AllocService {
  /** Make blob cluster `cluster` of blob page `page` allocated and persisted; then done(0 | -errno). */
  allocate(page: number, cluster: number, done: (status: number) => void): void;
}
const services = new Map<number, AllocService>();

/** @internal */
export function setAllocService(key: number, s: AllocService | null): void {
  if (s === null) services.delete(key);
  else services.set(key, s);
}

/** @internal the metadata thread's end of an allocation request */
export const allocHandler = defineHandler('blob.alloc', AllocReq, (r) => {
  const reply: ThreadRef = { id: r.thread, reactor: r.reactor };
  const key = r.key;
  const token = r.token;
  const svc = services.get(key);
  if (svc === undefined) {
    sendDone(reply, key, token, -19);
    return;
  }
  svc.allocate(r.blob, r.cluster, (status) => sendDone(reply, key, token, status));
});

function sendDone(to: ThreadRef, key: number, token: number, status: number): void {
  send(to, allocDoneHandler, { key, token, status });
}

/** @internal the requesting thread's end */
export const allocDoneHandler = defineHandler('blob.allocDone', AllocDone, (r) => {
  const t = getThread();
  const ch = t === null ? undefined : stores.get(r.key)?.channels.get(t);
  ch?.allocDone(r.token, r.status);
});

/** @internal ask the metadata thread of `s` to allocate; the answer reaches `ch` */
export function requestAlloc(
  s: StoreView,
  ch: BlobChannel,
  blob: number,
  cluster: number,
  token: number,
): void {
  send(s.md, allocHandler, {
    key: s.key,
    blob,
    cluster,
    reactor: ch.thread.reactor,
    thread: ch.thread.id,
    token,
  });
}
