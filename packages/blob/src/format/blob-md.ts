// A blob's metadata as SPDK lays it out over pages: serialize (blob_serialize, byte for byte) and
// parse (blob_parse / blob_parse_page and the extent pages), with SPDK's acceptance rules.
import { BlobError } from '../errors.js';
import {
  DESC_HEADER,
  DESCRIPTORS_SIZE,
  DescType,
  EXTENTS_PER_PAGE,
  FLAGS_BODY,
  INVALID_PAGE,
  InvalidFlag,
  RLE_ENTRY,
  TABLE_ENTRY,
  TABLE_FIXED,
} from './layout.js';
import { type Descriptor, descriptorSize, type MdPage } from './md-page.js';

export interface Xattr {
  name: string;
  value: Uint8Array;
}

/** What a blob's metadata chain holds (spdk_blob's persistent part). */
export interface BlobMd {
  id: number;
  invalidFlags: bigint;
  dataRoFlags: bigint;
  mdRoFlags: bigint;
  xattrs: readonly Xattr[];
  internalXattrs: readonly Xattr[];
  useExtentTable: boolean;
  numClusters: number;
  /** Cluster index per blob cluster (0 = unallocated); at least numClusters entries. */
  clusters: ArrayLike<number>;
  numExtentPages: number;
  /** Metadata page per 512 blob clusters (0 = none), extent-table blobs only. */
  extentPages: ArrayLike<number>;
}

class PageWriter {
  readonly pages: MdPage[] = [];
  remaining = 0;
  constructor(readonly id: number) {
    this.add();
  }
  get cur(): MdPage {
    return this.pages[this.pages.length - 1];
  }
  add(): void {
    this.pages.push({ id: this.id, sequence: this.pages.length, next: INVALID_PAGE, descriptors: [] });
    this.remaining = DESCRIPTORS_SIZE;
  }
  put(d: Descriptor, size = descriptorSize(d)): void {
    this.cur.descriptors.push(d);
    this.remaining -= size;
  }
}

/**
 * The blob's metadata pages in chain order (sequence numbers set, `next` left INVALID_PAGE for the
 * caller to link once it has placed the pages). Same descriptors, order and page breaks as SPDK:
 * flags, xattrs, internal xattrs, then the extent table or the run-length extents.
 */
export function serializeBlob(md: BlobMd): MdPage[] {
  const w = new PageWriter(md.id);
  w.put(
    { type: DescType.FLAGS, invalid: md.invalidFlags, dataRo: md.dataRoFlags, mdRo: md.mdRoFlags },
    DESC_HEADER + FLAGS_BODY,
  );
  for (const [list, type] of [
    [md.xattrs, DescType.XATTR],
    [md.internalXattrs, DescType.XATTR_INTERNAL],
  ] as const) {
    for (const x of list) {
      const d: Descriptor = { type, name: x.name, value: x.value };
      const size = descriptorSize(d);
      if (size > DESCRIPTORS_SIZE)
        throw new BlobError('ENOMEM', `xattr ${x.name} does not fit a metadata page`);
      if (size > w.remaining) w.add();
      w.put(d, size);
    }
  }
  if (md.useExtentTable) serializeExtentTable(md, w);
  else serializeExtentRle(md, w);
  return w.pages;
}

function serializeExtentTable(md: BlobMd, w: PageWriter): void {
  const n = md.numExtentPages;
  let next = 0;
  while (next <= n) {
    const start = next;
    if (w.remaining >= DESC_HEADER + TABLE_FIXED) {
      const runs: [number, number][] = [];
      let size = DESC_HEADER + TABLE_FIXED;
      let len = 1;
      let i = start;
      for (; i < n; i++) {
        if (w.remaining < size + TABLE_ENTRY) break;
        const ep = md.extentPages[i];
        if (ep === 0 && i + 1 < n && md.extentPages[i + 1] === 0) {
          len++;
          continue;
        }
        runs.push([ep, len]);
        len = 1;
        size += TABLE_ENTRY;
      }
      next = i;
      w.put({ type: DescType.EXTENT_TABLE, numClusters: md.numClusters, runs }, size);
    }
    if (next === n) break;
    w.add();
  }
}

