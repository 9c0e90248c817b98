// Loading: the super block, then the used masks (clean) or a replay of every metadata page
// (dirty: the masks are rebuilt from the blobs the pages describe), then every blob opened once to
// finish snapshots and deletes a crash interrupted (SPDK's bs_load_iter). And opening one blob from
// its pages. Damage SPDK cannot load (super block, masks, a chain that loops, a replayed extent
// outside the device) fails the load with EILSEQ before anything is written; a blob SPDK would skip
// (a bad CRC, a bad descriptor) is skipped and reported in `problems`.
import type { BdevDesc } from '@storkit/bdev';
import { bdevGetIoChannel } from '@storkit/bdev';
import { getThread } from '@storkit/reactor';
import { Bitmap } from './bitmap.js';
import { Blob } from './blob.js';
import type { Blobstore, BsLoadOptions } from './blobstore.js';
import { BlobError } from './errors.js';
import { applyExtentPage, parseBlob } from './format/blob-md.js';
import {
  BSTYPE_LENGTH,
  blobIdToPage,
  DATA_RO_FLAGS_MASK,
  DataRoFlag,
  DescType,
  INVALID_PAGE,
  InvalidFlag,
  MaskType,
  MD,
  MD_RO_FLAGS_MASK,
  PAGE_SIZE,
  pageToBlobId,
  XattrName,
} from './format/layout.js';
import { decodeMask } from './format/mask.js';
import { decodeMdPage, type MdPage, pageCrcOk } from './format/md-page.js';
import { decodeSuper, type SuperBlock } from './format/super-block.js';
import { type DoneWith, MdIo } from './md-io.js';
import { recoverBlob } from './snapshot.js';

type Maps = { pages: Bitmap; blobids: Bitmap; clusters: Bitmap };
/** An extent page an extent table points at: its index in the table and the blob's cluster count. */
type Ep = { page: number; index: number; clusters: number };

/** A fault that fails the whole load (SPDK could not load the blobstore either). */
export function fatal(e: BlobError): BlobError {
  (e as BlobError & { fatal?: boolean }).fatal = true;
  return e;
}

function isFatal(e: BlobError): boolean {
  return (e as BlobError & { fatal?: boolean }).fatal === true;
}

/** @internal */
export function loadStore(
  desc: BdevDesc,
  opts: BsLoadOptions,
  make: (sb: SuperBlock, maps: Maps) => Blobstore,
  done: DoneWith<Blobstore | null>,
): void {
  const t = getThread();
  if (t === null) throw new BlobError('ENOTHREAD', 'a blobstore must be loaded on a reactor thread');
  // A temporary reader until the super block says what the blobstore is.
  const io = new MdIo(desc, bdevGetIoChannel(desc));
  const fail = (err: BlobError) => {
    io.ch.put();
    done(err, null);
  };
  io.readPages(0, 1, (err, page) => {
    if (err !== null) return fail(err);
    let sb: SuperBlock;
    try {
      sb = decodeSuper(page, desc.bdev.numBlocks * desc.bdev.blockSize, desc.bdev.blockSize);
    } catch (e) {
      return fail(e as BlobError);
    }
    const want = opts.bstype ?? '';
    if (want !== '' && want !== sb.bstype)
      return fail(new BlobError('ENXIO', `blobstore type is "${sb.bstype}", expected "${want}"`));
    if (want.length > BSTYPE_LENGTH)
      return fail(new BlobError('EINVAL', `bstype "${want}" is over 16 bytes`));
    const next = (err2: BlobError | null, maps: Maps | null) => {
      io.ch.put();
      if (err2 !== null || maps === null) return done(err2, null);
      let bs: Blobstore;
      try {
        bs = make(sb, maps);
      } catch (e) {
        return done(e as BlobError, null);
      }
      iterate(bs, (err3) => {
        if (err3 !== null) bs.abandon(() => done(err3, null));
        else done(null, bs);
      });
    };
    if (sb.clean && sb.usedBlobidMaskLen > 0 && !opts.forceRecover) readMasks(io, sb, next);
    else replay(io, sb, next);
  });
}

