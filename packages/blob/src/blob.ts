// A blob as the metadata thread holds it (spdk_blob): its persistent metadata, its clean copy (what
// is on disk), the clusters to release once the next persist is on disk, and its shared map.
import { ClusterMap } from './cluster-map.js';
import { BlobError } from './errors.js';
import type { BlobMd, Xattr } from './format/blob-md.js';
import {
  DataRoFlag,
  EXTENTS_PER_PAGE,
  InvalidFlag,
  MD_RO_CLEAR_METHOD_MASK,
  XattrName,
} from './format/layout.js';
import type { BlobDescriptor } from './views.js';

/** How freed clusters are cleared (SPDK's blob_clear_method, stored in md_ro_flags bits 0-1). */
export const ClearMethod = { DEFAULT: 0, NONE: 1, UNMAP: 2, WRITE_ZEROES: 3 } as const;
export type ClearMethod = (typeof ClearMethod)[keyof typeof ClearMethod];

/** An allocation waiting for the metadata that maps it to reach the disk. */
export interface PendingAlloc {
  cluster: number;
  index: number;
  waiters: ((status: number) => void)[];
  /** Copied from the snapshot chain (or nothing to copy) and ready to persist. */
  ready: boolean;
}

export class Blob {
  readonly id: number;
  readonly page: number;
  openRef = 0;
  invalidFlags = 0n;
  dataRoFlags = 0n;
  mdRoFlags = 0n;
  /** Data read-only (a snapshot, or set read-only). */
  dataRo = false;
  /** Metadata read-only (unknown flags, or data read-only). */
  mdRo = false;
  xattrs: Xattr[] = [];
  internalXattrs: Xattr[] = [];
  useExtentTable = true;
  /** The metadata thread's map (the truth; `cmap` is what I/O sees, published after persist). */
  clusters: Uint32Array;
  numClusters = 0;
  /** Allocated clusters. */
  allocated = 0;
  extentPages: number[] = [];
  /** The metadata chain, root first. */
  mdPages: number[];
  parentId = -1;
  clearMethod: ClearMethod = ClearMethod.DEFAULT;
  cmap: ClusterMap;

  /** On-disk state. */
  clean: { mdPages: number[]; numClusters: number; extentPages: number[] };
  /** The chain must be rewritten on the next persist. */
  chainDirty = true;
  /** Extent pages to write on the next persist. */
  readonly dirtyEps = new Set<number>();
  /** Released once the next persist is on disk. */
  freeClusters: number[] = [];
  freeEps: number[] = [];
  /** Delete in progress: the next persist zeroes the chain. */
  deleting = false;

  /** A snapshot/resize/inflate/delete holds the blob. */
  locked = false;
  /** Thin allocations in progress (claimed, not yet published). */
  readonly allocs = new Map<number, PendingAlloc>();
  /** Work waiting for the lock to drop and the allocations to finish. */
  idleWaiters: (() => void)[] = [];
  /** Allocation requests held while locked. */
  heldAllocs: (() => void)[] = [];
  /**
   * Set while the lock holder waits for a freeze: the I/O the freeze waits for may need clusters,
   * so allocations run instead of being held (held, they would never let the freeze finish).
   */
  allocWhileLocked = false;
  persisting = false;
  persistQueue: ((err: BlobError | null) => void)[] = [];

  constructor(id: number, page: number, capacity: number) {
    this.id = id;
    this.page = page;
    this.mdPages = [page];
    this.clusters = new Uint32Array(Math.max(16, capacity));
    this.cmap = ClusterMap.create(Math.max(16, capacity));
    this.clean = { mdPages: [], numClusters: 0, extentPages: [] };
  }

  /**
   * The external snapshot's id (the EXTSNAP internal xattr) of a clone of an external snapshot
   * (invalid flag EXTERNAL_SNAPSHOT), else null.
   */
  get esnapId(): Uint8Array | null {
    if ((this.invalidFlags & InvalidFlag.EXTERNAL_SNAPSHOT) === 0n) return null;
    return this.getXattr(XattrName.EXTERNAL_SNAPSHOT_ID, true) ?? null;
  }

  /** The bdev reads of unallocated clusters go to (set by the blobstore's resolver at open). */
  esnapBdev = '';

  get thin(): boolean {
    return (this.invalidFlags & InvalidFlag.THIN_PROV) !== 0n;
  }

  get readOnly(): boolean {
    return this.dataRo || this.mdRo;
  }

