// @storkit/bdev: the consumer API (SPDK's bdev.h). Module authors import '@storkit/bdev/module';
// the built-in modules' create/delete functions are in '@storkit/bdev/modules'.
export type { Bdev } from './bdev.js';
export type { BdevIo } from './bdev-io.js';
export { BdevBlockBackend, type BdevBlockBackendStats } from './block-backend.js';
export type { BdevChannel } from './channel.js';
export {
  bdevChannelStat,
  bdevEnableHistogram,
  bdevGetChannelIostats,
  bdevGetIostat,
  bdevGetQosLimits,
  bdevSetQosLimit,
  bdevSetTimeout,
  type ChannelIoStat,
  type QosParams,
} from './control.js';
export type { BdevDesc, BdevEventCb, BdevTimeoutCb } from './desc.js';
export { bdevRegisterDmaRegion, bdevUnregisterDmaRegion } from './dma-buffers.js';
export { BdevError, type BdevErrorCode } from './errors.js';
export { bdevInfoJson } from './info.js';
export {
  bdevAbort,
  bdevCompareAndWritev,
  bdevComparev,
  bdevFlush,
  bdevNvmeAdminPassthru,
  bdevNvmeIoPassthru,
  bdevRead,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWritev,
  bdevWriteZeroes,
  queueIoWait,
} from './io.js';
export { IoWaitEntry } from './io-wait.js';
export type { QosLimits } from './qos.js';
export {
  type BdevOptions,
  bdevAliasAdd,
  bdevAliasDel,
  bdevClose,
  bdevExamine,
  bdevExamineErrors,
  bdevGetAll,
  bdevGetByName,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevWaitForExamine,
  getBdevOptions,
  setBdevOptions,
} from './registry.js';
export { HISTOGRAM_BUCKET_SHIFT, Histogram, histogramSpdkJson, IoStat, type IoStatJson } from './stats.js';
export {
  BdevEvent,
  type Blocks,
  ENOMEM,
  IO_TYPE_NAMES,
  type IoCb,
  IoStatus,
  IoType,
  type NvmeCompletion,
} from './types.js';
