// A PCI function implemented in software (a device model): BARs, config space and state words
// are shared memory regions (native, so a share is plain numbers any worker can open), and DMA
// reaches DmaRegions the driver mapped, by IO address. The driver side (`ModelPciDevice`) is a PciDevice like any
// other; the device side (`PciFunctionModel`) runs wherever the model runs (usually a worker
// of its own) and executes what the driver asks, through the same memory a device would use.
import { binding } from '../binding.js';
import { DmaRegion } from '../dma.js';
import { NativeError, native } from '../errors.js';
import { MmioRegion } from '../mmio.js';
import { type IoMap, PCI_CFG, type PciDevice, type PciDeviceShare, setCommandBits } from './device.js';
import { MODEL_IO_SHIFT, modelIoMap } from './io-map.js';
import { checkConfig } from './uio.js';

// Control buffer: config space, then state words, then the IOMMU bitmap (one bit per region
// handle: a DMA to an unmapped region faults, as behind a real IOMMU).
const CONFIG_BYTES = 4096;
const STATE_WORDS = 16;
const MAX_HANDLES = 1 << 16;
const W_FLAGS = 0;
const W_RESET_REQ = 1;
const W_RESET_ACK = 2;
const W_FAULTS = 3;
const F_REMOVED = 1;
const CONTROL_BYTES = CONFIG_BYTES + STATE_WORDS * 4 + MAX_HANDLES / 8;

interface Words {
  config: DataView;
  state: Int32Array;
  iommu: Int32Array;
}

// Atomics work on the (non-shared) ArrayBuffer of a native region too; only wait/notify need a
// SharedArrayBuffer, and the model never waits on these words.
function words(control: ArrayBuffer): Words {
  return {
    config: new DataView(control, 0, CONFIG_BYTES),
    state: new Int32Array(control, CONFIG_BYTES, STATE_WORDS),
    iommu: new Int32Array(control, CONFIG_BYTES + STATE_WORDS * 4, MAX_HANDLES / 32),
  };
}

/** A made-up address in domain ffff, unique in the process (from the control region's handle). */
function modelAddress(handle: number): string {
  const bus = ((handle >>> 5) & 0xff).toString(16).padStart(2, '0');
  return `ffff:${bus}:${(handle & 0x1f).toString(16).padStart(2, '0')}.0`;
}

export interface ModelPciOptions {
  vendor: number;
  device: number;
  classCode: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  revision?: number;
  /** BAR sizes by index (bytes, multiples of 4 KiB); absent or 0: unimplemented. */
  bars: readonly number[];
  /** The address it pretends to have (default a made-up one in domain ffff). */
  address?: string;
}

/** The driver's side of a model: a PciDevice over shared memory. */
export class ModelPciDevice implements PciDevice {
  readonly kind = 'model' as const;
  readonly address: string;
  readonly vendor: number;
  readonly device: number;
  readonly classCode: number;
  readonly #control: MmioRegion;
  readonly #w: Words;
  readonly #bars: (MmioRegion | null)[];
  readonly #owner: boolean;
  #closed = false;

