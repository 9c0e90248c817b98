// SPDK's blobstore on-disk layout (lib/blob/blobstore.h, format version 3, as SPDK v24.01 writes
// it): every offset and constant of the format is defined here and nowhere else. All integers are
// little-endian; structures are packed.
//
//   page 0                super block
//   used_page_mask_start  mask of used metadata pages     (spdk_bs_md_mask: type u8, bits u32, mask)
//   used_cluster_mask_*   mask of used clusters
//   used_blobid_mask_*    mask of metadata pages that start a blob
//   md_start .. +md_len   metadata pages (a blob's id is 2^32 | the index of its first page)
//   clusters              data; the clusters the above occupy (cluster 0 at least) are used
//
// Pages are 4 KiB; the device's blocks ("io units") may be smaller.

export const PAGE_SIZE = 4096;

/** The super block (spdk_bs_super_block). */
export const SUPER = {
  SIGNATURE: 0, // u8[8] "SPDKBLOB"
  VERSION: 8, // u32
  LENGTH: 12, // u32 = 4096
  CLEAN: 16, // u32: 1 after a clean unload
  SUPER_BLOB: 20, // u64 (SPDK_BLOBID_INVALID = 2^64-1 when none)
  CLUSTER_SIZE: 28, // u32 bytes
  USED_PAGE_MASK_START: 32, // u32 pages
  USED_PAGE_MASK_LEN: 36,
  USED_CLUSTER_MASK_START: 40,
  USED_CLUSTER_MASK_LEN: 44,
  MD_START: 48,
  MD_LEN: 52,
  BSTYPE: 56, // u8[16]
  USED_BLOBID_MASK_START: 72,
  USED_BLOBID_MASK_LEN: 76,
  SIZE: 80, // u64 bytes of the blobstore (0 in version 2: the device size)
  IO_UNIT_SIZE: 88, // u32 (0 in older versions: 4096)
  CRC: 4092, // u32 CRC32C of bytes [0, 4092)
} as const;

export const SIGNATURE = 'SPDKBLOB';
export const VERSION_INITIAL = 1;
export const VERSION = 3;
export const BSTYPE_LENGTH = 16;

/** A mask page run (spdk_bs_md_mask). */
export const MASK = {
  TYPE: 0, // u8
  LENGTH: 1, // u32 bits
  BITS: 5, // the bits, LSB first within each byte
} as const;
export const MaskType = { USED_PAGES: 0, USED_CLUSTERS: 1, USED_BLOBIDS: 2 } as const;
export type MaskType = (typeof MaskType)[keyof typeof MaskType];

/** A metadata page (spdk_blob_md_page). */
export const MD = {
  ID: 0, // u64 blob id
  SEQUENCE: 8, // u32 position in the blob's chain
  RESERVED: 12, // u32
  DESCRIPTORS: 16, // u8[4072]
  NEXT: 4088, // u32 next page of the chain (INVALID_PAGE: none)
  CRC: 4092, // u32 CRC32C of bytes [0, 4092)
} as const;
export const DESCRIPTORS_SIZE = MD.NEXT - MD.DESCRIPTORS; // 4072
export const INVALID_PAGE = 0xffffffff;

/** Descriptor header (spdk_blob_md_descriptor): type u8, length u32 of the body that follows. */
export const DESC_HEADER = 5;
export const DescType = {
  PADDING: 0,
  EXTENT_RLE: 1,
  XATTR: 2,
  FLAGS: 3,
  XATTR_INTERNAL: 4,
  EXTENT_TABLE: 5,
  EXTENT_PAGE: 6,
} as const;
export type DescType = (typeof DescType)[keyof typeof DescType];

/** FLAGS body: invalid_flags u64, data_ro_flags u64, md_ro_flags u64. */
export const FLAGS_BODY = 24;
/** XATTR body: name_length u16, value_length u16, name, value. */
export const XATTR_FIXED = 4;
/** EXTENT_RLE body: runs of (cluster_idx u32, length u32); cluster 0 = unallocated. */
export const RLE_ENTRY = 8;
/** EXTENT_TABLE body: num_clusters u64, then runs of (page_idx u32, num_pages u32); page 0 = none. */
export const TABLE_FIXED = 8;
export const TABLE_ENTRY = 8;
/** EXTENT_PAGE body: start_cluster_idx u32, cluster_idx u32 per cluster. */
export const EXTENT_PAGE_FIXED = 4;
/**
 * Clusters one extent page maps: the largest power of two that fits the descriptor area
 * (SPDK_EXTENTS_PER_EP = 512 for 4 KiB pages).
 */
export const EXTENTS_PER_PAGE = 512;

/** invalid_flags: a blob with an unknown bit here cannot be opened. */
export const InvalidFlag = {
  THIN_PROV: 1n,
  INTERNAL_XATTR: 2n,
  EXTENT_TABLE: 4n,
  EXTERNAL_SNAPSHOT: 8n,
} as const;
export const INVALID_FLAGS_MASK = 0xfn;
/** data_ro_flags: an unknown bit opens the blob read-only (data and metadata). */
export const DataRoFlag = { READ_ONLY: 1n } as const;
export const DATA_RO_FLAGS_MASK = 1n;
/** md_ro_flags: bits 0-1 hold the clear method; an unknown bit opens the metadata read-only. */
export const MD_RO_CLEAR_METHOD_MASK = 3n;
export const MD_RO_FLAGS_MASK = 3n;

/** Blob ids: the index of the blob's first metadata page with bit 32 set. */
export const BLOBID_HIGH_BIT = 2 ** 32;
/** SPDK_BLOBID_INVALID (u64 max), as two u32 halves on disk. */
export const BLOBID_INVALID = -1;
/** Internal xattr names SPDK's blobstore keeps. */
export const XattrName = {
  /** On a clone: the u64 blob id of its snapshot. */
  SNAPSHOT: 'SNAP',
  /** On a snapshot being created: the u64 id of the blob it is taken from. */
  SNAPSHOT_IN_PROGRESS: 'SNAPTMP',
  /** On a snapshot being deleted into its only clone: the u64 id of that clone. */
  SNAPSHOT_PENDING_REMOVAL: 'SNAPRM',
  /** On an external-snapshot clone: the id of the external device. */
  EXTERNAL_SNAPSHOT_ID: 'EXTSNAP',
} as const;

/** Blob id of the metadata page `page`. */
export function pageToBlobId(page: number): number {
  return BLOBID_HIGH_BIT + page;
}

/** Metadata page of blob id `id` (its low 32 bits). */
export function blobIdToPage(id: number): number {
  return id % BLOBID_HIGH_BIT;
}
