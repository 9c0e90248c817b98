/**
 * A scatter list of (buffer, offset, length) pieces, sized once and reused (SPDK's struct iovec
 * arrays): an operation over several buffers allocates nothing per call. The framework reads it
 * until the operation completes; do not change it meanwhile.
 */
export class AccelIovecs {
  readonly capacity: number;
  count = 0;
  readonly bufs: Uint8Array[];
  readonly offs: Float64Array;
  readonly lens: Float64Array;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.bufs = new Array(capacity).fill(EMPTY);
    this.offs = new Float64Array(capacity);
    this.lens = new Float64Array(capacity);
  }

  clear(): this {
    for (let i = 0; i < this.count; i++) this.bufs[i] = EMPTY;
    this.count = 0;
    return this;
  }

  /** Append `buf[off, off+len)`; throws RangeError when full or the range is outside `buf`. */
  add(buf: Uint8Array, off = 0, len = buf.length - off): this {
    if (this.count === this.capacity) throw new RangeError(`iovecs full (${this.capacity})`);
    if (
      !(off >= 0 && len >= 0 && off + len <= buf.length && Number.isInteger(off) && Number.isInteger(len))
    ) {
      throw new RangeError(`iovec range [${off}, ${off}+${len}) is outside its buffer (${buf.length})`);
    }
    const i = this.count++;
    this.bufs[i] = buf;
    this.offs[i] = off;
    this.lens[i] = len;
    return this;
  }

  /** Bytes over all pieces. */
  get length(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += this.lens[i];
    return n;
  }
}

const EMPTY = new Uint8Array(0);
