// Metadata pages and their descriptors: decode (with every length checked against the page) and
// encode, byte for byte as SPDK writes them.
import { BlobError } from '../errors.js';
import { pageCrc } from './crc.js';
import {
  DESC_HEADER,
  DESCRIPTORS_SIZE,
  DescType,
  EXTENT_PAGE_FIXED,
  FLAGS_BODY,
  INVALID_PAGE,
  MD,
  PAGE_SIZE,
  RLE_ENTRY,
  TABLE_ENTRY,
  TABLE_FIXED,
  XATTR_FIXED,
} from './layout.js';

export interface FlagsDesc {
  type: typeof DescType.FLAGS;
  invalid: bigint;
  dataRo: bigint;
  mdRo: bigint;
}
export interface XattrDesc {
  type: typeof DescType.XATTR | typeof DescType.XATTR_INTERNAL;
  name: string;
  value: Uint8Array;
}
/** Runs of clusters: [first cluster index (0 = unallocated), run length]. */
export interface ExtentRleDesc {
  type: typeof DescType.EXTENT_RLE;
  runs: [number, number][];
}
/** The blob's cluster count and runs of extent pages: [md page (0 = none), run length]. */
export interface ExtentTableDesc {
  type: typeof DescType.EXTENT_TABLE;
  numClusters: number;
  runs: [number, number][];
}
/** One extent page's clusters, starting at blob cluster `start` (0 = unallocated). */
export interface ExtentPageDesc {
  type: typeof DescType.EXTENT_PAGE;
  start: number;
  clusters: Uint32Array;
}
/** A descriptor type this version does not know (SPDK skips those when opening a blob). */
export interface UnknownDesc {
  type: number;
  length: number;
  unknown: true;
}
export type Descriptor =
  | FlagsDesc
  | XattrDesc
  | ExtentRleDesc
  | ExtentTableDesc
  | ExtentPageDesc
  | UnknownDesc;