function readMasks(io: MdIo, sb: SuperBlock, done: (err: BlobError | null, m: Maps | null) => void): void {
  const clusters = Math.floor(sb.size / sb.clusterSize);
  io.readPages(sb.usedPageMaskStart, sb.usedPageMaskLen, (e1, pm) => {
    if (e1 !== null) return done(e1, null);
    io.readPages(sb.usedClusterMaskStart, sb.usedClusterMaskLen, (e2, cm) => {
      if (e2 !== null) return done(e2, null);
      io.readPages(sb.usedBlobidMaskStart, sb.usedBlobidMaskLen, (e3, bm) => {
        if (e3 !== null) return done(e3, null);
        try {
          const pages = decodeMask(pm, MaskType.USED_PAGES, sb.mdLen, sb.mdLen);
          // A longer cluster mask is what an interrupted grow leaves: cut to the blobstore's size.
          const used = decodeMask(cm, MaskType.USED_CLUSTERS, clusters, Number.MAX_SAFE_INTEGER, clusters);
          const blobids = decodeMask(bm, MaskType.USED_BLOBIDS, sb.mdLen, sb.mdLen);
          done(null, { pages, blobids, clusters: used });
        } catch (e) {
          done(e as BlobError, null);
        }
      });
    });
  });
}

/**
 * Rebuild the masks from the metadata pages (bs_recover / bs_load_replay_md): a page whose CRC
 * holds and that starts a blob at its own index is a blob; its chain and extent pages are used, and
 * so is every cluster they map. Pages that do not check out are free (as SPDK treats them).
 */
