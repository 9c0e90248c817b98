import { binding } from './binding.js';
import { native, toNativeError } from './errors.js';
import { checkedSize, MappedRegion } from './region.js';

/**
 * An MMIO window: a device BAR mapped from a file (a PCI `resourceN` file), from a VFIO
 * device's region, or an anonymous shared region standing in for one (device models).
 *
 * Two ways to access registers, same semantics:
 * - `read8` ... `write64` and `doorbell32` use Atomics on this worker's view:
 *   no napi call. Atomics on a (non-shared) external ArrayBuffer are real, untorn, and
 *   never elided or merged by the JIT; the store is sequentially consistent, so on x86 it
 *   also orders every earlier store to DMA memory before the doorbell (what spdk_wmb does).
 *   Offsets must be naturally aligned: a misaligned offset would silently address the
 *   wrong register, so it throws RangeError.
 * - `nativeRead32` and friends: one napi call each, checked and fenced in Rust. The
 *   reference implementation and the baseline the benchmark compares against.
 */
export class MmioRegion extends MappedRegion {
  readonly #u8: Uint8Array;
  readonly #u16: Uint16Array;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;

  private constructor(handle: number, owner: boolean) {
    super(handle, owner);
    this.#u8 = new Uint8Array(this.buffer);
    this.#u16 = new Uint16Array(this.buffer);
    this.#u32 = new Uint32Array(this.buffer);
    this.#u64 = new BigUint64Array(this.buffer);
  }

  /** Map `length` bytes (default: to the end) of a file at `offset` (4 KiB aligned). */
  static mapFile(path: string, options: { offset?: number; length?: number } = {}): MmioRegion {
    const h = native(() => binding.memMapFile(path, options.offset ?? 0, options.length ?? 0));
    return new MmioRegion(h, true);
  }

  /** An anonymous shared region of `size` bytes standing in for a device BAR. */
  static createShared(size: number): MmioRegion {
    checkedSize('size', size);
    return new MmioRegion(
      native(() => binding.memCreateShared(size)),
      true,
    );
  }

  /** Own a window the native side just mapped for this worker (a BAR through VFIO). */
  static adopt(handle: number): MmioRegion {
    return new MmioRegion(handle, true);
  }

  /** Open this worker's view of a window another worker mapped. */
  static attach(handle: number): MmioRegion {
    return new MmioRegion(handle, false);
  }

  read8(offset: number): number {
    return Atomics.load(this.#u8, index(offset, 0));
  }

  write8(offset: number, value: number): void {
    Atomics.store(this.#u8, index(offset, 0), value);
  }

  read16(offset: number): number {
    return Atomics.load(this.#u16, index(offset, 1));
  }

  write16(offset: number, value: number): void {
    Atomics.store(this.#u16, index(offset, 1), value);
  }

  read32(offset: number): number {
    return Atomics.load(this.#u32, index(offset, 2));
  }

  write32(offset: number, value: number): void {
    Atomics.store(this.#u32, index(offset, 2), value);
  }

  read64(offset: number): bigint {
    return Atomics.load(this.#u64, index(offset, 3));
  }

  write64(offset: number, value: bigint): void {
    Atomics.store(this.#u64, index(offset, 3), value);
  }

  /** Ring a doorbell: earlier stores are visible before the device sees `value`. */
  doorbell32(offset: number, value: number): void {
    Atomics.store(this.#u32, index(offset, 2), value);
  }

  nativeRead32(offset: number): number {
    try {
      return binding.mmioRead32(this.handle, offset);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  nativeWrite32(offset: number, value: number): void {
    try {
      binding.mmioWrite32(this.handle, offset, value);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  nativeRead64(offset: number): bigint {
    try {
      return binding.mmioRead64(this.handle, offset);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  nativeWrite64(offset: number, value: bigint): void {
    try {
      binding.mmioWrite64(this.handle, offset, value);
    } catch (e) {
      throw toNativeError(e);
    }
  }

  nativeDoorbell32(offset: number, value: number): void {
    try {
      binding.mmioDoorbell32(this.handle, offset, value);
    } catch (e) {
      throw toNativeError(e);
    }
  }
}

// `shift` is log2 of the access width. Out-of-range indexes throw RangeError from Atomics itself.
function index(offset: number, shift: number): number {
  if (offset >>> 0 !== offset || (offset & ((1 << shift) - 1)) !== 0)
    throw new RangeError(`MMIO offset ${offset} is not aligned`);
  return offset >>> shift;
}
