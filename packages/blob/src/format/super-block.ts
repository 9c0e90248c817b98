// The super block (page 0): encode, decode and validate.
import { BlobError } from '../errors.js';
import { pageCrc } from './crc.js';
import { BSTYPE_LENGTH, PAGE_SIZE, SIGNATURE, SUPER, VERSION, VERSION_INITIAL } from './layout.js';

/** The fields of spdk_bs_super_block. Regions are in 4 KiB pages from the start of the device. */
export interface SuperBlock {
  version: number;
  clean: boolean;
  /** The super blob's id, or -1 (SPDK_BLOBID_INVALID). */
  superBlob: number;
  clusterSize: number;
  usedPageMaskStart: number;
  usedPageMaskLen: number;
  usedClusterMaskStart: number;
  usedClusterMaskLen: number;
  mdStart: number;
  mdLen: number;
  /** The blobstore type (SPDK's lvol uses "LVOLSTORE"); "" when unset. */
  bstype: string;
  usedBlobidMaskStart: number;
  usedBlobidMaskLen: number;
  /** Bytes of the device the blobstore spans (0 in old versions: the whole device). */
  size: number;
  /** Block size of the device the blobstore was made on (0 in old versions: 4096). */
  ioUnitSize: number;
}

function u64(v: DataView, off: number): number {
  const lo = v.getUint32(off, true);
  const hi = v.getUint32(off + 4, true);
  if (lo === 0xffffffff && hi === 0xffffffff) return -1;
  return hi * 2 ** 32 + lo;
}

function putU64(v: DataView, off: number, x: number): void {
  if (x === -1) {
    v.setUint32(off, 0xffffffff, true);
    v.setUint32(off + 4, 0xffffffff, true);
    return;
  }
  v.setUint32(off, x % 2 ** 32, true);
  v.setUint32(off + 4, Math.floor(x / 2 ** 32), true);
}

/** Encode a super block page, CRC included. */
export function encodeSuper(sb: SuperBlock): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  const v = new DataView(page.buffer);
  page.set(new TextEncoder().encode(SIGNATURE), SUPER.SIGNATURE);
  v.setUint32(SUPER.VERSION, sb.version, true);
  v.setUint32(SUPER.LENGTH, PAGE_SIZE, true);
  v.setUint32(SUPER.CLEAN, sb.clean ? 1 : 0, true);
  putU64(v, SUPER.SUPER_BLOB, sb.superBlob);
  v.setUint32(SUPER.CLUSTER_SIZE, sb.clusterSize, true);
  v.setUint32(SUPER.USED_PAGE_MASK_START, sb.usedPageMaskStart, true);
  v.setUint32(SUPER.USED_PAGE_MASK_LEN, sb.usedPageMaskLen, true);
  v.setUint32(SUPER.USED_CLUSTER_MASK_START, sb.usedClusterMaskStart, true);
  v.setUint32(SUPER.USED_CLUSTER_MASK_LEN, sb.usedClusterMaskLen, true);
  v.setUint32(SUPER.MD_START, sb.mdStart, true);
  v.setUint32(SUPER.MD_LEN, sb.mdLen, true);
  const t = new TextEncoder().encode(sb.bstype);
  if (t.length > BSTYPE_LENGTH) throw new BlobError('EINVAL', `bstype "${sb.bstype}" is over 16 bytes`);
  page.set(t, SUPER.BSTYPE);
  v.setUint32(SUPER.USED_BLOBID_MASK_START, sb.usedBlobidMaskStart, true);
  v.setUint32(SUPER.USED_BLOBID_MASK_LEN, sb.usedBlobidMaskLen, true);
  putU64(v, SUPER.SIZE, sb.size);
  v.setUint32(SUPER.IO_UNIT_SIZE, sb.ioUnitSize, true);
  v.setUint32(SUPER.CRC, pageCrc(page), true);
  return page;
}

function bad(what: string): BlobError {
  return new BlobError('EILSEQ', `super block: ${what}`);
}

/**
 * Decode and check the super block of a device of `devBytes` bytes and `blockSize`-byte blocks.
 * Throws EILSEQ naming the first thing that is wrong: what SPDK checks (signature, version, CRC,
 * size) and what SPDK trusts but a corrupt block could still get wrong while its CRC holds
 * (regions outside the device or overlapping, a cluster size that is no multiple of a page).
 */