/** A metadata page, decoded. */
export interface MdPage {
  /** Blob id the page belongs to. */
  id: number;
  sequence: number;
  /** Next page of the chain, or INVALID_PAGE. */
  next: number;
  descriptors: Descriptor[];
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const enc = new TextEncoder();

function bad(index: number, what: string): BlobError {
  return new BlobError('EILSEQ', `metadata page ${index}: ${what}`);
}

function u64(v: DataView, off: number): number {
  return v.getUint32(off + 4, true) * 2 ** 32 + v.getUint32(off, true);
}

function big64(v: DataView, off: number): bigint {
  return v.getBigUint64(off, true);
}

/** Whether the page's stored CRC matches its contents. */
export function pageCrcOk(page: Uint8Array): boolean {
  return new DataView(page.buffer, page.byteOffset, PAGE_SIZE).getUint32(MD.CRC, true) === pageCrc(page);
}

/**
 * Decode metadata page `index` (its index in the metadata region, for messages). Throws EILSEQ for
 * a CRC mismatch or a descriptor that does not fit the page or has an impossible length.
 */
export function decodeMdPage(page: Uint8Array, index: number): MdPage {
  if (page.length < PAGE_SIZE) throw bad(index, `${page.length} bytes`);
  const v = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const stored = v.getUint32(MD.CRC, true);
  const crc = pageCrc(page.subarray(0, PAGE_SIZE));
  if (stored !== crc)
    throw bad(index, `CRC mismatch (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})`);
  return {
    id: u64(v, MD.ID),
    sequence: v.getUint32(MD.SEQUENCE, true),
    next: v.getUint32(MD.NEXT, true),
    descriptors: decodeDescriptors(v, index),
  };
}

function decodeDescriptors(v: DataView, index: number): Descriptor[] {
  const out: Descriptor[] = [];
  let cur = 0;
  while (cur + DESC_HEADER <= DESCRIPTORS_SIZE) {
    const at = MD.DESCRIPTORS + cur;
    const type = v.getUint8(at);
    const length = v.getUint32(at + 1, true);
    if (type === DescType.PADDING && length === 0) break;
    if (length > DESCRIPTORS_SIZE - cur - DESC_HEADER)
      throw bad(
        index,
        `descriptor type ${type} at offset ${cur} has length ${length}, past the end of the page`,
      );
    const body = at + DESC_HEADER;
    if (type !== DescType.PADDING) out.push(decodeOne(v, index, type, body, length));
    cur += DESC_HEADER + length;
  }
  return out;
}

function decodeOne(v: DataView, index: number, type: number, body: number, length: number): Descriptor {
  switch (type) {
    case DescType.FLAGS:
      if (length !== FLAGS_BODY) throw bad(index, `flags descriptor of length ${length}, not ${FLAGS_BODY}`);
      return { type, invalid: big64(v, body), dataRo: big64(v, body + 8), mdRo: big64(v, body + 16) };
    case DescType.XATTR:
    case DescType.XATTR_INTERNAL: {
      if (length < XATTR_FIXED) throw bad(index, `xattr descriptor of length ${length}`);
      const nl = v.getUint16(body, true);
      const vl = v.getUint16(body + 2, true);
      if (length !== XATTR_FIXED + nl + vl)
        throw bad(
          index,
          `xattr descriptor of length ${length} holds a ${nl}-byte name and a ${vl}-byte value`,
        );
      const bytes = new Uint8Array(v.buffer, v.byteOffset + body + XATTR_FIXED, nl + vl);
      return { type, name: utf8.decode(bytes.subarray(0, nl)), value: bytes.slice(nl) };
    }
    case DescType.EXTENT_RLE: {
      if (length === 0 || length % RLE_ENTRY !== 0) throw bad(index, `extent descriptor of length ${length}`);
      const runs: [number, number][] = [];
      for (let o = 0; o < length; o += RLE_ENTRY)
        runs.push([v.getUint32(body + o, true), v.getUint32(body + o + 4, true)]);
      return { type, runs };
    }
    case DescType.EXTENT_TABLE: {
      if (length < TABLE_FIXED || (length - TABLE_FIXED) % TABLE_ENTRY !== 0)
        throw bad(index, `extent table descriptor of length ${length}`);
      const numClusters = u64(v, body);
      const runs: [number, number][] = [];
      for (let o = TABLE_FIXED; o < length; o += TABLE_ENTRY)
        runs.push([v.getUint32(body + o, true), v.getUint32(body + o + 4, true)]);
      return { type, numClusters, runs };
    }
    case DescType.EXTENT_PAGE: {
      if (length <= EXTENT_PAGE_FIXED || (length - EXTENT_PAGE_FIXED) % 4 !== 0)
        throw bad(index, `extent page descriptor of length ${length}`);
      const n = (length - EXTENT_PAGE_FIXED) / 4;
      const clusters = new Uint32Array(n);
      for (let i = 0; i < n; i++) clusters[i] = v.getUint32(body + EXTENT_PAGE_FIXED + 4 * i, true);
      return { type, start: v.getUint32(body, true), clusters };
    }
    default:
      return { type, length, unknown: true };
  }
}

/** Bytes a descriptor takes on a page, header included. */
export function descriptorSize(d: Descriptor): number {
  if ('unknown' in d) return DESC_HEADER + d.length;
  switch (d.type) {
    case DescType.FLAGS:
      return DESC_HEADER + FLAGS_BODY;
    case DescType.XATTR:
    case DescType.XATTR_INTERNAL:
      return DESC_HEADER + XATTR_FIXED + enc.encode(d.name).length + d.value.length;
    case DescType.EXTENT_RLE:
      return DESC_HEADER + RLE_ENTRY * d.runs.length;
    case DescType.EXTENT_TABLE:
      return DESC_HEADER + TABLE_FIXED + TABLE_ENTRY * d.runs.length;
    case DescType.EXTENT_PAGE:
      return DESC_HEADER + EXTENT_PAGE_FIXED + 4 * d.clusters.length;
  }
}

/** Encode a page (descriptors in order, the rest zero), CRC included. Throws when they do not fit. */
export function encodeMdPage(p: MdPage): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  const v = new DataView(page.buffer);
  v.setUint32(MD.ID, p.id % 2 ** 32, true);
  v.setUint32(MD.ID + 4, Math.floor(p.id / 2 ** 32), true);
  v.setUint32(MD.SEQUENCE, p.sequence, true);
  v.setUint32(MD.NEXT, p.next, true);
  let at = MD.DESCRIPTORS;
  for (const d of p.descriptors) {
    const size = descriptorSize(d);
    if (at + size > MD.NEXT) throw new BlobError('EINVAL', `descriptors do not fit a metadata page`);
    encodeOne(v, page, at, d, size - DESC_HEADER);
    at += size;
  }
  v.setUint32(MD.CRC, pageCrc(page), true);
  return page;
}

function encodeOne(v: DataView, page: Uint8Array, at: number, d: Descriptor, length: number): void {
  v.setUint8(at, d.type);
  v.setUint32(at + 1, length, true);
  const body = at + DESC_HEADER;
  if ('unknown' in d) return;
  switch (d.type) {
    case DescType.FLAGS:
      v.setBigUint64(body, d.invalid, true);
      v.setBigUint64(body + 8, d.dataRo, true);
      v.setBigUint64(body + 16, d.mdRo, true);
      return;
    case DescType.XATTR:
    case DescType.XATTR_INTERNAL: {
      const name = enc.encode(d.name);
      v.setUint16(body, name.length, true);
      v.setUint16(body + 2, d.value.length, true);
      page.set(name, body + XATTR_FIXED);
      page.set(d.value, body + XATTR_FIXED + name.length);
      return;
    }
    case DescType.EXTENT_RLE:
      d.runs.forEach(([c, n], i) => {
        v.setUint32(body + RLE_ENTRY * i, c, true);
        v.setUint32(body + RLE_ENTRY * i + 4, n, true);
      });
      return;
    case DescType.EXTENT_TABLE:
      v.setUint32(body, d.numClusters % 2 ** 32, true);
      v.setUint32(body + 4, Math.floor(d.numClusters / 2 ** 32), true);
      d.runs.forEach(([p, n], i) => {
        v.setUint32(body + TABLE_FIXED + TABLE_ENTRY * i, p, true);
        v.setUint32(body + TABLE_FIXED + TABLE_ENTRY * i + 4, n, true);
      });
      return;
    case DescType.EXTENT_PAGE:
      v.setUint32(body, d.start, true);
      for (let i = 0; i < d.clusters.length; i++)
        v.setUint32(body + EXTENT_PAGE_FIXED + 4 * i, d.clusters[i], true);
      return;
  }
}

export { INVALID_PAGE };
