// Command ID → request slot for the commands a qpair has outstanding. One insert and one delete
// per command: a Map rehashes as it grows and shrinks around the queue depth and allocates its
// tables each time (~3% of target CPU at QD 32), where this open-addressed table of two typed
// arrays never allocates after construction.

const EMPTY = -1;

/**
 * A set of at most `capacity` CIDs (0..65535), each mapped to a slot number ≥ 0. Linear probing
 * on the CID's low bits (hosts draw outstanding CIDs from a tag space, so those differ), with
 * backward-shift deletion: no tombstones, so lookups stay short however long the qpair lives.
 */
export class CidTable {
  readonly #keys: Int32Array;
  readonly #vals: Int32Array;
  readonly #mask: number;
  #size = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity}`);
    let n = 4;
    while (n < 2 * capacity) n <<= 1;
    this.capacity = capacity;
    this.#keys = new Int32Array(n).fill(EMPTY);
    this.#vals = new Int32Array(n);
    this.#mask = n - 1;
  }

  get size(): number {
    return this.#size;
  }

  // Where `cid` is, or the empty slot that ends its probe run.
  #probe(cid: number): number {
    const keys = this.#keys;
    const mask = this.#mask;
    let i = cid & mask;
    while (keys[i] !== cid && keys[i] !== EMPTY) i = (i + 1) & mask;
    return i;
  }

  /** The slot mapped to `cid`, or -1. */
  get(cid: number): number {
    const i = this.#probe(cid);
    return this.#keys[i] === cid ? this.#vals[i] : -1;
  }

  /** Map `cid` to `slot`; false (and no change) when `cid` is already present or the table is full. */
  add(cid: number, slot: number): boolean {
    const i = this.#probe(cid);
    if (this.#keys[i] === cid || this.#size === this.capacity) return false;
    this.#keys[i] = cid;
    this.#vals[i] = slot;
    this.#size++;
    return true;
  }

  /** Remove `cid` if it maps to `slot` (another command may have reused the CID since). */
  delete(cid: number, slot: number): boolean {
    const i = this.#probe(cid);
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    if (keys[i] !== cid || vals[i] !== slot) return false;
    // Backward shift: move later entries of the probe run into the hole when their home slot
    // does not lie cyclically in (hole, j].
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== EMPTY; j = (j + 1) & mask) {
      const home = keys[j] & mask;
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        keys[hole] = keys[j];
        vals[hole] = vals[j];
        hole = j;
      }
    }
    keys[hole] = EMPTY;
    this.#size--;
    return true;
  }

  clear(): void {
    this.#keys.fill(EMPTY);
    this.#size = 0;
  }
}
