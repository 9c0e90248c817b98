// The PCI bus as Linux's sysfs shows it: enumerate functions, read their IDs and driver,
// bind and unbind drivers. Every path hangs off one root, so tests run against a fake tree.
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { NativeError } from '../errors.js';

/** NVMe controllers: class 01 (mass storage), subclass 08 (NVM), prog-if 02 (NVM Express). */
export const PCI_CLASS_NVME = 0x010802;

const ADDRESS = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

/**
 * A PCI address in its canonical form (`0000:00:03.0`, lower case). A short form without
 * the domain (`00:03.0`) gets domain 0000. Throws EINVAL for anything else.
 */
export function parsePciAddress(text: string): string {
  const t = text.trim().toLowerCase();
  const full = ADDRESS.test(t) ? t : ADDRESS.test(`0000:${t}`) ? `0000:${t}` : null;
  if (full === null)
    throw new NativeError(`${JSON.stringify(text)} is not a PCI address (dddd:bb:dd.f)`, 'EINVAL');
  const m = ADDRESS.exec(full) as RegExpExecArray;
  if (Number.parseInt(m[3], 16) > 0x1f) throw new NativeError(`${text}: device number above 1f`, 'EINVAL');
  return full;
}

/** What sysfs says about one PCI function. */
export interface PciFunctionInfo {
  address: string;
  vendor: number;
  device: number;
  subsystemVendor: number;
  subsystemDevice: number;
  /** 24-bit class code (class, subclass, programming interface): 0x010802 for NVMe. */
  classCode: number;
  /** The bound driver (`nvme`, `vfio-pci`, `uio_pci_generic`, ...) or null. */
  driver: string | null;
  /** The IOMMU group, or null without an IOMMU. */
  iommuGroup: number | null;
  /** NUMA node (-1 when the platform has none). */
  numaNode: number;
}

/** A vendor:device pair to probe for. */
export interface PciId {
  vendor: number;
  device: number;
}

export interface PciProbe {
  classCode?: number;
  ids?: readonly PciId[];
  addresses?: readonly string[];
}

/** The PCI bus under a sysfs root (`/sys` on a real machine). */
export class PciSysfs {
  readonly root: string;
  readonly #probed: ((address: string) => void) | undefined;

  /** `probed` runs after each drivers_probe write: a fake tree's stand-in for the kernel. */
  constructor(root = '/sys', probed?: (address: string) => void) {
    this.root = root;
    this.#probed = probed;
  }

  devicePath(address: string): string {
    return join(this.root, 'bus/pci/devices', parsePciAddress(address));
  }

  /** Every PCI function, in address order. */
  list(): PciFunctionInfo[] {
    const dir = join(this.root, 'bus/pci/devices');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((n) => ADDRESS.test(n))
      .sort()
      .map((n) => this.info(n));
  }

  /** One function; ENODEV when there is none at `address`. */
  info(address: string): PciFunctionInfo {
    const a = parsePciAddress(address);
    const d = this.devicePath(a);
    if (!existsSync(d)) {
      throw new NativeError(`no PCI device at ${a} (see lspci, or storkit setup status)`, 'ENODEV');
    }
    const hex = (f: string): number => Number.parseInt(readFileSync(join(d, f), 'utf8').trim(), 16);
    const numa = existsSync(join(d, 'numa_node'))
      ? Number(readFileSync(join(d, 'numa_node'), 'utf8').trim())
      : -1;
    return {
      address: a,
      vendor: hex('vendor'),
      device: hex('device'),
      subsystemVendor: existsSync(join(d, 'subsystem_vendor')) ? hex('subsystem_vendor') : 0,
      subsystemDevice: existsSync(join(d, 'subsystem_device')) ? hex('subsystem_device') : 0,
      classCode: hex('class'),
      driver: link(join(d, 'driver')),
      iommuGroup: ((g) => (g === null ? null : Number(g)))(link(join(d, 'iommu_group'))),
      numaNode: Number.isFinite(numa) ? numa : -1,
    };
  }

  /**
   * Functions matching every given criterion: a class code, one of a vendor:device list, one
   * of a list of addresses (SPDK's probe by class, by ID table, by address).
   */
  probe(filter: PciProbe = {}): PciFunctionInfo[] {
    const wanted = filter.addresses?.map(parsePciAddress);
    return this.list().filter(
      (f) =>
        (filter.classCode === undefined || f.classCode === filter.classCode) &&
        (filter.ids === undefined ||
          filter.ids.some((i) => i.vendor === f.vendor && i.device === f.device)) &&
        (wanted === undefined || wanted.includes(f.address)),
    );
  }

  /** Whether a driver is registered (its module loaded). */
  driverLoaded(driver: string): boolean {
    return existsSync(join(this.root, 'bus/pci/drivers', driver));
  }

  /** Whether the platform has an IOMMU (any IOMMU group exists). */
  iommuPresent(): boolean {
    const d = join(this.root, 'kernel/iommu_groups');
    return existsSync(d) && readdirSync(d).length > 0;
  }

  /** Detach `address` from its driver, if it has one. */
  unbind(address: string): void {
    const a = parsePciAddress(address);
    const drv = join(this.devicePath(a), 'driver');
    if (link(drv) !== null) writeFileSync(join(drv, 'unbind'), a);
  }

  /**
   * Bind `address` to `driver` (driver_override, then a probe: what SPDK's setup.sh does), or
   * back to whatever the kernel picks with `driver` null. Throws EIO naming the driver when
   * the probe leaves the device elsewhere.
   */
  bind(address: string, driver: string | null): void {
    const a = parsePciAddress(address);
    if (driver !== null && !this.driverLoaded(driver)) {
      throw new NativeError(`driver ${driver} is not loaded (modprobe ${driver})`, 'ENODEV');
    }
    if (this.info(a).driver === driver && driver !== null) return;
    this.unbind(a);
    writeFileSync(join(this.devicePath(a), 'driver_override'), driver === null ? '\n' : driver);
    writeFileSync(join(this.root, 'bus/pci/drivers_probe'), a);
    this.#probed?.(a);
    const now = this.info(a).driver;
    if (driver !== null && now !== driver) {
      throw new NativeError(`${a}: ${driver} did not take the device (driver now ${now ?? 'none'})`, 'EIO');
    }
  }

  /** The path of a function's file (`config`, `resource0`, `reset`, ...). */
  file(address: string, name: string): string {
    return join(this.devicePath(address), name);
  }

  /** The bus address of BAR `index` from the `resource` table (0 when unimplemented). */
  barStart(address: string, index: number): number {
    const lines = readFileSync(this.file(address, 'resource'), 'utf8').trim().split('\n');
    const cols = lines[index]?.trim().split(/\s+/);
    return cols === undefined || cols.length < 2 ? 0 : Number(BigInt(cols[0]));
  }

  /** The size of BAR `index` from the `resource` table (0 when unimplemented). */
  barSize(address: string, index: number): number {
    const lines = readFileSync(this.file(address, 'resource'), 'utf8').trim().split('\n');
    const cols = lines[index]?.trim().split(/\s+/);
    if (cols === undefined || cols.length < 2) return 0;
    const start = BigInt(cols[0]);
    const end = BigInt(cols[1]);
    return end > start ? Number(end - start + 1n) : 0;
  }
}

function link(path: string): string | null {
  try {
    return basename(readlinkSync(path));
  } catch {
    return null;
  }
}
