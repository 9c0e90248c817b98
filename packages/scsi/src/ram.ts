import { type BlockBackend, type IoCallback, IoStatus, type IoVec, type Lba } from './backend.js';
import { ScsiError } from './errors.js';

export interface RamBackendOptions {
  name: string;
  blockSize: number;
  numBlocks: number;
  uuid?: string;
  writeCache?: boolean;
  unmapSupported?: boolean;
  optimalIoBoundary?: number;
  readOnly?: boolean;
  atomicWriteBlocks?: number;
  physicalBlockSize?: number;
}

const QUEUE_SIZE = 1024;

/**
 * A block backend in process memory (the malloc bdev's role until the bdev layer lands). Data moves
 * at submit time; completions are queued and delivered from one `setImmediate` per batch, so a
 * caller is never re-entered from its own submit.
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
  /** Data moves in one synchronous copy at submit, so any write is atomic. */
  readonly atomicWriteBlocks: number;
  /** The medium; exposed so tests can compare what initiators see with what is stored. */
  readonly data: Uint8Array;
  /** One byte per block: 1 when written since the last deallocation (thin provisioning state). */
  readonly #mapped: Uint8Array;
  // Index-based ring of pending completions: no per-I/O allocation, no shift().
  #cbs: (IoCallback | undefined)[] = new Array(QUEUE_SIZE);
  #status = new Int32Array(QUEUE_SIZE);
  #info = new Float64Array(QUEUE_SIZE);
  #head = 0;
  #count = 0;
  #scheduled = false;
  readonly #drain = () => this.#complete();

  constructor(opts: RamBackendOptions) {
    if (!Number.isInteger(opts.blockSize) || opts.blockSize < 512 || opts.blockSize & (opts.blockSize - 1)) {
      throw new ScsiError('EINVAL_BLOCK_SIZE', `block size ${opts.blockSize} is not a power of two >= 512`);
    }
    if (!Number.isInteger(opts.numBlocks) || opts.numBlocks <= 0) {
      throw new ScsiError('EINVAL_NUM_BLOCKS', `num_blocks ${opts.numBlocks} must be a positive integer`);
    }
    this.name = opts.name;
    this.blockSize = opts.blockSize;
    this.numBlocks = opts.numBlocks;
    this.uuid = opts.uuid ?? crypto.randomUUID();
    this.writeCache = opts.writeCache ?? true;
    this.unmapSupported = opts.unmapSupported ?? true;
    this.optimalIoBoundary = opts.optimalIoBoundary ?? 0;
    this.readOnly = opts.readOnly ?? false;
    const phys = opts.physicalBlockSize ?? opts.blockSize;
    if (phys < opts.blockSize || phys % opts.blockSize !== 0 || (phys & (phys - 1)) !== 0) {
      throw new ScsiError(
        'EINVAL_BLOCK_SIZE',
        `physical block size ${phys} is not a power-of-two multiple of ${opts.blockSize}`,
      );
    }
    this.physicalBlockSize = phys;
    this.atomicWriteBlocks = opts.atomicWriteBlocks ?? 256;
    this.data = new Uint8Array(opts.blockSize * opts.numBlocks);
    this.#mapped = new Uint8Array(opts.numBlocks);
  }

  readv(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    if (!this.#inRange(offset, count)) {
      this.#post(cb, IoStatus.Failed, 0);
      return;
    }
    let pos = offset * this.blockSize;
    let left = count * this.blockSize;
    for (let i = 0; i < iov.length && left > 0; i++) {
      const b = iov[i];
      const n = Math.min(b.length, left);
      b.set(this.data.subarray(pos, pos + n));
      pos += n;
      left -= n;
    }
    this.#post(cb, left === 0 ? IoStatus.Success : IoStatus.Failed, 0);
  }

  writev(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    if (this.readOnly) {
      this.#post(cb, IoStatus.WriteProtect, 0);
      return;
    }
    if (!this.#inRange(offset, count)) {
      this.#post(cb, IoStatus.Failed, 0);
      return;
    }
    this.#copyIn(iov, offset, count);
    this.#post(cb, IoStatus.Success, 0);
  }

  unmap(offset: Lba, count: Lba, cb: IoCallback): void {
    if (this.readOnly) {
      this.#post(cb, IoStatus.WriteProtect, 0);
      return;
    }
    if (!this.#inRange(offset, count)) {
      this.#post(cb, IoStatus.Failed, 0);
      return;
    }
    this.data.fill(0, offset * this.blockSize, (offset + count) * this.blockSize);
    this.#mapped.fill(0, offset, offset + count);
    this.#post(cb, IoStatus.Success, 0);
  }

  writeZeroes(offset: Lba, count: Lba, cb: IoCallback): void {
    if (this.readOnly) {
      this.#post(cb, IoStatus.WriteProtect, 0);
      return;
    }
    if (!this.#inRange(offset, count)) {
      this.#post(cb, IoStatus.Failed, 0);
      return;
    }
    this.data.fill(0, offset * this.blockSize, (offset + count) * this.blockSize);
    this.#mapped.fill(1, offset, offset + count);
    this.#post(cb, IoStatus.Success, 0);
  }

  flush(offset: Lba, count: Lba, cb: IoCallback): void {
    this.#post(cb, this.#inRange(offset, count) ? IoStatus.Success : IoStatus.Failed, 0);
  }

  compareAndWritev(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    if (this.readOnly) {
      this.#post(cb, IoStatus.WriteProtect, 0);
      return;
    }
    if (!this.#inRange(offset, count)) {
      this.#post(cb, IoStatus.Failed, 0);
      return;
    }
    // Compare and write happen in one synchronous step: nothing else can run in between.
    let pos = offset * this.blockSize;
    const end = pos + count * this.blockSize;
    let rel = 0;
    for (let i = 0; i < compare.length && pos < end; i++) {
      const b = compare[i];
      const n = Math.min(b.length, end - pos);
      for (let j = 0; j < n; j++) {
        if (b[j] !== this.data[pos + j]) {
          this.#post(cb, IoStatus.Miscompare, rel + j);
          return;
        }
      }
      pos += n;
      rel += n;
    }
    this.#copyIn(write, offset, count);
    this.#post(cb, IoStatus.Success, 0);
  }

  reset(cb: IoCallback): void {
    // Data moves at submit, so nothing is left to abort; queued completions still run in order.
    this.#post(cb, IoStatus.Success, 0);
  }

  seekData(offset: Lba, cb: IoCallback): void {
    let i = offset;
    while (i < this.numBlocks && this.#mapped[i] === 0) i++;
    this.#post(cb, IoStatus.Success, i);
  }

  seekHole(offset: Lba, cb: IoCallback): void {
    let i = offset;
    while (i < this.numBlocks && this.#mapped[i] !== 0) i++;
    this.#post(cb, IoStatus.Success, i);
  }

  #inRange(offset: Lba, count: Lba): boolean {
    return offset >= 0 && count >= 0 && offset + count <= this.numBlocks;
  }

  #copyIn(iov: IoVec, offset: Lba, count: Lba): void {
    let pos = offset * this.blockSize;
    let left = count * this.blockSize;
    for (let i = 0; i < iov.length && left > 0; i++) {
      const b = iov[i];
      const n = Math.min(b.length, left);
      this.data.set(n === b.length ? b : b.subarray(0, n), pos);
      pos += n;
      left -= n;
    }
    this.#mapped.fill(1, offset, offset + count);
  }

  #post(cb: IoCallback, status: IoStatus, info: number): void {
    if (this.#count === this.#cbs.length) this.#grow();
    const slot = (this.#head + this.#count) % this.#cbs.length;
    this.#cbs[slot] = cb;
    this.#status[slot] = status;
    this.#info[slot] = info;
    this.#count++;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#drain);
    }
  }

  /** Doubles the ring: happens only while the queue depth reaches a new high. */
  #grow(): void {
    const n = this.#cbs.length;
    const cbs: (IoCallback | undefined)[] = new Array(n * 2);
    const status = new Int32Array(n * 2);
    const info = new Float64Array(n * 2);
    for (let i = 0; i < this.#count; i++) {
      const s = (this.#head + i) % n;
      cbs[i] = this.#cbs[s];
      status[i] = this.#status[s];
      info[i] = this.#info[s];
    }
    this.#cbs = cbs;
    this.#status = status;
    this.#info = info;
    this.#head = 0;
  }

  #complete(): void {
    this.#scheduled = false;
    // Only what was queued before this drain runs now; completions queued by callbacks wait.
    let n = this.#count;
    while (n-- > 0) {
      const slot = this.#head;
      const cb = this.#cbs[slot]!;
      this.#cbs[slot] = undefined;
      this.#head = (slot + 1) % this.#cbs.length;
      this.#count--;
      cb(this.#status[slot] as IoStatus, this.#info[slot]);
    }
  }
}
