// @storkit/bdev/modules: the built-in bdev modules' create/delete functions, with SPDK's RPC
// method and parameter names. Each create returns { name, replay }: run the same function with
// `replay` on every other reactor (same uuid, shared memory handles) to create that reactor's
// instance of the bdev.

export { applyBdevConfig, bdevCalls, type ConfigCall } from '../perf/config.js';
export {
  bdevDelayCreate,
  bdevDelayDelete,
  bdevDelayUpdateLatency,
  type DelayCreateParams,
  type DelayUpdateParams,
  delayModule,
} from './delay.js';
export {
  bdevErrorCreate,
  bdevErrorDelete,
  bdevErrorInjectError,
  type ErrorCreateParams,
  type ErrorInjectParams,
  errorModule,
} from './error.js';
export { bdevMallocCreate, bdevMallocDelete, type MallocCreateParams, mallocModule } from './malloc.js';
export { bdevNullCreate, bdevNullDelete, bdevNullResize, type NullCreateParams, nullModule } from './null.js';
export type { Created } from './params.js';
export {
  bdevPassthruCreate,
  bdevPassthruDelete,
  type PassthruCreateParams,
  passthruModule,
} from './passthru.js';
export {
  bdevRaidAddBaseBdev,
  bdevRaidCreate,
  bdevRaidDelete,
  bdevRaidGetBdevs,
  bdevRaidRemoveBaseBdev,
  type RaidCreateParams,
  raidModule,
} from './raid/index.js';
export { bdevSplitCreate, bdevSplitDelete, type SplitCreateParams, splitModule } from './split.js';
export {
  type AioCreateParams,
  aioModule,
  bdevAioCreate,
  bdevAioDelete,
  bdevUringCreate,
  bdevUringDelete,
  type FileCreated,
  type UringCreateParams,
  uringModule,
} from './uring.js';