export function decodeSuper(page: Uint8Array, devBytes: number, blockSize: number): SuperBlock {
  if (page.length < PAGE_SIZE) throw bad(`${page.length} bytes, a page is ${PAGE_SIZE}`);
  const v = new DataView(page.buffer, page.byteOffset, PAGE_SIZE);
  const sig = new TextDecoder('latin1').decode(page.subarray(SUPER.SIGNATURE, SUPER.SIGNATURE + 8));
  if (sig !== SIGNATURE)
    throw bad(`signature is ${JSON.stringify(sig)}, not "${SIGNATURE}" (no blobstore here)`);
  const version = v.getUint32(SUPER.VERSION, true);
  if (version < VERSION_INITIAL || version > VERSION)
    throw bad(`version ${version} (this reads 1 to ${VERSION})`);
  const stored = v.getUint32(SUPER.CRC, true);
  const crc = pageCrc(page.subarray(0, PAGE_SIZE));
  if (stored !== crc)
    throw bad(`CRC mismatch (stored 0x${stored.toString(16)}, computed 0x${crc.toString(16)})`);
  const bst = page.subarray(SUPER.BSTYPE, SUPER.BSTYPE + BSTYPE_LENGTH);
  const end = bst.indexOf(0);
  const sb: SuperBlock = {
    version,
    clean: v.getUint32(SUPER.CLEAN, true) === 1,
    superBlob: u64(v, SUPER.SUPER_BLOB),
    clusterSize: v.getUint32(SUPER.CLUSTER_SIZE, true),
    usedPageMaskStart: v.getUint32(SUPER.USED_PAGE_MASK_START, true),
    usedPageMaskLen: v.getUint32(SUPER.USED_PAGE_MASK_LEN, true),
    usedClusterMaskStart: v.getUint32(SUPER.USED_CLUSTER_MASK_START, true),
    usedClusterMaskLen: v.getUint32(SUPER.USED_CLUSTER_MASK_LEN, true),
    mdStart: v.getUint32(SUPER.MD_START, true),
    mdLen: v.getUint32(SUPER.MD_LEN, true),
    bstype: new TextDecoder().decode(end < 0 ? bst : bst.subarray(0, end)),
    usedBlobidMaskStart: v.getUint32(SUPER.USED_BLOBID_MASK_START, true),
    usedBlobidMaskLen: v.getUint32(SUPER.USED_BLOBID_MASK_LEN, true),
    size: u64(v, SUPER.SIZE),
    ioUnitSize: v.getUint32(SUPER.IO_UNIT_SIZE, true),
  };
  if (sb.size === 0) sb.size = devBytes;
  if (sb.ioUnitSize === 0) sb.ioUnitSize = PAGE_SIZE;
  checkSuper(sb, devBytes, blockSize);
  return sb;
}

function checkSuper(sb: SuperBlock, devBytes: number, blockSize: number): void {
  if (sb.size < 0 || sb.size > devBytes)
    throw bad(`blobstore size ${sb.size} is larger than the device (${devBytes} bytes)`);
  if (sb.clusterSize === 0 || sb.clusterSize % PAGE_SIZE !== 0)
    throw bad(`cluster size ${sb.clusterSize} is not a multiple of ${PAGE_SIZE}`);
  if (sb.ioUnitSize !== blockSize && sb.ioUnitSize % blockSize !== 0)
    throw bad(`io unit size ${sb.ioUnitSize} does not suit the device's ${blockSize}-byte blocks`);
  if (sb.mdLen === 0) throw bad('the metadata region is empty');
  const pages = Math.floor(sb.size / PAGE_SIZE);
  const regions: [string, number, number][] = [
    ['used page mask', sb.usedPageMaskStart, sb.usedPageMaskLen],
    ['used cluster mask', sb.usedClusterMaskStart, sb.usedClusterMaskLen],
    ['metadata', sb.mdStart, sb.mdLen],
  ];
  if (sb.version >= 3) regions.push(['used blob id mask', sb.usedBlobidMaskStart, sb.usedBlobidMaskLen]);
  for (const [name, start, len] of regions) {
    if (start === 0) throw bad(`the ${name} overlaps the super block (page 0)`);
    if (start + len > pages)
      throw bad(`the ${name} (pages ${start}+${len}) lies outside the device (${pages} pages)`);
  }
  for (let i = 0; i < regions.length; i++) {
    for (let j = i + 1; j < regions.length; j++) {
      const [a, as, al] = regions[i];
      const [b, bs, bl] = regions[j];
      if (al > 0 && bl > 0 && as < bs + bl && bs < as + al) throw bad(`the ${a} overlaps the ${b}`);
    }
  }
  const clusters = Math.floor(sb.size / sb.clusterSize);
  const mdClusters = Math.ceil((sb.mdStart + sb.mdLen) / (sb.clusterSize / PAGE_SIZE));
  if (mdClusters > clusters)
    throw bad(`metadata needs ${mdClusters} clusters, the blobstore has ${clusters}`);
}
