// @storkit/blob: SPDK's blobstore for storkit. The blobstore lives on its metadata thread (where
// it was initialized or loaded); blob I/O runs on any reactor through the store's channels.
export { Bitmap } from './bitmap.js';
export { Blob, ClearMethod } from './blob.js';
export {
  type BlobCreateOptions,
  Blobstore,
  type BsInitOptions,
  type BsLoadOptions,
  type LoadProblem,
} from './blobstore.js';
export {
  type BlobChannel,
  type BlobIoCb,
  blobFlush,
  blobReadv,
  blobUnmap,
  blobWritev,
  blobWriteZeroes,
} from './channel.js';
export { BlobError, type BlobErrorCode, ERRNO } from './errors.js';
export type { Xattr } from './format/blob-md.js';
export { BLOBID_INVALID, blobIdToPage, PAGE_SIZE, pageToBlobId, XattrName } from './format/layout.js';
export type { Done, DoneWith } from './md-io.js';
export {
  type BlobDescriptor,
  BlobView,
  openStoreView,
  type StoreDescriptor,
  StoreView,
  storeView,
} from './views.js';
