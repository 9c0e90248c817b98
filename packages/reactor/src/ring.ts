import { ReactorError } from './errors.js';

// Single-producer / single-consumer ring over a SharedArrayBuffer (the one place its layout lives).
//
//   byte 0    producer index (int32, slots written)   own 128-byte block: the adjacent-line
//   byte 128  consumer index (int32, slots consumed)  prefetcher pairs 64-byte lines
//   byte 256  slots: capacity x 16 bytes
//
// A record is 1..capacity/2 contiguous slots. Its first word is a header, (tag << 16) | slots;
// the rest of its slots hold up to slots*4-1 body words. A small message is one slot: header plus
// 3 words. A record never wraps: when it does not fit before the end, a pad record (tag 0xffff)
// fills the tail and the record starts at slot 0. Indices are free-running int32 slot counters;
// slot = index & (capacity - 1).
//
// Each side keeps its own index in a local and caches the other side's; the shared indices are
// read and written with Atomics once per batch (the release that makes the plain slot writes
// visible); slots themselves are plain typed-array accesses.

export const RING_HEADER_BYTES = 256;
export const SLOT_BYTES = 16;
export const SLOT_WORDS = 4;
const HEAD = 0; // word index of the producer index
const TAIL = 32; // word index of the consumer index
const PAD_TAG = 0xffff;
/** Largest tag a record may carry (0xffff marks padding). */
export const MAX_TAG = 0xfffe;

/** Bytes a ring of `capacity` slots occupies. */
export function ringBytes(capacity: number): number {
  checkCapacity(capacity);
  return RING_HEADER_BYTES + capacity * SLOT_BYTES;
}

function checkCapacity(capacity: number): void {
  if (
    !Number.isInteger(capacity) ||
    capacity < 4 ||
    capacity > 0x10000 ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new ReactorError(
      'EINVAL',
      `ring capacity must be a power of two in [4, 65536] slots, got ${capacity}`,
    );
  }
}

/** Slots a record with `bodyWords` body words occupies. */
export function recordSlots(bodyWords: number): number {
  return (bodyWords + SLOT_WORDS) >> 2; // ceil((bodyWords + 1) / 4)
}

abstract class RingSide {
  readonly capacity: number;
  readonly mask: number;
  /** The shared indices. */
  protected readonly ctl: Int32Array;
  /** The slots, as words; body offsets index this array. */
  readonly words: Int32Array;
  /** The slots, as bytes (byte offset of word w is 4 * w). */
  readonly bytes: Uint8Array;

  constructor(sab: SharedArrayBuffer, byteOffset: number, capacity: number) {
    checkCapacity(capacity);
    if (byteOffset % 128 !== 0) throw new ReactorError('EINVAL', 'a ring must start on a 128-byte boundary');
    if (byteOffset + ringBytes(capacity) > sab.byteLength) {
      throw new ReactorError('EINVAL', 'ring does not fit its SharedArrayBuffer');
    }
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.ctl = new Int32Array(sab, byteOffset, RING_HEADER_BYTES / 4);
    this.words = new Int32Array(sab, byteOffset + RING_HEADER_BYTES, capacity * SLOT_WORDS);
    this.bytes = new Uint8Array(sab, byteOffset + RING_HEADER_BYTES, capacity * SLOT_BYTES);
  }

  /** Largest body, in words, one record can carry. */
  get maxBodyWords(): number {
    return (this.capacity / 2) * SLOT_WORDS - 1;
  }
}

/** The producing side of a ring: owned by exactly one thread of one isolate. */
export class RingProducer extends RingSide {
  #head: number;
  #cachedTail: number;
  #published: number;

  constructor(sab: SharedArrayBuffer, byteOffset: number, capacity: number) {
    super(sab, byteOffset, capacity);
    this.#head = Atomics.load(this.ctl, HEAD);
    this.#published = this.#head;
    this.#cachedTail = Atomics.load(this.ctl, TAIL);
  }

