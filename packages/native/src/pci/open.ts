import { binding } from '../binding.js';
import type { DmaRegion } from '../dma.js';
import { NativeError, native } from '../errors.js';
import { MmioRegion } from '../mmio.js';
import type { IoMap, PciDevice, PciDeviceShare, PciDriverKind } from './device.js';
import { physicalIoMap, vfioIoMap, vfioIoUnmap } from './io-map.js';
import { modelAccess, openRegisteredModel } from './model.js';
import { PciSysfs, parsePciAddress } from './sysfs.js';
import { UioPciDevice } from './uio.js';
import { VfioPciDevice } from './vfio.js';

export interface OpenPciOptions {
  /** The sysfs root (tests); default /sys. */
  sysfs?: PciSysfs;
  /** Refuse a function of another class (ENOTSUP), e.g. PCI_CLASS_NVME. */
  classCode?: number;
  /** What the caller expects, for messages ("an NVMe controller"). */
  what?: string;
  /** Where claims live (default /var/tmp, as SPDK's lock files). */
  lockDir?: string;
}

/** The user-space drivers a function can be bound to, in order of preference. */
export const USER_SPACE_DRIVERS = ['vfio-pci', 'uio_pci_generic'] as const;

/**
 * Open a PCI function for this process: through VFIO when it is bound to vfio-pci, through
 * uio when bound to uio_pci_generic, or a device model registered in this worker at that address. Errors name the fix:
 * ENODEV no such function; ENOTSUP not of the wanted class; ENXIO bound to no driver and
 * EBUSY bound to a kernel driver (both: `storkit setup`); EBUSY claimed by another process.
 */
export function openPciDevice(address: string, options: OpenPciOptions = {}): PciDevice {
  const model = openRegisteredModel(parsePciAddress(address));
  if (model !== null) {
    if (options.classCode !== undefined && model.classCode !== options.classCode) {
      model.close();
      throw new NativeError(`${model.address} is not ${options.what ?? 'of the wanted class'}`, 'ENOTSUP');
    }
    return model;
  }
  const sysfs = options.sysfs ?? new PciSysfs();
  const info = sysfs.info(address);
  const a = info.address;
  if (options.classCode !== undefined && info.classCode !== options.classCode) {
    throw new NativeError(
      `${a} is not ${options.what ?? `of class 0x${hex6(options.classCode)}`} (class 0x${hex6(info.classCode)}, vendor:device ${hex4(info.vendor)}:${hex4(info.device)})`,
      'ENOTSUP',
    );
  }
  if (info.driver === null) {
    throw new NativeError(
      `${a} is bound to no driver: run \`storkit setup\` to bind it to vfio-pci`,
      'ENXIO',
    );
  }
  if (!(USER_SPACE_DRIVERS as readonly string[]).includes(info.driver)) {
    throw new NativeError(
      `${a} is in use by the kernel driver ${info.driver}: run \`storkit setup\` to hand it to vfio-pci (or uio_pci_generic)`,
      'EBUSY',
    );
  }
  const claim = native(() => binding.pciClaim(options.lockDir ?? '/var/tmp', a));
  const release = (): void => binding.closeFd(claim);
  try {
    return info.driver === 'vfio-pci'
      ? new VfioPciDevice(info, release)
      : new UioPciDevice(info, sysfs, release);
  } catch (e) {
    release();
    throw e;
  }
}

/** Another worker's access to a function opened elsewhere: its BARs and DMA mapping. */
export interface PciDeviceAccess {
  readonly kind: PciDriverKind;
  readonly address: string;
  bar(index: number): MmioRegion;
  dmaMap(region: DmaRegion): IoMap;
  dmaUnmap(region: DmaRegion): void;
  /** Close this worker's BAR views. */
  close(): void;
}

/** Attach, in this worker, to a function another worker opened (from its `share()`). */
export function attachPciDevice(share: PciDeviceShare): PciDeviceAccess {
  const bars = new Map<number, MmioRegion>();
  const model = share.kind === 'model' ? modelAccess(share) : null;
  return {
    kind: share.kind,
    address: share.address,
    bar(index: number): MmioRegion {
      let b = bars.get(index);
      if (b === undefined) {
        const h = share.bars[index];
        if (h === null || h === undefined) {
          throw new NativeError(`${share.address}: BAR${index} is not mapped by its owner`, 'EINVAL');
        }
        b = MmioRegion.attach(h);
        bars.set(index, b);
      }
      return b;
    },
    dmaMap: (region) =>
      model !== null
        ? model.dmaMap(region)
        : share.kind === 'vfio'
          ? vfioIoMap(region)
          : physicalIoMap(region),
    dmaUnmap: (region) => {
      if (model !== null) model.dmaUnmap(region);
      else if (share.kind === 'vfio') vfioIoUnmap(region);
    },
    close(): void {
      for (const b of bars.values()) b.close();
      bars.clear();
      model?.close();
    },
  };
}

function hex6(n: number): string {
  return n.toString(16).padStart(6, '0');
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Whether this machine can use VFIO (/dev/vfio/vfio exists). */
export function vfioAvailable(): boolean {
  return binding.vfioAvailable();
}
