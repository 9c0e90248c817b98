import { binding } from '../binding.js';
import type { DmaRegion } from '../dma.js';
import { NativeError, native } from '../errors.js';
import { MmioRegion } from '../mmio.js';
import { type IoMap, PCI_CFG, type PciDevice, type PciDeviceShare, setCommandBits } from './device.js';
import { vfioIoMap, vfioIoUnmap } from './io-map.js';
import type { PciFunctionInfo } from './sysfs.js';

/**
 * A function bound to vfio-pci: config space and BARs through the device fd, DMA through the
 * process's one IOMMU container. The kernel's request notifier is on from the start, so
 * `removed()` sees an unbind or hot remove (the kernel waits for us to close).
 */
export class VfioPciDevice implements PciDevice {
  readonly kind = 'vfio' as const;
  readonly address: string;
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly canReset: boolean;
  readonly #handle: number;
  readonly #bars = new Map<number, MmioRegion>();
  readonly #release: () => void;
  #requested = false;
  #closed = false;

  /** @internal Use `openPciDevice`. */
  constructor(info: PciFunctionInfo, release: () => void) {
    this.address = info.address;
    this.vendor = info.vendor;
    this.device = info.device;
    this.classCode = info.classCode;
    this.#release = release;
    this.#handle = native(() => binding.vfioOpen(info.address));
    try {
      this.canReset = native(() => binding.vfioDeviceInfo(this.#handle)).canReset;
      native(() => binding.vfioEnableRequestNotifier(this.#handle));
    } catch (e) {
      binding.vfioClose(this.#handle);
      throw e;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  bar(index: number): MmioRegion {
    this.#check();
    let bar = this.#bars.get(index);
    if (bar === undefined) {
      const m = native(() => binding.vfioMapBar(this.#handle, index));
      if (m.offset !== 0) {
        binding.memRelease(m.region);
        throw new NativeError(`${this.address}: BAR${index} is mmappable only from ${m.offset}`, 'ENOTSUP');
      }
      bar = MmioRegion.adopt(m.region);
      this.#bars.set(index, bar);
    }
    return bar;
  }

  configRead(offset: number, width: 1 | 2 | 4): number {
    this.#check();
    return native(() => binding.vfioConfigRead(this.#handle, offset, width));
  }

  configWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    this.#check();
    native(() => binding.vfioConfigWrite(this.#handle, offset, width, value));
  }

  enableBusMaster(): void {
    setCommandBits(this, PCI_CFG.CMD_MEMORY | PCI_CFG.CMD_BUS_MASTER);
  }

  dmaMap(region: DmaRegion): IoMap {
    this.#check();
    return vfioIoMap(region);
  }

  dmaUnmap(region: DmaRegion): void {
    vfioIoUnmap(region);
  }

  barIoAddress(index: number): number {
    const bar = this.bar(index);
    return native(() => binding.memMapIommuDevice(bar.handle));
  }

  async reset(): Promise<void> {
    this.#check();
    native(() => binding.vfioReset(this.#handle));
  }

  removed(): boolean {
    if (this.#closed) return true;
    if (!this.#requested) this.#requested = native(() => binding.vfioTakeRequest(this.#handle));
    return this.#requested;
  }

  share(): PciDeviceShare {
    this.#check();
    return { kind: 'vfio', address: this.address, bars: shareBars(this.#bars) };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of this.#bars.values()) b.close();
    this.#bars.clear();
    binding.vfioClose(this.#handle);
    this.#release();
  }

  #check(): void {
    if (this.#closed) throw new NativeError(`${this.address} is closed`, 'EBADF');
  }
}

export function shareBars(bars: Map<number, MmioRegion>): (number | null)[] {
  const out: (number | null)[] = [null, null, null, null, null, null];
  for (const [i, b] of bars) out[i] = b.handle;
  return out;
}
