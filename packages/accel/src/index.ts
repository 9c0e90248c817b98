// @storkit/accel: SPDK's acceleration framework. Operations (copy, fill, dualcast, compare, crc32c,
// copy_crc32c; alone, in sequences, in batches) go through a thread's channel to the module their
// opcode is assigned to: software (the reactor's CPU), ioat (I/OAT DMA channels) or offload (a
// piscina pool). Module authors import '@storkit/accel/module'.
import { accelModuleRegister } from './module.js';
import { ioatModule } from './modules/ioat.js';
import { offloadModule } from './modules/offload.js';
import { softwareModule } from './modules/software.js';

accelModuleRegister(softwareModule);
accelModuleRegister(ioatModule);
accelModuleRegister(offloadModule);

export { AccelChannel, type AccelChannelStats } from './channel.js';
export {
  ACCEL_EAGAIN,
  ACCEL_ECANCELED,
  ACCEL_EIO,
  ACCEL_EMISCOMPARE,
  ACCEL_ENOMEM,
  ACCEL_OK,
  AccelError,
  type AccelErrorCode,
} from './errors.js';
export {
  type AccelOptions,
  accelAssignOpc,
  accelCheckOptions,
  accelFinish,
  accelGetIoChannel,
  accelGetModuleInfo,
  accelGetOpcAssignments,
  accelGetOptions,
  accelInitialize,
  accelLocalStats,
  accelSetOptions,
  accelStartDefault,
  accelStarted,
} from './framework.js';
export { AccelIovecs } from './iovecs.js';
export type { AccelConfigEntry } from './module.js';
export { accelIoatScan, accelIoatScanned, accelIoatSetDevices } from './modules/ioat.js';
export {
  type AccelOffloadOptions,
  accelOffloadCheckOptions,
  accelOffloadGetOptions,
  accelOffloadSetOptions,
} from './modules/offload.js';
export { ACCEL_OPC, ACCEL_OPC_NAMES, type AccelOpcode, accelOpcodeByName } from './opcodes.js';
export { ACCEL_GROUP_MAX, AccelBatch, AccelSequence } from './sequence.js';
export {
  ACCEL_CONFIG_METHODS,
  type AccelSettings,
  accelSettingsApply,
  accelSettingsDefault,
  accelSettingsEntries,
  accelSettingsInstall,
  accelSettingsNow,
  accelWriteConfig,
} from './settings.js';
export { type AccelStats, accelStatsJson, accelStatsOf, accelStatsSum } from './stats.js';
export type { AccelCallback } from './task.js';