  get numExtentPages(): number {
    return this.useExtentTable ? Math.ceil(this.numClusters / EXTENTS_PER_PAGE) : 0;
  }

  /** What the serializer needs. */
  md(): BlobMd {
    return {
      id: this.id,
      invalidFlags: this.invalidFlags,
      dataRoFlags: this.dataRoFlags,
      mdRoFlags: this.mdRoFlags,
      xattrs: this.xattrs,
      internalXattrs: this.internalXattrs,
      useExtentTable: this.useExtentTable,
      numClusters: this.numClusters,
      clusters: this.clusters,
      numExtentPages: this.numExtentPages,
      extentPages: this.extentPages,
    };
  }

  descriptor(): BlobDescriptor {
    return {
      id: this.id,
      map: this.cmap.handle,
      numClusters: this.numClusters,
      thin: this.thin,
      readOnly: this.readOnly,
      parent: this.parentId,
      esnap: this.esnapBdev,
    };
  }

  /**
   * Grow the md map, and make a new shared map when it no longer fits: returns the one it
   * replaced (the caller moves its references and publishes the new one), else null.
   */
  ensureCapacity(n: number): ClusterMap | null {
    if (n > this.clusters.length) {
      const c = new Uint32Array(Math.max(n, this.clusters.length * 2));
      c.set(this.clusters);
      this.clusters = c;
    }
    if (n > this.cmap.capacity) {
      const old = this.cmap;
      const m = ClusterMap.create(Math.max(n, this.cmap.capacity * 2));
      m.map.set(old.map.subarray(0, Math.min(old.capacity, m.capacity)));
      this.cmap = m;
      return old;
    }
    return null;
  }

  getXattr(name: string, internal = false): Uint8Array | undefined {
    return (internal ? this.internalXattrs : this.xattrs).find((x) => x.name === name)?.value;
  }

  setXattr(name: string, value: Uint8Array, internal = false): void {
    if (this.mdRo) throw new BlobError('EPERM', `blob 0x${this.id.toString(16)} is read-only`);
    if (5 + 4 + new TextEncoder().encode(name).length + value.length > 4072)
      throw new BlobError('ENOMEM', `xattr ${name} of ${value.length} bytes does not fit a metadata page`);
    const list = internal ? this.internalXattrs : this.xattrs;
    if (internal) this.invalidFlags |= InvalidFlag.INTERNAL_XATTR;
    const x = list.find((e) => e.name === name);
    if (x) x.value = value.slice();
    else list.push({ name, value: value.slice() });
    this.chainDirty = true;
  }

  removeXattr(name: string, internal = false): boolean {
    if (this.mdRo) throw new BlobError('EPERM', `blob 0x${this.id.toString(16)} is read-only`);
    const list = internal ? this.internalXattrs : this.xattrs;
    const i = list.findIndex((e) => e.name === name);
    if (i < 0) return false;
    list.splice(i, 1);
    if (internal && list.length === 0) this.invalidFlags &= ~InvalidFlag.INTERNAL_XATTR;
    this.chainDirty = true;
    return true;
  }

  setThin(): void {
    this.invalidFlags |= InvalidFlag.THIN_PROV;
    this.chainDirty = true;
  }

  setClearMethod(m: ClearMethod): void {
    this.clearMethod = m;
    this.mdRoFlags |= BigInt(m);
    this.chainDirty = true;
  }

  setReadOnlyFlag(): void {
    this.dataRoFlags |= DataRoFlag.READ_ONLY;
    this.chainDirty = true;
  }

  /** The clear method stored in the metadata. */
  get storedClearMethod(): ClearMethod {
    return Number(this.mdRoFlags & MD_RO_CLEAR_METHOD_MASK) as ClearMethod;
  }

  /** Whether nothing holds it: no lock, no allocation in progress. */
  get idle(): boolean {
    return !this.locked && this.allocs.size === 0;
  }

  whenIdle(f: () => void): void {
    if (this.idle) f();
    else this.idleWaiters.push(f);
  }

  /** @internal called when the lock drops or an allocation ends */
  checkIdle(): void {
    if (!this.idle) return;
    const ws = this.idleWaiters.splice(0);
    for (const w of ws) {
      w();
      if (!this.idle) {
        // The waiter took the blob again: the others wait for it.
        this.idleWaiters.unshift(...ws.slice(ws.indexOf(w) + 1));
        return;
      }
    }
    if (!this.locked) {
      const held = this.heldAllocs.splice(0);
      for (const h of held) h();
    }
  }
}
