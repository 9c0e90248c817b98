// @storkit/block: the block backend contract every target serves from. The bdev adapter is
// @storkit/bdev's BdevBlockBackend; the RAM test double is in '@storkit/block/testing'.
export type { BlockBackend, BlockBackendInfo, IoCb, IoVec, Lba, SeekCb } from './backend.js';
export { IoStatus } from './backend.js';
export { DeferredCompletions } from './completions.js';
export { ContainedErrors, setContainedLog } from './contained.js';
export { BlockError, type BlockErrorCode } from './errors.js';
export { type FifoLink, LinkedFifo } from './fifo.js';
export {
  IOBUF_DEFAULTS,
  Iobuf,
  IobufChannel,
  type IobufClassStats,
  IobufEntry,
  type IobufOptions,
  IobufPool,
  iobufOptions,
} from './iobuf.js';
