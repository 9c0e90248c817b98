// @storkit/blob: SPDK's blobstore for storkit.
export { Bitmap } from './bitmap.js';
export { BlobError, type BlobErrorCode } from './errors.js';
