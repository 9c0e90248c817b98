export {
  type IoMap,
  ioAddressIn,
  PCI_CFG,
  type PciDevice,
  type PciDeviceShare,
  type PciDriverKind,
  setCommandBits,
} from './device.js';
export { MODEL_IO_SHIFT } from './io-map.js';
export {
  ModelPciDevice,
  type ModelPciOptions,
  PciFunctionModel,
  registerPciModel,
  unregisterPciModel,
} from './model.js';
export {
  attachPciDevice,
  type OpenPciOptions,
  openPciDevice,
  type PciDeviceAccess,
  USER_SPACE_DRIVERS,
  vfioAvailable,
} from './open.js';
export {
  PCI_CLASS_NVME,
  type PciFunctionInfo,
  type PciId,
  type PciProbe,
  PciSysfs,
  parsePciAddress,
} from './sysfs.js';
export { UioPciDevice } from './uio.js';
export { VfioPciDevice } from './vfio.js';
