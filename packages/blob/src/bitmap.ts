// A fixed-capacity bit array (spdk_bit_array): the used metadata page, blob id and cluster masks,
// and the cluster allocator (find the first clear bit). Bits are stored LSB first in bytes, the
// order SPDK's masks use on disk, so storing and loading a mask is a byte copy.

/** A bit array of `length` bits. */
export class Bitmap {
  #bytes: Uint8Array;
  #length: number;
  #set = 0;

  constructor(length: number) {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bitmap length ${length}`);
    this.#length = length;
    this.#bytes = new Uint8Array(Math.ceil(length / 8));
  }

  /** Capacity in bits. */
  get length(): number {
    return this.#length;
  }

  /** Bits set. */
  get count(): number {
    return this.#set;
  }

  /** Bits clear. */
  get countClear(): number {
    return this.#length - this.#set;
  }

  get(i: number): boolean {
    if (i < 0 || i >= this.#length) return false;
    return (this.#bytes[i >>> 3] & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    this.#check(i);
    const m = 1 << (i & 7);
    const b = this.#bytes[i >>> 3];
    if ((b & m) === 0) {
      this.#bytes[i >>> 3] = b | m;
      this.#set++;
    }
  }

  clear(i: number): void {
    this.#check(i);
    const m = 1 << (i & 7);
    const b = this.#bytes[i >>> 3];
    if ((b & m) !== 0) {
      this.#bytes[i >>> 3] = b & ~m;
      this.#set--;
    }
  }

  /** The first clear bit at or after `from`, or -1 (spdk_bit_array_find_first_clear). */
  findFirstClear(from = 0): number {
    const n = this.#length;
    const bytes = this.#bytes;
    let i = Math.max(0, from);
    while (i < n) {
      const b = bytes[i >>> 3];
      if (b === 0xff && (i & 7) === 0) {
        i += 8;
        continue;
      }
      if ((b & (1 << (i & 7))) === 0) return i;
      i++;
    }
    return -1;
  }

  /** The first set bit at or after `from`, or -1 (spdk_bit_array_find_first_set). */
  findFirstSet(from = 0): number {
    const n = this.#length;
    const bytes = this.#bytes;
    let i = Math.max(0, from);
    while (i < n) {
      const b = bytes[i >>> 3];
      if (b === 0 && (i & 7) === 0) {
        i += 8;
        continue;
      }
      if ((b & (1 << (i & 7))) !== 0) return i;
      i++;
    }
    return -1;
  }

  /** Grow or shrink to `length` bits; bits past the old length start clear. */
  resize(length: number): void {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`bitmap length ${length}`);
    const bytes = new Uint8Array(Math.ceil(length / 8));
    bytes.set(this.#bytes.subarray(0, Math.min(bytes.length, this.#bytes.length)));
    if (length % 8 !== 0 && bytes.length > 0) bytes[bytes.length - 1] &= (1 << (length % 8)) - 1;
    this.#bytes = bytes;
    this.#length = length;
    this.#set = popcount(bytes);
  }

  /** The bits as SPDK's mask stores them (ceil(length / 8) bytes). */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** Load `length` bits from mask bytes; bits past `length` in the last byte are ignored. */
  static fromBytes(bytes: Uint8Array, length: number): Bitmap {
    const b = new Bitmap(length);
    const n = Math.ceil(length / 8);
    if (bytes.length < n) throw new RangeError(`mask of ${bytes.length} bytes for ${length} bits`);
    b.#bytes.set(bytes.subarray(0, n));
    if (length % 8 !== 0 && n > 0) b.#bytes[n - 1] &= (1 << (length % 8)) - 1;
    b.#set = popcount(b.#bytes);
    return b;
  }

  clone(): Bitmap {
    return Bitmap.fromBytes(this.#bytes, this.#length);
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#length)
      throw new RangeError(`bit ${i} outside a bitmap of ${this.#length}`);
  }
}

function popcount(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i];
    while (b !== 0) {
      b &= b - 1;
      n++;
    }
  }
  return n;
}
