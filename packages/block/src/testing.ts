// @storkit/block/testing: the RAM test double of the block backend contract. Not production API:
// targets serve bdevs (BdevBlockBackend); tests and benches of the protocol engines, which run
// without reactors, serve this.

import { randomUUID } from 'node:crypto';

import { type BlockBackend, type IoCb, IoStatus, type IoVec, type Lba, type SeekCb } from './backend.js';
import { DeferredCompletions } from './completions.js';
import { BlockError } from './errors.js';

const bufferCopy = Buffer.prototype.copy as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  sourceStart: number,
  sourceEnd: number,
) => number;

export interface RamBackendOptions {
  name: string;
  blockSize: number;
  numBlocks: number;
  uuid?: string;
  /** Default true. */
  writeCache?: boolean;
  /** Default true. */
  unmapSupported?: boolean;
  optimalIoBoundary?: number;
  readOnly?: boolean;
  /** Default 256 (data moves in one synchronous copy, so any write is atomic). */
  atomicWriteBlocks?: number;
  physicalBlockSize?: number;
}

/** Completed I/O per kind, for tests to check what reached the medium. */
export interface RamCounts {
  read: number;
  write: number;
  flush: number;
  writeZeroes: number;
  unmap: number;
  compare: number;
  compareAndWrite: number;
}

/**
 * A thin-provisioned block backend in process memory (the malloc bdev's role, without reactors).
 * Data moves at submit time; completions are delivered in order from one `setImmediate` per batch
 * (as SPDK's malloc bdev completes from a poller), so a caller is never re-entered from its own
 * submit.
 */
export class RamBackend implements BlockBackend {
  readonly name: string;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly uuid: string;
  readonly writeCache: boolean;
  readonly unmapSupported: boolean;
  readonly optimalIoBoundary: number;
  readonly physicalBlockSize: number;
  readonly readOnly: boolean;
  readonly atomicWriteBlocks: number;
  /** The medium; tests compare what initiators see with what is stored, or write it directly. */
  readonly data: Uint8Array;
  readonly counts: RamCounts = {
    read: 0,
    write: 0,
    flush: 0,
    writeZeroes: 0,
    unmap: 0,
    compare: 0,
    compareAndWrite: 0,
  };
  /** One byte per block: 1 when written since the last deallocation (thin provisioning state). */
  readonly #mapped: Uint8Array;
  readonly #done = new DeferredCompletions();

  constructor(o: RamBackendOptions) {
    if (!Number.isInteger(o.blockSize) || o.blockSize < 512 || (o.blockSize & (o.blockSize - 1)) !== 0) {
      throw new BlockError('EINVAL', `block size ${o.blockSize} is not a power of two >= 512`);
    }
    if (!Number.isInteger(o.numBlocks) || o.numBlocks <= 0) {
      throw new BlockError('EINVAL', `num_blocks ${o.numBlocks} must be a positive integer`);
    }
    const phys = o.physicalBlockSize ?? o.blockSize;
    if (phys < o.blockSize || phys % o.blockSize !== 0 || (phys & (phys - 1)) !== 0) {
      throw new BlockError(
        'EINVAL',
        `physical block size ${phys} is not a power-of-two multiple of ${o.blockSize}`,
      );
    }
    this.name = o.name;
    this.blockSize = o.blockSize;
    this.numBlocks = o.numBlocks;
    this.uuid = o.uuid ?? randomUUID();
    this.writeCache = o.writeCache ?? true;
    this.unmapSupported = o.unmapSupported ?? true;
    this.optimalIoBoundary = o.optimalIoBoundary ?? 0;
    this.readOnly = o.readOnly ?? false;
    this.physicalBlockSize = phys;
    this.atomicWriteBlocks = o.atomicWriteBlocks ?? 256;
    this.data = new Uint8Array(o.blockSize * o.numBlocks);
    this.#mapped = new Uint8Array(o.numBlocks);
  }

