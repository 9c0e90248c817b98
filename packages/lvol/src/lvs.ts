// An lvstore (spdk_lvol_store) and its lvols (spdk_lvol), on the blobstore's metadata thread:
// what SPDK's lib/lvol keeps on disk (the super blob's "uuid" and "name", each lvol blob's "name"
// and "uuid"), and the lvol operations on top of the blobstore's. Every lvol's blob stays open
// while the lvstore is loaded (its view is on every reactor).
import type { BdevDesc } from '@storkit/bdev';
import {
  type Blob,
  type BlobError,
  Blobstore,
  ClearMethod,
  type Done,
  type DoneWith,
  pageToBlobId,
  type Xattr,
} from '@storkit/blob';
import { LvolError } from './errors.js';
import { BSTYPE, checkName, cstr, DEFAULT_CLUSTER_SIZE, isUuid, nameField, newUuid, text } from './names.js';

export type ClearMethodName = 'none' | 'unmap' | 'write_zeroes';

export function clearMethodOf(name: string | undefined): ClearMethod {
  switch (name) {
    case undefined:
      return ClearMethod.DEFAULT;
    case 'none':
      return ClearMethod.NONE;
    case 'unmap':
      return ClearMethod.UNMAP;
    case 'write_zeroes':
      return ClearMethod.WRITE_ZEROES;
    default:
      throw new LvolError('EINVAL', `clear method "${name}" (none, unmap or write_zeroes)`);
  }
}

export class Lvol {
  readonly lvs: Lvs;
  readonly uuid: string;
  name: string;
  readonly blob: Blob;

  constructor(lvs: Lvs, uuid: string, name: string, blob: Blob) {
    this.lvs = lvs;
    this.uuid = uuid;
    this.name = name;
    this.blob = blob;
  }

  /** The lvol's bdev name (SPDK's unique_id: the UUID). */
  get bdevName(): string {
    return this.uuid;
  }

  get alias(): string {
    return `${this.lvs.name}/${this.name}`;
  }

  get thin(): boolean {
    return this.blob.thin;
  }

  /** A snapshot (spdk_blob_is_snapshot: in the blobstore's snapshot list). */
  get isSnapshot(): boolean {
    return this.lvs.bs.clones.has(this.blob.id);
  }

  /** A clone (spdk_blob_is_clone: it reads through a snapshot). */
  get isClone(): boolean {
    return this.blob.parentId >= 0;
  }

  get parent(): Lvol | undefined {
    return this.blob.parentId >= 0 ? this.lvs.byBlob(this.blob.parentId) : undefined;
  }

  get clones(): Lvol[] {
    return this.lvs.bs
      .clonesOf(this.blob.id)
      .map((id) => this.lvs.byBlob(id))
      .filter((l): l is Lvol => l !== undefined);
  }

  get numBlocks(): number {
    return (this.blob.numClusters * this.lvs.bs.clusterSize) / this.lvs.blockSize;
  }
}

export interface LvsInitOptions {
  name: string;
  clusterSize?: number;
  clearMethod?: ClearMethodName;
  /** Metadata pages per 100 clusters (SPDK's num_md_pages_per_cluster_ratio; default 100). */
  mdPagesPerClusterRatio?: number;
}

export class Lvs {
  readonly bs: Blobstore;
  readonly uuid: string;
  name: string;
  readonly base: string;
  readonly lvols = new Map<string, Lvol>();
  /** Blobs that did not become lvols at load (SPDK skips them too). */
  readonly problems: { blob: number; message: string }[] = [];

  private constructor(bs: Blobstore, uuid: string, name: string, base: string) {
    this.bs = bs;
    this.uuid = uuid;
    this.name = name;
    this.base = base;
  }

  get blockSize(): number {
    return this.bs.view.blockSize;
  }

  byBlob(id: number): Lvol | undefined {
    for (const l of this.lvols.values()) if (l.blob.id === id) return l;
    return undefined;
  }

  byName(name: string): Lvol | undefined {
    for (const l of this.lvols.values()) if (l.name === name) return l;
    return undefined;
  }

