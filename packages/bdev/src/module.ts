// @storkit/bdev/module: for bdev module authors (SPDK's bdev_module.h).
export { Bdev, type BdevFnTable, type BdevInit, type BdevModule } from './bdev.js';
export { BdevIo } from './bdev-io.js';
export * from './index.js';
export { bdevIoComplete, iovsEqual, nowTicks } from './io-path.js';
// Virtual bdevs over a base (what passthru, delay, split and raid are built from).
export {
  type BaseChannels,
  baseSupports,
  forward,
  openBase,
  registerVbdevDevice,
  releaseVbdev,
  submitToBase,
} from './modules/vbdev.js';
export { bdevLockLbaRange, bdevUnlockLbaRange } from './range-lock.js';
export {
  bdevModuleClaimBdev,
  bdevModuleRegister,
  bdevModuleReleaseBdev,
  bdevModuleUnregister,
  bdevNotifyBlockcntChange,
  bdevRegister,
  bdevUnregister,
  bdevUnregisterByName,
} from './registry.js';
