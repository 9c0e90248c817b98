// @storkit/vhost: vhost-user targets (virtio-blk, virtio-scsi) and the virtio-user initiator.
export { BLK_SEG_MAX, BlkDevice, type BlkDeviceOptions } from './blk.js';
export {
  type Coalescing,
  type ControllerOptions,
  type ControllerStats,
  VhostController,
} from './controller.js';
export type { VirtioDevice } from './device.js';
export { VhostError, type VhostErrorCode } from './errors.js';
export { FRONTEND_UVA_BASE, type FrontendOptions, VhostUserFrontend } from './frontend.js';
export { GuestMemory, type GuestRegion, MAX_MEM_SLOTS } from './memory.js';
export { type ScsiDeviceOptions, type ScsiTargetInfo, VhostScsiDevice } from './scsi.js';
export {
  type CreateBlkParams,
  type CreateScsiParams,
  VhostTarget,
  type VhostTargetOptions,
} from './target.js';
export { VirtioUserBlk, type VirtioUserBlkOptions } from './virtio-user-blk.js';
