// The one shape of a PCI function a driver talks to: BARs as MMIO windows, config space,
// DMA mapping, reset, removal. VFIO, uio and the software device models all implement it,
// so a driver cannot tell a model from hardware.
import type { DmaRegion } from '../dma.js';
import type { MmioRegion } from '../mmio.js';

/** Config-space offsets and bits a driver needs (PCI Local Bus 3.0, chapter 6). */
export const PCI_CFG = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION: 0x08,
  CLASS: 0x09,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  CAPABILITIES: 0x34,
  /** COMMAND bits. */
  CMD_IO: 1 << 0,
  CMD_MEMORY: 1 << 1,
  CMD_BUS_MASTER: 1 << 2,
  CMD_INTX_DISABLE: 1 << 10,
} as const;

/** How a function is reached. */
export type PciDriverKind = 'vfio' | 'uio' | 'model';

/**
 * The IO addresses of a DMA region as one device sees them: `pages[i]` is the IO address of
 * the first byte of page `i`. For VFIO and models the pages are contiguous in IO space
 * (`contiguous`), for uio they are physical hugepages.
 */
export interface IoMap {
  readonly space: 'iova' | 'physical';
  readonly pageSize: number;
  readonly pages: Float64Array;
  readonly contiguous: boolean;
}

/** The IO address of byte `offset` of a region mapped as `map`. */
export function ioAddressIn(map: IoMap, offset: number): number {
  const page = Math.floor(offset / map.pageSize);
  return map.pages[page] + (offset - page * map.pageSize);
}

/** Everything another worker needs to reach the same function (plain JSON). */
export interface PciDeviceShare {
  kind: PciDriverKind;
  address: string;
  /** MMIO window handles by BAR index (null: not mapped). */
  bars: (number | null)[];
  /** Model only: the handle of its config space, state words and IOMMU bitmap. */
  model?: { control: number };
}

/**
 * A PCI function driven from user space. Methods are synchronous except `reset` (an FLR
 * takes the device away for 100 ms or more). Errors are NativeError with errno-style codes.
 */
export interface PciDevice {
  readonly kind: PciDriverKind;
  /** Canonical address (`0000:00:03.0`); a model gets a made-up one. */
  readonly address: string;
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly closed: boolean;

  /** BAR `index` as an MMIO window (mapped once; owned by the device, closed with it). */
  bar(index: number): MmioRegion;
  /** Read 1, 2 or 4 bytes of config space (naturally aligned). */
  configRead(offset: number, width: 1 | 2 | 4): number;
  configWrite(offset: number, width: 1 | 2 | 4, value: number): void;
  /** Memory space and bus mastering on: the device may now DMA. */
  enableBusMaster(): void;
  /**
   * Make `region` reachable by the device and return its IO addresses (idempotent). Every
   * region handed to the device must go through here first.
   */
  dmaMap(region: DmaRegion): IoMap;
  /** Take `region` out of the device's reach (before it is freed). */
  dmaUnmap(region: DmaRegion): void;
  /**
   * The IO address at which a device reaches BAR `index` of this function (peer to peer: an NVMe
   * controller's memory buffer, whose address the controller is told and which no DMA buffer may
   * overlap). VFIO maps the BAR into the IOMMU (undone when the BAR is unmapped, at close); uio
   * gives its bus address. Absent where a device cannot be reached so (device models).
   */
  barIoAddress?(index: number): number;
  /** Function-level reset. */
  reset(): Promise<void>;
  /**
   * Whether the device is gone or the kernel wants it back (hot remove, unbind): the driver
   * must fail its I/O and close. Cheap enough to call from a slow poller.
   */
  removed(): boolean;
  /** What another worker needs to `attachPciDevice` the same function. */
  share(): PciDeviceShare;
  /** Unmap BARs, release the device and the claim. Idempotent. */
  close(): void;
}

/** Read the command register, set bits, write it back. */
export function setCommandBits(dev: PciDevice, bits: number): void {
  const cmd = dev.configRead(PCI_CFG.COMMAND, 2);
  if ((cmd & bits) !== bits) dev.configWrite(PCI_CFG.COMMAND, 2, cmd | bits);
}