function replay(io: MdIo, sb: SuperBlock, done: (err: BlobError | null, m: Maps | null) => void): void {
  const clusterCount = Math.floor(sb.size / sb.clusterSize);
  const pages = new Bitmap(sb.mdLen);
  const blobids = new Bitmap(sb.mdLen);
  const clusters = new Bitmap(clusterCount);
  const mdClusters = Math.ceil((sb.mdStart + sb.mdLen) / (sb.clusterSize / PAGE_SIZE));
  if (mdClusters > clusterCount) {
    done(fatal(new BlobError('EILSEQ', 'super block: metadata larger than the blobstore')), null);
    return;
  }
  for (let i = 0; i < mdClusters; i++) clusters.set(i);
  // Read the metadata region in runs of 256 pages (1 MiB).
  const RUN = 256;
  const cache = new Map<number, Uint8Array>();
  const get = (p: number, cb: (err: BlobError | null, page: Uint8Array | null) => void) => {
    const base = p - (p % RUN);
    const hit = cache.get(base);
    if (hit !== undefined) return cb(null, hit.subarray((p - base) * PAGE_SIZE, (p - base + 1) * PAGE_SIZE));
    io.readPages(sb.mdStart + base, Math.min(RUN, sb.mdLen - base), (err, buf) => {
      if (err !== null) return cb(err, null);
      if (cache.size > 4) cache.clear();
      cache.set(base, buf);
      cb(null, buf.subarray((p - base) * PAGE_SIZE, (p - base + 1) * PAGE_SIZE));
    });
  };
  const markCluster = (c: number, where: string) => {
    if (c >= clusterCount)
      throw fatal(
        new BlobError(
          'EILSEQ',
          `${where} points at cluster ${c}, outside the blobstore (${clusterCount} clusters)`,
        ),
      );
    clusters.set(c);
  };
  // The running index into the current blob's extent table (its descriptors may span pages).
  const etIndex = { n: 0 };
  const parsePage = (p: number, page: MdPage, eps: Ep[], ep?: Ep) => {
    for (const d of page.descriptors) {
      if ('unknown' in d)
        throw fatal(new BlobError('EILSEQ', `metadata page ${p}: unknown descriptor type ${d.type}`));
      if (d.type === DescType.EXTENT_RLE) {
        let count = 0;
        for (const [c, n] of d.runs) {
          for (let j = 0; j < n && c !== 0; j++) markCluster(c + j, `metadata page ${p}`);
          count += n;
        }
        if (count === 0) throw fatal(new BlobError('EILSEQ', `metadata page ${p}: empty extent descriptor`));
      } else if (d.type === DescType.EXTENT_TABLE) {
        for (const [e, n] of d.runs) {
          if (e === 0) {
            etIndex.n += n;
            continue;
          }
          if (n !== 1)
            throw fatal(new BlobError('EILSEQ', `metadata page ${p}: extent table run of ${n} pages`));
          if (e >= sb.mdLen)
            throw fatal(
              new BlobError(
                'EILSEQ',
                `metadata page ${p}: extent page ${e} lies outside the metadata region`,
              ),
            );
          eps.push({ page: e, index: etIndex.n++, clusters: d.numClusters });
        }
      } else if (d.type === DescType.EXTENT_PAGE) {
        // Only as many entries as the root declares: more is a grow a crash interrupted.
        const limit = Math.min(
          d.clusters.length,
          Math.max(0, (ep?.clusters ?? Number.MAX_SAFE_INTEGER) - d.start),
        );
        for (let i = 0; i < limit; i++)
          if (d.clusters[i] !== 0) markCluster(d.clusters[i], `metadata page ${p}`);
      }
    }
  };
  const decode = (p: number, raw: Uint8Array): MdPage | null => {
    if (!pageCrcOk(raw)) return null;
    try {
      return decodeMdPage(raw, p);
    } catch {
      return null;
    }
  };
  let p = 0;
  const nextRoot = (): void => {
    while (p < sb.mdLen && pages.get(p)) p++;
    if (p >= sb.mdLen) {
      done(null, { pages, blobids, clusters });
      return;
    }
    const root = p++;
    get(root, (err, raw) => {
      if (err !== null || raw === null) return done(err, null);
      const page = decode(root, raw);
      const v = new DataView(raw.buffer, raw.byteOffset);
      const seq = v.getUint32(MD.SEQUENCE, true);
      if (page === null || seq !== 0 || page.id !== pageToBlobId(root)) return nextRoot();
      pages.set(root);
      blobids.set(root);
      const eps: Ep[] = [];
      etIndex.n = 0;
      const visited = new Set<number>([root]);
      try {
        parsePage(root, page, eps);
      } catch (e) {
        return done(e as BlobError, null);
      }
      followChain(page, visited, eps);
    });
  };
  const followChain = (page: MdPage, visited: Set<number>, eps: Ep[]): void => {
    const n = page.next;
    if (n === INVALID_PAGE) {
      readEps(eps);
      return;
    }
    if (n >= sb.mdLen) {
      readEps(eps);
      return;
    }
    if (visited.has(n)) {
      done(
        fatal(
          new BlobError('EILSEQ', `metadata chain of blob 0x${page.id.toString(16)} loops back to page ${n}`),
        ),
        null,
      );
      return;
    }
    get(n, (err, raw) => {
      if (err !== null || raw === null) return done(err, null);
      const next = decode(n, raw);
      if (next === null || next.sequence === 0) return readEps(eps);
      visited.add(n);
      pages.set(n);
      try {
        parsePage(n, next, eps);
      } catch (e) {
        return done(e as BlobError, null);
      }
      followChain(next, visited, eps);
    });
  };
  const readEps = (eps: Ep[]): void => {
    if (eps.length === 0) {
      nextRoot();
      return;
    }
    const ep = eps.shift() as Ep;
    const e = ep.page;
    get(e, (err, raw) => {
      if (err !== null || raw === null) return done(err, null);
      const page = decode(e, raw);
      const d = page?.descriptors[0];
      if (
        page === null ||
        page.sequence !== 0 ||
        d === undefined ||
        'unknown' in d ||
        d.type !== DescType.EXTENT_PAGE ||
        page.descriptors.length !== 1
      )
        return done(
          fatal(
            new BlobError(
              'EILSEQ',
              `metadata page ${e}: not a valid extent page, yet an extent table points at it`,
            ),
          ),
          null,
        );
      pages.set(e);
      try {
        parsePage(e, page, [], ep);
      } catch (ex) {
        return done(ex as BlobError, null);
      }
      readEps(eps);
    });
  };
  nextRoot();
}

