import { closeSync, existsSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';

import type { DmaRegion } from '../dma.js';
import { NativeError } from '../errors.js';
import { MmioRegion } from '../mmio.js';
import { type IoMap, PCI_CFG, type PciDevice, type PciDeviceShare, setCommandBits } from './device.js';
import { physicalIoMap } from './io-map.js';
import type { PciFunctionInfo, PciSysfs } from './sysfs.js';
import { shareBars } from './vfio.js';

/**
 * A function bound to uio_pci_generic (no IOMMU): BARs are sysfs `resourceN` files, config
 * space is the sysfs `config` file, reset the sysfs `reset` file, DMA uses physical addresses
 * of hugepages. Removal shows as the sysfs node vanishing or config space reading all-ones.
 */
export class UioPciDevice implements PciDevice {
  readonly kind = 'uio' as const;
  readonly address: string;
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly #sysfs: PciSysfs;
  readonly #config: number;
  readonly #bars = new Map<number, MmioRegion>();
  readonly #release: () => void;
  readonly #scratch = Buffer.alloc(4);
  #closed = false;

  /** @internal Use `openPciDevice`. */
  constructor(info: PciFunctionInfo, sysfs: PciSysfs, release: () => void) {
    this.address = info.address;
    this.vendor = info.vendor;
    this.device = info.device;
    this.classCode = info.classCode;
    this.#sysfs = sysfs;
    this.#release = release;
    this.#config = openSync(sysfs.file(info.address, 'config'), 'r+');
  }

  get closed(): boolean {
    return this.#closed;
  }

  bar(index: number): MmioRegion {
    this.#check();
    let bar = this.#bars.get(index);
    if (bar === undefined) {
      if (!Number.isInteger(index) || index < 0 || index > 5) {
        throw new NativeError(`BAR index ${index} is not 0-5`, 'EINVAL');
      }
      const size = this.#sysfs.barSize(this.address, index);
      if (size === 0) throw new NativeError(`${this.address} has no BAR${index}`, 'EINVAL');
      bar = MmioRegion.mapFile(this.#sysfs.file(this.address, `resource${index}`), { length: size });
      this.#bars.set(index, bar);
    }
    return bar;
  }

  configRead(offset: number, width: 1 | 2 | 4): number {
    this.#check();
    checkConfig(offset, width);
    const n = readSync(this.#config, this.#scratch, 0, width, offset);
    if (n !== width) throw new NativeError(`${this.address}: short config read at ${offset}`, 'EIO');
    return width === 1
      ? this.#scratch[0]
      : width === 2
        ? this.#scratch.readUInt16LE(0)
        : this.#scratch.readUInt32LE(0);
  }

  configWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    this.#check();
    checkConfig(offset, width);
    this.#scratch.writeUInt32LE(value >>> 0, 0);
    const n = writeSync(this.#config, this.#scratch, 0, width, offset);
    if (n !== width) throw new NativeError(`${this.address}: short config write at ${offset}`, 'EIO');
  }

  enableBusMaster(): void {
    setCommandBits(this, PCI_CFG.CMD_MEMORY | PCI_CFG.CMD_BUS_MASTER);
  }

  dmaMap(region: DmaRegion): IoMap {
    this.#check();
    return physicalIoMap(region);
  }

  dmaUnmap(_region: DmaRegion): void {
    // Physical addresses need no mapping: nothing to undo.
  }

  barIoAddress(index: number): number {
    this.#check();
    const start = this.#sysfs.barStart(this.address, index);
    if (start === 0) throw new NativeError(`${this.address} has no BAR${index}`, 'EINVAL');
    return start;
  }

  async reset(): Promise<void> {
    this.#check();
    const path = this.#sysfs.file(this.address, 'reset');
    if (!existsSync(path))
      throw new NativeError(`${this.address} offers no reset (no sysfs reset file)`, 'ENOTSUP');
    writeFileSync(path, '1');
  }

  removed(): boolean {
    if (this.#closed) return true;
    if (!existsSync(this.#sysfs.devicePath(this.address))) return true;
    try {
      return this.configRead(PCI_CFG.VENDOR_ID, 2) === 0xffff;
    } catch {
      return true;
    }
  }

  share(): PciDeviceShare {
    this.#check();
    return { kind: 'uio', address: this.address, bars: shareBars(this.#bars) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of this.#bars.values()) b.close();
    this.#bars.clear();
    closeSync(this.#config);
    this.#release();
  }

  #check(): void {
    if (this.#closed) throw new NativeError(`${this.address} is closed`, 'EBADF');
  }
}

export function checkConfig(offset: number, width: number): void {
  if (
    !(width === 1 || width === 2 || width === 4) ||
    !Number.isInteger(offset) ||
    offset < 0 ||
    offset % width !== 0
  ) {
    throw new NativeError(`config access of ${width} bytes at ${offset} is not naturally aligned`, 'EINVAL');
  }
  if (offset + width > 4096)
    throw new NativeError(`config offset ${offset} is beyond config space`, 'EINVAL');
}