  readv<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    const ok = this.#inRange(offset, count) && this.#copyOut(iov, offset, count);
    if (ok) this.counts.read++;
    this.#done.push(cb, ctx, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
  }

  writev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    const ok = this.#writable(offset, count) && this.#copyIn(iov, offset, count);
    if (ok) this.counts.write++;
    this.#done.push(cb, ctx, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
  }

  comparev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    if (!this.#inRange(offset, count)) {
      this.#done.push(cb, ctx, IoStatus.FAILED);
      return;
    }
    this.counts.compare++;
    this.#done.push(cb, ctx, this.#same(iov, offset, count) ? IoStatus.SUCCESS : IoStatus.MISCOMPARE);
  }

  compareAndWritev<C>(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    if (!this.#writable(offset, count)) {
      this.#done.push(cb, ctx, IoStatus.FAILED);
      return;
    }
    // Compare and write happen in this one synchronous step: no other write can come between.
    if (!this.#same(compare, offset, count)) {
      this.#done.push(cb, ctx, IoStatus.MISCOMPARE);
      return;
    }
    this.#copyIn(write, offset, count);
    this.counts.compareAndWrite++;
    this.#done.push(cb, ctx, IoStatus.SUCCESS);
  }

  unmap<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    const ok = this.#writable(offset, count);
    if (ok) {
      // Deallocated blocks read back as zeroes (LBPRZ, NVMe DLFEAT).
      this.data.fill(0, offset * this.blockSize, (offset + count) * this.blockSize);
      this.#mapped.fill(0, offset, offset + count);
      this.counts.unmap++;
    }
    this.#done.push(cb, ctx, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
  }

  writeZeroes<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    const ok = this.#writable(offset, count);
    if (ok) {
      this.data.fill(0, offset * this.blockSize, (offset + count) * this.blockSize);
      this.#mapped.fill(1, offset, offset + count);
      this.counts.writeZeroes++;
    }
    this.#done.push(cb, ctx, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
  }

  flush<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    const ok = this.#inRange(offset, count);
    if (ok) this.counts.flush++;
    this.#done.push(cb, ctx, ok ? IoStatus.SUCCESS : IoStatus.FAILED);
  }

  reset<C>(cb: IoCb<C>, ctx: C): void {
    // Data moves at submit, so nothing is left to abort; queued completions still run in order.
    this.#done.push(cb, ctx, IoStatus.SUCCESS);
  }

  seekData<C>(offset: Lba, cb: SeekCb<C>, ctx: C): void {
    let i = offset;
    while (i < this.numBlocks && this.#mapped[i] === 0) i++;
    setImmediate(cb, IoStatus.SUCCESS, ctx, i);
  }

  seekHole<C>(offset: Lba, cb: SeekCb<C>, ctx: C): void {
    let i = offset;
    while (i < this.numBlocks && this.#mapped[i] !== 0) i++;
    setImmediate(cb, IoStatus.SUCCESS, ctx, i);
  }

  #inRange(offset: Lba, count: Lba): boolean {
    return (
      Number.isInteger(offset) &&
      Number.isInteger(count) &&
      offset >= 0 &&
      count >= 0 &&
      offset + count <= this.numBlocks
    );
  }

  #writable(offset: Lba, count: Lba): boolean {
    return !this.readOnly && this.#inRange(offset, count);
  }

  /** Device → buffers; false when the buffers do not cover the range. */
  #copyOut(iov: IoVec, offset: Lba, count: Lba): boolean {
    let pos = offset * this.blockSize;
    let left = count * this.blockSize;
    for (let i = 0; i < iov.length && left > 0; i++) {
      const b = iov[i];
      const n = Math.min(b.length, left);
      // Buffer#copy takes a range of the medium without making a view of it (no allocation).
      bufferCopy.call(this.data, b, 0, pos, pos + n);
      pos += n;
      left -= n;
    }
    return left === 0;
  }

  /** Buffers → device; false when the buffers do not cover the range (nothing is then marked). */
  #copyIn(iov: IoVec, offset: Lba, count: Lba): boolean {
    let pos = offset * this.blockSize;
    let left = count * this.blockSize;
    for (let i = 0; i < iov.length && left > 0; i++) {
      const b = iov[i];
      const n = Math.min(b.length, left);
      if (n === b.length) this.data.set(b, pos);
      else bufferCopy.call(b, this.data, pos, 0, n);
      pos += n;
      left -= n;
    }
    if (left !== 0) return false;
    this.#mapped.fill(1, offset, offset + count);
    return true;
  }

  #same(iov: IoVec, offset: Lba, count: Lba): boolean {
    let p = offset * this.blockSize;
    const end = p + count * this.blockSize;
    for (let i = 0; i < iov.length && p < end; i++) {
      const v = iov[i];
      const len = Math.min(v.length, end - p);
      for (let j = 0; j < len; j++) if (v[j] !== this.data[p + j]) return false;
      p += len;
    }
    return p === end;
  }
}