  /**
   * A new lvstore on the bdev behind `desc` (spdk_lvs_init): a blobstore of type LVOLSTORE, and
   * its super blob with the lvstore's uuid and name.
   */
  static init(desc: BdevDesc, o: LvsInitOptions, done: DoneWith<Lvs | null>): void {
    const clusterSize = o.clusterSize ?? DEFAULT_CLUSTER_SIZE;
    const ratio = o.mdPagesPerClusterRatio ?? 100;
    let clusters: number;
    try {
      checkName('lvstore', o.name);
      clearMethodOf(o.clearMethod);
      if (!Number.isSafeInteger(ratio) || ratio < 1 || ratio > 1000)
        throw new LvolError('EINVAL', `num_md_pages_per_cluster_ratio ${ratio} (1 to 1000)`);
      clusters = Math.floor((desc.bdev.numBlocks * desc.bdev.blockSize) / clusterSize);
    } catch (e) {
      desc.thread.sendMsg(() => done(e as LvolError, null));
      return;
    }
    Blobstore.init(
      desc,
      {
        clusterSize,
        bstype: BSTYPE,
        numMdPages: Math.floor((clusters * ratio) / 100),
        clearMethod: o.clearMethod ?? 'unmap',
      },
      (err, bs) => {
        if (err !== null || bs === null) return done(err, null);
        const uuid = newUuid();
        bs.createBlob({}, (e1, id) => {
          if (e1 !== null) return bs.unload(() => done(e1, null));
          bs.openBlob(id, (e2, sb) => {
            if (e2 !== null || sb === null) return bs.unload(() => done(e2, null));
            sb.setXattr('uuid', cstr(uuid));
            sb.setXattr('name', cstr(o.name));
            bs.closeBlob(sb, (e3) => {
              if (e3 !== null) return bs.unload(() => done(e3, null));
              bs.setSuper(id, (e4) => {
                if (e4 !== null) return bs.unload(() => done(e4, null));
                done(null, new Lvs(bs, uuid, o.name, desc.bdev.name));
              });
            });
          });
        });
      },
    );
  }