  private constructor(o: ModelPciOptions | PciDeviceShare) {
    if ('kind' in o) {
      // Another worker's model, reached through its share.
      if (o.model === undefined) throw new NativeError('not a model share', 'EINVAL');
      this.address = o.address;
      this.#control = MmioRegion.attach(o.model.control);
      this.#w = words(this.#control.buffer);
      this.vendor = this.#w.config.getUint16(PCI_CFG.VENDOR_ID, true);
      this.device = this.#w.config.getUint16(PCI_CFG.DEVICE_ID, true);
      this.classCode = this.#w.config.getUint32(PCI_CFG.REVISION, true) >>> 8;
      this.#bars = o.bars.map((h) => (h === null ? null : MmioRegion.attach(h)));
      this.#owner = false;
      return;
    }
    this.#owner = true;
    this.#control = MmioRegion.createShared(CONTROL_BYTES);
    this.address = o.address ?? modelAddress(this.#control.handle);
    this.vendor = o.vendor;
    this.device = o.device;
    this.classCode = o.classCode;
    this.#w = words(this.#control.buffer);
    const c = this.#w.config;
    c.setUint16(PCI_CFG.VENDOR_ID, o.vendor, true);
    c.setUint16(PCI_CFG.DEVICE_ID, o.device, true);
    c.setUint32(PCI_CFG.REVISION, ((o.classCode << 8) | (o.revision ?? 0)) >>> 0, true);
    c.setUint16(PCI_CFG.SUBSYSTEM_VENDOR_ID, o.subsystemVendor ?? o.vendor, true);
    c.setUint16(PCI_CFG.SUBSYSTEM_ID, o.subsystemDevice ?? 0, true);
    this.#bars = [0, 1, 2, 3, 4, 5].map((i) => {
      const size = o.bars[i] ?? 0;
      return size > 0 ? MmioRegion.createShared(size) : null;
    });
  }

  /** A new model function; hand `share()` to the worker that runs the device side. */
  static create(options: ModelPciOptions): ModelPciDevice {
    return new ModelPciDevice(options);
  }

  /** The driver side of a model another worker created (its BARs attached here). */
  static fromShare(share: PciDeviceShare): ModelPciDevice {
    return new ModelPciDevice(share);
  }

  /** Whether this object created the model (its BARs are released with it). */
  get owner(): boolean {
    return this.#owner;
  }

  get closed(): boolean {
    return this.#closed;
  }

  bar(index: number): MmioRegion {
    this.#check();
    const b = this.#bars[index];
    if (b === null || b === undefined) throw new NativeError(`${this.address} has no BAR${index}`, 'EINVAL');
    return b;
  }

  configRead(offset: number, width: 1 | 2 | 4): number {
    this.#check();
    checkConfig(offset, width);
    const c = this.#w.config;
    return width === 1
      ? c.getUint8(offset)
      : width === 2
        ? c.getUint16(offset, true)
        : c.getUint32(offset, true);
  }

  configWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    this.#check();
    checkConfig(offset, width);
    // Only the command register is writable in this model's config space.
    if (offset !== PCI_CFG.COMMAND || width !== 2) return;
    this.#w.config.setUint16(offset, value & 0x0407, true);
  }

  enableBusMaster(): void {
    setCommandBits(this, PCI_CFG.CMD_MEMORY | PCI_CFG.CMD_BUS_MASTER);
  }

  dmaMap(region: DmaRegion): IoMap {
    this.#check();
    return modelDmaMap(this.#w, region);
  }

  dmaUnmap(region: DmaRegion): void {
    setMapped(this.#w, region.handle, false);
  }

  /** Asks the model to reset and waits (polling) until it has. ETIMEDOUT after `timeoutMs`. */
  async reset(timeoutMs = 5000): Promise<void> {
    this.#check();
    const s = this.#w.state;
    const want = Atomics.add(s, W_RESET_REQ, 1) + 1;
    this.#w.config.setUint16(PCI_CFG.COMMAND, 0, true);
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(s, W_RESET_ACK) < want) {
      if (Date.now() > deadline)
        throw new NativeError(`${this.address}: the model did not reset`, 'ETIMEDOUT');
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  removed(): boolean {
    return this.#closed || (Atomics.load(this.#w.state, W_FLAGS) & F_REMOVED) !== 0;
  }

  /** DMA accesses the model refused (unmapped region, out of bounds, bus mastering off). */
  get dmaFaults(): number {
    return Atomics.load(this.#w.state, W_FAULTS);
  }

  share(): PciDeviceShare {
    this.#check();
    return {
      kind: 'model',
      address: this.address,
      bars: this.#bars.map((b) => (b === null ? null : b.handle)),
      model: { control: this.#control.handle },
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of this.#bars) b?.close();
    this.#control.close();
    this.onClose?.();
  }

  /** @internal Run at close (the model registry releases its claim). */
  onClose: (() => void) | null = null;

  #check(): void {
    if (this.#closed) throw new NativeError(`${this.address} is closed`, 'EBADF');
  }
}

// Models `openPciDevice` finds by address, process-wide (a native table, so a model started on
// one thread opens on any reactor): a driver opens a model exactly as it opens hardware. One
// opener at a time, as a claim does for hardware.

/** Let `openPciDevice(share.address)` open this model, from any worker of the process. */
export function registerPciModel(share: PciDeviceShare): void {
  if (share.model === undefined) throw new NativeError('not a model share', 'EINVAL');
  native(() => binding.pciModelRegister(share.address, JSON.stringify(share)));
}

export function unregisterPciModel(address: string): void {
  binding.pciModelUnregister(address);
}

/** @internal The registered model at `address`, opened (EBUSY when already open), or null. */
export function openRegisteredModel(address: string): ModelPciDevice | null {
  const json = native(() => binding.pciModelOpen(address));
  if (json === null || json === undefined) return null;
  let dev: ModelPciDevice;
  try {
    dev = ModelPciDevice.fromShare(JSON.parse(json) as PciDeviceShare);
  } catch (e) {
    binding.pciModelClose(address);
    throw e;
  }
  dev.onClose = () => binding.pciModelClose(address);
  return dev;
}

function setMapped(w: Words, handle: number, on: boolean): void {
  if (handle >= MAX_HANDLES)
    throw new NativeError(`region handle ${handle} is beyond the model's IOMMU`, 'ENOSPC');
  const bit = 1 << (handle & 31);
  if (on) Atomics.or(w.iommu, handle >>> 5, bit);
  else Atomics.and(w.iommu, handle >>> 5, ~bit);
}

function modelDmaMap(w: Words, region: DmaRegion): IoMap {
  setMapped(w, region.handle, true);
  return modelIoMap(region);
}

/** A worker's access to a model function it did not create (BAR views, DMA mapping). */
export function modelAccess(share: PciDeviceShare): {
  dmaMap(region: DmaRegion): IoMap;
  dmaUnmap(region: DmaRegion): void;
  removed(): boolean;
  close(): void;
} {
  if (share.model === undefined) throw new NativeError('not a model share', 'EINVAL');
  const control = MmioRegion.attach(share.model.control);
  const w = words(control.buffer);
  return {
    dmaMap: (region) => modelDmaMap(w, region),
    dmaUnmap: (region) => setMapped(w, region.handle, false),
    removed: () => (Atomics.load(w.state, W_FLAGS) & F_REMOVED) !== 0,
    close: () => control.close(),
  };
}

/**
 * The device side of a model: BAR views, config space, and DMA by IO address into the
 * regions the driver mapped. One instance per thread that runs the model.
 */
export class PciFunctionModel {
  readonly address: string;
  readonly #control: MmioRegion;
  readonly #w: Words;
  readonly #bars: (MmioRegion | null)[];
  readonly #regions = new Map<number, DmaRegion>();
  #resetsSeen = 0;

  constructor(share: PciDeviceShare) {
    if (share.model === undefined) throw new NativeError('not a model share', 'EINVAL');
    this.address = share.address;
    this.#control = MmioRegion.attach(share.model.control);
    this.#w = words(this.#control.buffer);
    this.#bars = share.bars.map((h) => (h === null ? null : MmioRegion.attach(h)));
    this.#resetsSeen = Atomics.load(this.#w.state, W_RESET_REQ);
  }

  bar(index: number): MmioRegion {
    const b = this.#bars[index];
    if (b === null || b === undefined) throw new NativeError(`model has no BAR${index}`, 'EINVAL');
    return b;
  }

  /** Whether the driver has turned bus mastering on (the model may DMA). */
  get busMaster(): boolean {
    return (this.#w.config.getUint16(PCI_CFG.COMMAND, true) & PCI_CFG.CMD_BUS_MASTER) !== 0;
  }

  /**
   * A view of `length` bytes at IO address `io`, or null (counted as a fault) when bus
   * mastering is off, the region is not mapped for this device, or the range leaves it.
   * The view is a subarray: allocate-free callers use `dmaRegion` + `dmaOffset` instead.
   */
  dma(io: number, length: number): Uint8Array | null {
    const r = this.dmaRegion(io, length);
    if (r === null) return null;
    const off = io % MODEL_IO_SHIFT;
    return r.bytes.subarray(off, off + length);
  }

  /** The region behind IO address `io` when `[io, io+length)` is reachable, else null (a fault). */
  dmaRegion(io: number, length: number): DmaRegion | null {
    const handle = Math.floor(io / MODEL_IO_SHIFT);
    const off = io - handle * MODEL_IO_SHIFT;
    if (!this.busMaster || handle >= MAX_HANDLES || length < 0) return this.#fault();
    if ((Atomics.load(this.#w.iommu, handle >>> 5) & (1 << (handle & 31))) === 0) return this.#fault();
    let r = this.#regions.get(handle);
    if (r === undefined) {
      try {
        r = DmaRegion.attach(handle);
      } catch {
        return this.#fault();
      }
      this.#regions.set(handle, r);
    }
    if (off + length > r.size) return this.#fault();
    return r;
  }

  #fault(): null {
    Atomics.add(this.#w.state, W_FAULTS, 1);
    return null;
  }

  /** DMA accesses refused so far (the driver side's `dmaFaults`). */
  get dmaFaults(): number {
    return Atomics.load(this.#w.state, W_FAULTS);
  }

  /** Whether the driver asked for a function-level reset since the last `resetDone()`. */
  resetRequested(): boolean {
    return Atomics.load(this.#w.state, W_RESET_REQ) !== this.#resetsSeen;
  }

  /** The model has reset itself: the driver's `reset()` returns. */
  resetDone(): void {
    this.#resetsSeen = Atomics.load(this.#w.state, W_RESET_REQ);
    Atomics.store(this.#w.state, W_RESET_ACK, this.#resetsSeen);
  }

  /** Surprise removal: BARs read all-ones from now on, and `removed()` says so. */
  remove(): void {
    Atomics.or(this.#w.state, W_FLAGS, F_REMOVED);
    for (const b of this.#bars) b?.bytes.fill(0xff);
  }

  /** Close this thread's views (regions it reached, BARs, state). */
  close(): void {
    for (const r of this.#regions.values()) r.close();
    this.#regions.clear();
    for (const b of this.#bars) b?.close();
    this.#control.close();
  }
}
