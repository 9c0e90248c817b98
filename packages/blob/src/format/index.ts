// @storkit/blob/format: SPDK's blobstore on-disk format, for tools and tests that read images.
export * from './blob-md.js';
export { pageCrc } from './crc.js';
export * from './layout.js';
export { decodeMask, encodeMask } from './mask.js';
export * from './md-page.js';
export { decodeSuper, encodeSuper, type SuperBlock } from './super-block.js';