  /**
   * Load the lvstore on the bdev behind `desc` (spdk_lvs_load): the blobstore, the super blob's
   * uuid and name, then every other blob as an lvol (opened; one without a name is skipped).
   */
  static load(desc: BdevDesc, done: DoneWith<Lvs | null>): void {
    Blobstore.load(desc, { bstype: BSTYPE }, (err, bs) => {
      if (err !== null || bs === null) return done(err, null);
      if (bs.superBlob < 0)
        return bs.unload(() =>
          done(new LvolError('EINVAL', 'the blobstore has no super blob (not an lvstore)'), null),
        );
      bs.openBlob(bs.superBlob, (e1, sb) => {
        if (e1 !== null || sb === null)
          return bs.abandon(() => done(LvolError.from(e1, 'lvstore super blob'), null));
        const uuid = text(sb.getXattr('uuid'));
        const name = text(sb.getXattr('name'));
        bs.closeBlob(sb, () => {
          if (uuid === undefined || !isUuid(uuid) || name === undefined || name === '')
            return bs.abandon(() =>
              done(new LvolError('EILSEQ', 'the lvstore super blob has no valid uuid or name'), null),
            );
          const lvs = new Lvs(bs, uuid.toLowerCase(), name, desc.bdev.name);
          for (const p of bs.problems) lvs.problems.push({ blob: p.id, message: p.error.message });
          lvs.#openAll(
            bs.blobIds().filter((id) => id !== bs.superBlob),
            0,
            () => done(null, lvs),
          );
        });
      });
    });
  }

  #openAll(ids: number[], i: number, done: () => void): void {
    if (i >= ids.length) {
      done();
      return;
    }
    const id = ids[i];
    if (this.problems.some((p) => p.blob === id)) {
      this.#openAll(ids, i + 1, done);
      return;
    }
    this.#openOne(id, () => this.#openAll(ids, i + 1, done));
  }

  /** Open blob `id` as an lvol; a blob that does not is listed in `problems`. */
  #openOne(id: number, done: (l: Lvol | null) => void): void {
    this.bs.openBlob(id, (err, blob) => {
      if (err !== null || blob === null) {
        this.problems.push({ blob: id, message: err?.message ?? 'does not open' });
        return done(null);
      }
      const name = text(blob.getXattr('name'));
      const uuidRaw = text(blob.getXattr('uuid'));
      if (name === undefined || name === '') {
        this.problems.push({ blob: id, message: 'an lvol blob without a name' });
        return this.bs.closeBlob(blob, () => done(null));
      }
      // Lvols made before SPDK stored uuids are named by the lvstore's uuid and the blob id.
      const uuid = uuidRaw !== undefined && isUuid(uuidRaw) ? uuidRaw.toLowerCase() : `${this.uuid}_${id}`;
      const l = new Lvol(this, uuid, name, blob);
      this.lvols.set(uuid, l);
      done(l);
    });
  }

  /**
   * Open an esnap clone skipped at load because its external bdev was not there (SPDK's
   * spdk_lvs_notify_hotplug): now that it is, the lvol comes in like any other.
   */
  openLate(id: number, done: (l: Lvol | null, message: string) => void): void {
    const before = this.problems.filter((p) => p.blob === id);
    for (const p of before) this.problems.splice(this.problems.indexOf(p), 1);
    this.#openOne(id, (l) =>
      done(l, l === null ? (this.problems.find((p) => p.blob === id)?.message ?? '') : ''),
    );
  }

  #xattrs(name: string, uuid: string): Xattr[] {
    return [
      { name: 'name', value: nameField(name) },
      { name: 'uuid', value: cstr(uuid) },
    ];
  }

  #newName(name: string): void {
    checkName('lvol', name);
    if (this.byName(name) !== undefined) throw new LvolError('EEXIST', `lvol ${this.name}/${name} exists`);
  }

  #fail<T>(e: unknown, done: DoneWith<T | null>): void {
    const err = e instanceof Error ? e : new Error(String(e));
    this.bs.thread.sendMsg(() => done(err as LvolError, null));
  }

  #adopt(id: number, name: string, uuid: string, done: DoneWith<Lvol | null>): void {
    this.bs.openBlob(id, (err, blob) => {
      if (err !== null || blob === null) return done(err, null);
      const l = new Lvol(this, uuid, name, blob);
      this.lvols.set(uuid, l);
      done(null, l);
    });
  }

  /** Create an lvol (spdk_lvol_create): `bytes` rounded up to whole clusters. */
  createLvol(
    name: string,
    bytes: number,
    thin: boolean,
    clear: ClearMethodName | undefined,
    done: DoneWith<Lvol | null>,
  ): void {
    let clusters: number;
    let cm: ClearMethod;
    try {
      this.#newName(name);
      cm = clearMethodOf(clear);
      if (!Number.isSafeInteger(bytes) || bytes < 0) throw new LvolError('EINVAL', `size ${bytes}`);
      clusters = Math.ceil(bytes / this.bs.clusterSize);
    } catch (e) {
      this.#fail(e, done);
      return;
    }
    const uuid = newUuid();
    this.bs.createBlob(
      { numClusters: clusters, thin, clearMethod: cm, xattrs: this.#xattrs(name, uuid) },
      (err, id) => {
        if (err !== null) return done(err, null);
        this.#adopt(id, name, uuid, done);
      },
    );
  }

  /** Snapshot an lvol (spdk_lvol_create_snapshot). */
  snapshot(lvol: Lvol, name: string, done: DoneWith<Lvol | null>): void {
    this.#derive(name, done, (xattrs, cb) => this.bs.createSnapshot(lvol.blob.id, xattrs, cb));
  }

  /** Clone a snapshot (spdk_lvol_create_clone). */
  clone(snap: Lvol, name: string, done: DoneWith<Lvol | null>): void {
    this.#derive(name, done, (xattrs, cb) => this.bs.createClone(snap.blob.id, xattrs, cb));
  }

  /**
   * A clone of the bdev `esnapUuid` (spdk_lvol_create_esnap_clone): a thin lvol of `bytes` (whole
   * clusters) whose blob stores the bdev's UUID as NUL-terminated text in its EXTSNAP xattr, as
   * SPDK's vbdev_lvol does, and reads what it has not written from that bdev.
   */
  esnapClone(name: string, esnapUuid: string, bytes: number, done: DoneWith<Lvol | null>): void {
    this.#derive(name, done, (xattrs, cb) =>
      this.bs.createBlob(
        {
          numClusters: bytes / this.bs.clusterSize,
          esnapId: new TextEncoder().encode(`${esnapUuid}\0`),
          xattrs,
        },
        cb,
      ),
    );
  }

  /** A new lvol named `name` that `make` creates from another's blob (a snapshot or a clone). */
  #derive(
    name: string,
    done: DoneWith<Lvol | null>,
    make: (xattrs: Xattr[], cb: DoneWith<number>) => void,
  ): void {
    try {
      this.#newName(name);
    } catch (e) {
      this.#fail(e, done);
      return;
    }
    const uuid = newUuid();
    make(this.#xattrs(name, uuid), (err, id) => {
      if (err !== null) return done(err, null);
      this.#adopt(id, name, uuid, done);
    });
  }

  /** Resize (spdk_lvol_resize): whole clusters; thick lvols get theirs now. */
  resize(lvol: Lvol, bytes: number, done: Done): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      this.bs.thread.sendMsg(() => done(new LvolError('EINVAL', `size ${bytes}`) as unknown as BlobError));
      return;
    }
    this.bs.resizeBlob(lvol.blob, Math.ceil(bytes / this.bs.clusterSize), done);
  }

  /** Rename an lvol (spdk_lvol_rename): its "name" xattr, persisted. */
  rename(lvol: Lvol, name: string, done: Done): void {
    try {
      if (name !== lvol.name) this.#newName(name);
      lvol.blob.setXattr('name', nameField(name));
    } catch (e) {
      this.bs.thread.sendMsg(() => done(LvolError.from(e, 'rename') as unknown as BlobError));
      return;
    }
    this.bs.syncMd(lvol.blob, (err) => {
      if (err === null) lvol.name = name;
      done(err);
    });
  }

  /** Rename the lvstore (spdk_lvs_rename): the super blob's "name" xattr, persisted. */
  renameLvs(name: string, done: Done): void {
    try {
      checkName('lvstore', name);
    } catch (e) {
      this.bs.thread.sendMsg(() => done(e as BlobError));
      return;
    }
    this.bs.openBlob(this.bs.superBlob, (err, sb) => {
      if (err !== null || sb === null) return done(err);
      sb.setXattr('name', cstr(name));
      this.bs.closeBlob(sb, (e2) => {
        if (e2 === null) this.name = name;
        done(e2);
      });
    });
  }

  /** Close the lvol's blob and delete it (spdk_lvol_destroy); refused for a snapshot with clones. */
  delete(lvol: Lvol, done: Done): void {
    const clones = this.bs.clonesOf(lvol.blob.id);
    if (clones.length > 1) {
      this.bs.thread.sendMsg(() =>
        done(
          new LvolError(
            'EBUSY',
            `${lvol.alias} is a snapshot with ${clones.length} clones`,
          ) as unknown as BlobError,
        ),
      );
      return;
    }
    this.bs.closeBlob(lvol.blob, (err) => {
      if (err !== null) return done(err);
      this.lvols.delete(lvol.uuid);
      this.bs.deleteBlob(lvol.blob.id, (e2) => {
        if (e2 !== null) {
          // Still there: take it back.
          return this.bs.openBlob(lvol.blob.id, (e3, blob) => {
            if (e3 === null && blob !== null)
              this.lvols.set(lvol.uuid, new Lvol(this, lvol.uuid, lvol.name, blob));
            done(e2);
          });
        }
        done(null);
      });
    });
  }

  /** Close every lvol and unload the blobstore cleanly (spdk_lvs_unload). */
  unload(done: Done): void {
    const list = [...this.lvols.values()];
    this.lvols.clear();
    const closeAll = (i: number): void => {
      if (i >= list.length) {
        this.bs.unload(done);
        return;
      }
      this.bs.closeBlob(list[i].blob, () => closeAll(i + 1));
    };
    closeAll(0);
  }

  /** Close every lvol and zero the super block: nothing loads here any more (spdk_lvs_destroy). */
  destroy(done: Done): void {
    const list = [...this.lvols.values()];
    this.lvols.clear();
    const closeAll = (i: number): void => {
      if (i >= list.length) {
        this.bs.destroy(done);
        return;
      }
      this.bs.closeBlob(list[i].blob, () => closeAll(i + 1));
    };
    closeAll(0);
  }

  /** The super blob's id (for tests). */
  get superBlob(): number {
    return this.bs.superBlob;
  }

  static blobIdOfPage(page: number): number {
    return pageToBlobId(page);
  }
}