function serializeExtentRle(md: BlobMd, w: PageWriter): void {
  const n = md.numClusters;
  let next = 0;
  while (next < n) {
    const start = next;
    let size = DESC_HEADER + RLE_ENTRY;
    if (w.remaining >= size) {
      const runs: [number, number][] = [];
      let c = md.clusters[start];
      let count = 1;
      let cut = false;
      for (let i = start + 1; i < n; i++) {
        const x = md.clusters[i];
        if ((c !== 0 && c + count === x) || (c === 0 && x === 0)) {
          count++;
          continue;
        }
        runs.push([c, count]);
        size += RLE_ENTRY;
        if (w.remaining < size) {
          next = i;
          cut = true;
          break;
        }
        c = x;
        count = 1;
      }
      if (!cut) {
        runs.push([c, count]);
        next = n;
      }
      w.put({ type: DescType.EXTENT_RLE, runs }, DESC_HEADER + RLE_ENTRY * runs.length);
    }
    if (next === n) break;
    w.add();
  }
}

/** The extent page `index` of an extent-table blob (page 0 of its own one-page chain). */
export function serializeExtentPage(
  md: Pick<BlobMd, 'id' | 'numClusters' | 'clusters'>,
  index: number,
): MdPage {
  const start = index * EXTENTS_PER_PAGE;
  const end = Math.min(start + EXTENTS_PER_PAGE, md.numClusters);
  const clusters = new Uint32Array(Math.max(0, end - start));
  for (let i = start; i < end; i++) clusters[i - start] = md.clusters[i];
  return {
    id: md.id,
    sequence: 0,
    next: INVALID_PAGE,
    descriptors: [{ type: DescType.EXTENT_PAGE, start, clusters }],
  };
}

/** A blob's metadata as parsed from its chain; extent-table blobs still need their extent pages. */
export interface ParsedBlob {
  invalidFlags: bigint;
  dataRoFlags: bigint;
  mdRoFlags: bigint;
  xattrs: Xattr[];
  internalXattrs: Xattr[];
  /** An EXTENT_TABLE descriptor was found (else run-length extents, or none: a 0-cluster blob). */
  useExtentTable: boolean;
  /** Clusters known so far (all of them for run-length blobs). */
  clusters: number[];
  /** Extent-table blobs: the md page of each 512 clusters (0 = none). */
  extentPages: number[];
  /** Extent-table blobs: clusters the table declares that no extent page has supplied yet. */
  remaining: number;
}

/**
 * The most clusters one blob may have: 2^27 (128 TiB in 1 MiB clusters). A corrupt descriptor can
 * declare billions; SPDK would try to allocate a map that large and fail with ENOMEM.
 */
export const MAX_BLOB_CLUSTERS = 2 ** 27;

/** Checks a cluster reference: true when `cluster` is a valid, used cluster of the blobstore. */
export type ClusterCheck = (cluster: number) => boolean;

function fail(id: number, what: string): BlobError {
  return new BlobError('EILSEQ', `blob 0x${id.toString(16)}: ${what}`);
}

/**
 * Parse a blob's chain pages (already CRC-checked and decoded, in chain order). Applies SPDK's
 * rules: the first page names the blob, sequence numbers count up, unknown flags in invalid_flags
 * refuse the blob, extents point at used clusters, unallocated entries only in thin blobs, never
 * both extent formats.
 */
