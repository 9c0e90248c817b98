export { compareRange, copyRange } from './bytes.js';
export { cpuCount, currentCpu, pinThread, threadAffinity, threadId } from './cpu.js';
export { crc32c, crc32cHardware, crc32cList, crc32cRange } from './crc.js';
export {
  type AddressSpace,
  type DmaBacking,
  DmaRegion,
  type DmaRegionOptions,
  type HugepageMode,
} from './dma.js';
export { NativeError, native } from './errors.js';
export { type DmaAddr, DmaAllocator, type DmaAllocatorOptions } from './malloc.js';
export { MmioRegion } from './mmio.js';
export { assertAddressFree, closeFd, type ReuseportListener, reuseportListen } from './net.js';
export {
  attachPciDevice,
  type IoMap,
  ioAddressIn,
  MODEL_IO_SHIFT,
  ModelPciDevice,
  type ModelPciOptions,
  type OpenPciOptions,
  openPciDevice,
  PCI_CFG,
  PCI_CLASS_NVME,
  type PciDevice,
  type PciDeviceAccess,
  type PciDeviceShare,
  type PciDriverKind,
  type PciFunctionInfo,
  PciFunctionModel,
  type PciId,
  type PciProbe,
  PciSysfs,
  parsePciAddress,
  registerPciModel,
  setCommandBits,
  UioPciDevice,
  USER_SPACE_DRIVERS,
  unregisterPciModel,
  VfioPciDevice,
  vfioAvailable,
} from './pci/index.js';
export { DmaPool, type DmaPoolOptions } from './pool.js';
export { hugepagesFree, MappedRegion, type MemoryStats, memoryStats, regionState } from './region.js';
export {
  type ConnectFrom,
  SOCK_ACCEPT,
  SOCK_EAGAIN,
  SOCK_ECONNREFUSED,
  SOCK_ERR,
  SOCK_EVENT_WORDS,
  SOCK_HUP,
  SOCK_IN,
  SOCK_OUT,
  type SockAddresses,
  SockGroup,
  socketPriority,
  socketSetPriority,
} from './sock.js';
export { readTicks, threadCpuNs, tickRate, tickSource, ticks, ticksToUs, usToTicks } from './time.js';
export { Uring, type UringCompletion } from './uring.js';
export {
  GuestMapping,
  type VhostConnection,
  type VhostListener,
  type VhostMemRegion,
  type VhostMessage,
  vhostCloseFd,
  vhostConnect,
  vhostEventfd,
  vhostEventfdRead,
  vhostEventfdWrite,
  vhostListen,
} from './vhost-user.js';
export { ViewCache } from './view-cache.js';