/**
 * Open every blob once (bs_load_iter): finish a snapshot or a snapshot delete a crash interrupted;
 * record the snapshot → clones relation. A blob that does not open is skipped and reported.
 */
function iterate(bs: Blobstore, done: (err: BlobError | null) => void): void {
  const ids = bs.blobIds();
  const step = (i: number): void => {
    if (i >= ids.length) {
      done(null);
      return;
    }
    const id = ids[i];
    bs.openBlob(id, (err, blob) => {
      if (err !== null || blob === null) {
        if (err !== null && isFatal(err)) return done(err);
        bs.problems.push({ id, error: err ?? new BlobError('EIO', 'open failed') });
        return step(i + 1);
      }
      recoverBlob(bs, blob, (err2) => {
        if (err2 !== null) {
          bs.problems.push({ id, error: err2 });
          return step(i + 1);
        }
        if (blob.parentId >= 0) bs.addClone(blob.parentId, blob.id);
        if (!bs.open.has(blob.id)) return step(i + 1);
        bs.closeBlob(blob, () => step(i + 1));
      });
    });
  };
  step(0);
}

/**
 * Read blob `id` from disk (blob_load): chain, checks, extent pages, snapshot parent (opened, and
 * held, with it).
 */
export function openFromDisk(
  bs: Blobstore,
  id: number,
  path: readonly number[],
  done: DoneWith<Blob | null>,
): void {
  const root = blobIdToPage(id);
  const chain: MdPage[] = [];
  const pagesIdx: number[] = [];
  const bad = (msg: string) => new BlobError('EILSEQ', `blob 0x${id.toString(16)}: ${msg}`);
  const readAt = (p: number) => {
    bs.io.readPages(bs.mdStart + p, 1, (err, raw) => {
      if (err !== null) return done(err, null);
      let page: MdPage;
      try {
        page = decodeMdPage(raw, p);
      } catch (e) {
        return done(e as BlobError, null);
      }
      chain.push(page);
      pagesIdx.push(p);
      const n = page.next;
      if (n === INVALID_PAGE) return parse();
      if (n >= bs.mdLen)
        return done(bad(`metadata page ${p} continues to page ${n}, outside the metadata region`), null);
      if (pagesIdx.includes(n)) return done(fatal(bad(`metadata chain loops back to page ${n}`)), null);
      if (!bs.usedMdPages.get(n))
        return done(bad(`metadata page ${p} continues to page ${n}, which is not in use`), null);
      readAt(n);
    });
  };
  const parse = () => {
    let parsed: ReturnType<typeof parseBlob>;
    try {
      parsed = parseBlob(id, chain, (c) => c > 0 && bs.usedClusters.get(c));
    } catch (e) {
      return done(e as BlobError, null);
    }
    readExtents(parsed, 0);
  };
  const readExtents = (parsed: ReturnType<typeof parseBlob>, i: number) => {
    if (i >= parsed.extentPages.length || parsed.remaining === 0) {
      if (parsed.remaining !== 0) return done(bad(`${parsed.remaining} clusters no extent page maps`), null);
      return build(parsed);
    }
    const ep = parsed.extentPages[i];
    if (ep === 0) {
      try {
        applyExtentPage(id, parsed, i, null, () => true);
      } catch (e) {
        return done(e as BlobError, null);
      }
      return readExtents(parsed, i + 1);
    }
    if (ep >= bs.mdLen) return done(bad(`extent page ${ep} lies outside the metadata region`), null);
    bs.io.readPages(bs.mdStart + ep, 1, (err, raw) => {
      if (err !== null) return done(err, null);
      try {
        applyExtentPage(id, parsed, i, decodeMdPage(raw, ep), (c) => c > 0 && bs.usedClusters.get(c));
      } catch (e) {
        return done(e as BlobError, null);
      }
      readExtents(parsed, i + 1);
    });
  };
  const build = (parsed: ReturnType<typeof parseBlob>) => {
    const blob = new Blob(id, root, parsed.clusters.length);
    blob.invalidFlags = parsed.invalidFlags;
    blob.dataRoFlags = parsed.dataRoFlags;
    blob.mdRoFlags = parsed.mdRoFlags;
    blob.xattrs = parsed.xattrs;
    blob.internalXattrs = parsed.internalXattrs;
    blob.useExtentTable = parsed.useExtentTable;
    blob.numClusters = parsed.clusters.length;
    for (let i = 0; i < parsed.clusters.length; i++) {
      blob.clusters[i] = parsed.clusters[i];
      if (parsed.clusters[i] !== 0) blob.allocated++;
    }
    blob.cmap.map.set(blob.clusters.subarray(0, blob.numClusters));
    blob.extentPages = parsed.useExtentTable ? parsed.extentPages.slice() : [];
    blob.mdPages = pagesIdx.slice();
    blob.clean = {
      mdPages: pagesIdx.slice(),
      numClusters: blob.numClusters,
      extentPages: blob.extentPages.slice(),
    };
    blob.chainDirty = false;
    if (
      (parsed.dataRoFlags | DATA_RO_FLAGS_MASK) !== DATA_RO_FLAGS_MASK ||
      (parsed.dataRoFlags & DataRoFlag.READ_ONLY) !== 0n
    ) {
      blob.dataRo = true;
      blob.mdRo = true;
    }
    if ((parsed.mdRoFlags | MD_RO_FLAGS_MASK) !== MD_RO_FLAGS_MASK) blob.mdRo = true;
    blob.clearMethod = blob.storedClearMethod;
    if ((blob.invalidFlags & InvalidFlag.EXTERNAL_SNAPSHOT) !== 0n) {
      // A clone of an external snapshot: the resolver names the bdev its id refers to.
      const esnap = blob.esnapId;
      if (esnap === null) {
        blob.cmap.close();
        return done(bad('external snapshot flag without an EXTSNAP xattr'), null);
      }
      blob.esnapBdev = bs.esnapResolver(esnap) ?? '';
      if (blob.esnapBdev === '') {
        bs.missingEsnaps.set(id, esnap.slice());
        blob.cmap.close();
        return done(
          new BlobError(
            'ENODEV',
            `blob 0x${id.toString(16)}: its external snapshot ${new TextDecoder().decode(esnap).replace(/\0+$/, '')} is not here`,
          ),
          null,
        );
      }
      bs.missingEsnaps.delete(id);
      return done(null, blob);
    }
    const snap = blob.thin ? blob.getXattr(XattrName.SNAPSHOT, true) : undefined;
    if (snap === undefined) return done(null, blob);
    if (snap.length !== 8) {
      blob.cmap.close();
      return done(bad(`snapshot xattr of ${snap.length} bytes`), null);
    }
    const parentId = Number(new DataView(snap.buffer, snap.byteOffset, 8).getBigUint64(0, true));
    if (parentId === id || path.includes(parentId)) {
      blob.cmap.close();
      return done(fatal(bad(`its snapshot chain loops back to blob 0x${parentId.toString(16)}`)), null);
    }
    bs.openFrom(parentId, [...path, id], (err) => {
      if (err !== null) {
        blob.cmap.close();
        return done(
          new BlobError(
            err.code,
            `blob 0x${id.toString(16)}: its snapshot 0x${parentId.toString(16)} does not open: ${err.message}`,
          ),
          null,
        );
      }
      blob.parentId = parentId;
      done(null, blob);
    });
  };
  readAt(root);
}