export function parseBlob(
  id: number,
  pages: readonly MdPage[],
  used: ClusterCheck,
  maxClusters = MAX_BLOB_CLUSTERS,
): ParsedBlob {
  if (pages.length === 0) throw fail(id, 'no metadata pages');
  if (pages[0].id !== id)
    throw new BlobError(
      'ENOENT',
      `blob 0x${id.toString(16)}: its first page belongs to 0x${pages[0].id.toString(16)}`,
    );
  const b: ParsedBlob = {
    invalidFlags: 0n,
    dataRoFlags: 0n,
    mdRoFlags: 0n,
    xattrs: [],
    internalXattrs: [],
    useExtentTable: false,
    clusters: [],
    extentPages: [],
    remaining: 0,
  };
  let rle = false;
  let table = false;
  pages.forEach((p, seq) => {
    if (p.id !== id) throw fail(id, `page ${seq} of its chain belongs to blob 0x${p.id.toString(16)}`);
    if (p.sequence !== seq) throw fail(id, `page ${seq} of its chain has sequence number ${p.sequence}`);
    for (const d of p.descriptors) {
      if ('unknown' in d) continue;
      switch (d.type) {
        case DescType.FLAGS:
          if ((d.invalid & ~0xfn) !== 0n) throw fail(id, `unknown invalid_flags 0x${d.invalid.toString(16)}`);
          b.invalidFlags = d.invalid;
          b.dataRoFlags = d.dataRo;
          b.mdRoFlags = d.mdRo;
          break;
        case DescType.XATTR:
          b.xattrs.push({ name: d.name, value: d.value });
          break;
        case DescType.XATTR_INTERNAL:
          b.internalXattrs.push({ name: d.name, value: d.value });
          break;
        case DescType.EXTENT_RLE: {
          if (table) throw fail(id, 'both an extent table and run-length extents');
          rle = true;
          let count = 0;
          for (const [c, n] of d.runs) {
            if (b.clusters.length + count + n > maxClusters)
              throw fail(id, `extents add up to more than ${maxClusters} clusters`);
            for (let j = 0; j < n; j++) {
              if (c !== 0 && !used(c + j))
                throw fail(id, `extent points at cluster ${c + j}, which is not in use`);
              count++;
            }
          }
          if (count === 0) throw fail(id, 'an empty extent descriptor');
          const thin = (b.invalidFlags & InvalidFlag.THIN_PROV) !== 0n;
          for (const [c, n] of d.runs) {
            if (c === 0 && !thin)
              throw fail(id, 'unallocated clusters in a blob that is not thin provisioned');
            for (let j = 0; j < n; j++) b.clusters.push(c === 0 ? 0 : c + j);
          }
          break;
        }
        case DescType.EXTENT_TABLE: {
          if (rle) throw fail(id, 'both an extent table and run-length extents');
          if (table && d.numClusters !== b.remaining)
            throw fail(id, `extent tables disagree on the cluster count (${d.numClusters}, ${b.remaining})`);
          table = true;
          if (d.numClusters > maxClusters)
            throw fail(id, `extent table declares ${d.numClusters} clusters, more than ${maxClusters}`);
          b.remaining = d.numClusters;
          const thin = (b.invalidFlags & InvalidFlag.THIN_PROV) !== 0n;
          for (const [p, n] of d.runs) {
            if (b.extentPages.length + n > Math.ceil(maxClusters / EXTENTS_PER_PAGE) + 1)
              throw fail(id, `extent table of more than ${Math.ceil(maxClusters / EXTENTS_PER_PAGE)} pages`);
            if (p !== 0) {
              if (n !== 1) throw fail(id, `extent table run of ${n} pages at page ${p}`);
              b.extentPages.push(p);
            } else {
              if (!thin) throw fail(id, 'unallocated extent pages in a blob that is not thin provisioned');
              for (let j = 0; j < n; j++) b.extentPages.push(0);
            }
          }
          break;
        }
        case DescType.EXTENT_PAGE:
          throw fail(id, 'an extent page descriptor inside its metadata chain');
      }
    }
  });
  b.useExtentTable = table;
  if (table && b.extentPages.length * EXTENTS_PER_PAGE < b.remaining)
    throw fail(id, `${b.extentPages.length} extent pages cannot map ${b.remaining} clusters`);
  return b;
}

/**
 * Add the clusters of extent page number `index` of the blob (`page` decoded, or null when the
 * table has no page there: thin, unallocated). Extent pages must come in order.
 */
export function applyExtentPage(
  id: number,
  b: ParsedBlob,
  index: number,
  page: MdPage | null,
  used: ClusterCheck,
): void {
  const want = Math.min(b.remaining, EXTENTS_PER_PAGE);
  if (page === null) {
    for (let i = 0; i < want; i++) b.clusters.push(0);
    b.remaining -= want;
    return;
  }
  const at = b.extentPages[index];
  if (page.sequence !== 0) throw fail(id, `extent page ${at} has sequence number ${page.sequence}`);
  if (page.next !== INVALID_PAGE) throw fail(id, `extent page ${at} continues to page ${page.next}`);
  const [d, ...rest] = page.descriptors;
  if (d === undefined || 'unknown' in d || d.type !== DescType.EXTENT_PAGE)
    throw fail(id, `page ${at} of its extent table is not an extent page`);
  if (rest.length > 0) throw fail(id, `extent page ${at} holds more than one descriptor`);
  if (d.start !== b.clusters.length)
    throw fail(id, `extent page ${at} starts at cluster ${d.start}, expected ${b.clusters.length}`);
  // Entries past the count the root declares are a grow that a crash interrupted (the extent page
  // is written before the root): the root is the truth, they are ignored.
  const take = Math.min(d.clusters.length, b.remaining);
  const thin = (b.invalidFlags & InvalidFlag.THIN_PROV) !== 0n;
  for (let i = 0; i < take; i++) {
    const c = d.clusters[i];
    if (c !== 0 && !used(c)) throw fail(id, `extent page ${at} points at cluster ${c}, which is not in use`);
    if (c === 0 && !thin) throw fail(id, `extent page ${at}: unallocated cluster in a blob that is not thin`);
    b.clusters.push(c);
  }
  b.remaining -= take;
}