  /** Records written but not yet published, in slots. */
  get unpublished(): number {
    return (this.#head - this.#published) | 0;
  }

  /**
   * Reserve a record of `bodyWords` words carrying `tag`; returns the word offset of its body in
   * `words`, or -1 when the ring is full. The body may be written until the next publish().
   */
  reserve(tag: number, bodyWords: number): number {
    const n = (bodyWords + SLOT_WORDS) >> 2;
    if (n > this.capacity >> 1 || bodyWords < 0) {
      throw new ReactorError('EMSGSIZE', `a ${bodyWords}-word record exceeds ${this.maxBodyWords} words`);
    }
    let pos = this.#head & this.mask;
    const pad = pos + n > this.capacity ? this.capacity - pos : 0;
    if (this.capacity - ((this.#head - this.#cachedTail) | 0) < pad + n) {
      this.#cachedTail = Atomics.load(this.ctl, TAIL);
      if (this.capacity - ((this.#head - this.#cachedTail) | 0) < pad + n) return -1;
    }
    const w = this.words;
    if (pad > 0) {
      w[pos << 2] = (PAD_TAG << 16) | pad;
      this.#head = (this.#head + pad) | 0;
      pos = 0;
    }
    w[pos << 2] = (tag << 16) | n;
    this.#head = (this.#head + n) | 0;
    return (pos << 2) + 1;
  }

  /**
   * reserve(tag, 3): a one-slot record (header plus up to 3 body words), which never needs a pad
   * record. Returns the body's word offset, or -1 when the ring is full.
   */
  reserve1(tag: number): number {
    if (((this.#head - this.#cachedTail) | 0) >= this.capacity) {
      this.#cachedTail = Atomics.load(this.ctl, TAIL);
      if (((this.#head - this.#cachedTail) | 0) >= this.capacity) return -1;
    }
    const pos = this.#head & this.mask;
    this.words[pos << 2] = (tag << 16) | 1;
    this.#head = (this.#head + 1) | 0;
    return (pos << 2) + 1;
  }

  /** Make every reserved record visible to the consumer (one atomic store). */
  publish(): void {
    if (this.#head !== this.#published) {
      Atomics.store(this.ctl, HEAD, this.#head);
      this.#published = this.#head;
    }
  }
}

/** The consuming side of a ring. */
export class RingConsumer extends RingSide {
  #tail: number;
  #cachedHead: number;
  #released: number;
  /** Tag of the record last returned by read(). */
  tag = 0;
  /** Body words available in the record last returned by read() (its slots * 4 - 1). */
  bodyWords = 0;

  constructor(sab: SharedArrayBuffer, byteOffset: number, capacity: number) {
    super(sab, byteOffset, capacity);
    this.#tail = Atomics.load(this.ctl, TAIL);
    this.#released = this.#tail;
    this.#cachedHead = Atomics.load(this.ctl, HEAD);
  }

  /** Whether a published record may be waiting (reloads the producer index). */
  hasData(): boolean {
    if (this.#tail !== this.#cachedHead) return true;
    this.#cachedHead = Atomics.load(this.ctl, HEAD);
    return this.#tail !== this.#cachedHead;
  }

  /**
   * The next record's body word offset in `words` (its tag in `tag`), or -1 when none is
   * published. The record stays valid until release().
   */
  read(): number {
    if (this.#tail === this.#cachedHead) {
      this.#cachedHead = Atomics.load(this.ctl, HEAD);
      if (this.#tail === this.#cachedHead) return -1;
    }
    let pos = this.#tail & this.mask;
    let h = this.words[pos << 2];
    if (h >>> 16 === PAD_TAG) {
      this.#tail = (this.#tail + (h & 0xffff)) | 0;
      pos = 0;
      h = this.words[0];
    }
    const n = h & 0xffff;
    this.#tail = (this.#tail + n) | 0;
    this.tag = h >>> 16;
    this.bodyWords = (n << 2) - 1;
    return (pos << 2) + 1;
  }

  /** Hand every record read so far back to the producer (one atomic store). */
  release(): void {
    if (this.#tail !== this.#released) {
      Atomics.store(this.ctl, TAIL, this.#tail);
      this.#released = this.#tail;
    }
  }
}
