// What a verified writer knows about each block it wrote, and the check made after a crash.
//
// Every write stamps each 512-byte sector of its block with (device, block, generation, sector)
// and a filler derived from them, so any sector read back names the write it came from, or is
// garbage. The ledger keeps, per block, the generations submitted and the durable floor: the
// newest generation that was acknowledged before a flush that was itself acknowledged (or that
// was written with FUA and acknowledged). After a crash a block must hold, sector by sector,
// nothing older than its floor and nothing that was never submitted: "every write acknowledged
// after a flush (or FUA) is there". A torn write (some sectors of a write in flight at the crash)
// is allowed only among writes newer than the floor.

export const SECTOR = 512;
const MAGIC = 0x53544b56; // 'STKV'

/** Fill `out` (one block) with the stamps of (dev, lba, gen). */
export function stamp(out: Uint8Array, dev: number, lba: number, gen: number): void {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let s = 0; s < out.length / SECTOR; s++) {
    const o = s * SECTOR;
    dv.setUint32(o, MAGIC);
    dv.setUint32(o + 4, dev);
    dv.setUint32(o + 8, lba);
    dv.setUint32(o + 12, gen);
    dv.setUint32(o + 16, s);
    let x = (Math.imul(lba + 1, 0x9e3779b1) ^ Math.imul(gen + 1, 0x85ebca6b) ^ (s << 7) ^ dev) >>> 0;
    for (let i = 20; i < SECTOR; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      dv.setUint32(o + i, x >>> 0);
    }
  }
}

/** The generation a sector names, or -1 when it is not a whole, matching stamp of (dev, lba, sector) (0: never written, all zeroes). */
export function sectorGen(block: Uint8Array, s: number, dev: number, lba: number): number {
  const o = s * SECTOR;
  const sec = block.subarray(o, o + SECTOR);
  if (sec.every((b) => b === 0)) return 0;
  const dv = new DataView(sec.buffer, sec.byteOffset, SECTOR);
  if (
    dv.getUint32(0) !== MAGIC ||
    dv.getUint32(4) !== dev ||
    dv.getUint32(8) !== lba ||
    dv.getUint32(16) !== s
  )
    return -1;
  const gen = dv.getUint32(12);
  const want = new Uint8Array(block.length);
  stamp(want, dev, lba, gen);
  return Buffer.from(sec).equals(Buffer.from(want.subarray(o, o + SECTOR))) ? gen : -1;
}

interface BlockState {
  /** Generations submitted (1, 2, ...; 0 = the block's initial zeroes). */
  max: number;
  /** Newest generation acknowledged (completion seen). */
  acked: number;
  /** Newest generation known durable (acknowledged, then a flush acknowledged; or FUA). */
  floor: number;
}

export interface VerifyResult {
  blocks: number;
  /** Sectors older than the durable floor, never written, or garbage: must be 0. */
  errors: string[];
  /** Acknowledged (not flushed) writes whose data is gone: allowed, counted. */
  lostUnflushed: number;
  /** Blocks torn between two generations above the floor (a write in flight at the crash). */
  torn: number;
}

export class Ledger {
  readonly dev: number;
  readonly blockSize: number;
  readonly #blocks = new Map<number, BlockState>();
  /** Generations acknowledged since the last flush was submitted: they become durable when it completes. */
  #pending = new Map<number, number>();
  writes = 0;
  flushes = 0;
  fuaWrites = 0;

  constructor(dev: number, blockSize: number) {
    this.dev = dev;
    this.blockSize = blockSize;
  }

  #state(lba: number): BlockState {
    let s = this.#blocks.get(lba);
    if (!s) {
      s = { max: 0, acked: 0, floor: 0 };
      this.#blocks.set(lba, s);
    }
    return s;
  }

  /** A write of `lba` is about to be submitted: its generation, and the block's data in `out`. */
  begin(lba: number, out: Uint8Array): number {
    const s = this.#state(lba);
    const gen = ++s.max;
    stamp(out, this.dev, lba, gen);
    return gen;
  }

  /** The write of (lba, gen) was acknowledged with success; with FUA it is durable now. */
  acked(lba: number, gen: number, fua = false): void {
    const s = this.#state(lba);
    this.writes++;
    if (gen > s.acked) s.acked = gen;
    if (fua) {
      this.fuaWrites++;
      if (gen > s.floor) s.floor = gen;
    } else if (gen > (this.#pending.get(lba) ?? 0)) this.#pending.set(lba, gen);
  }

  /** A flush is being submitted: what was acknowledged before now is what it makes durable. */
  flushBegin(): Map<number, number> {
    const covered = this.#pending;
    this.#pending = new Map();
    return covered;
  }

  /** That flush was acknowledged with success. */
  flushAcked(covered: Map<number, number>): void {
    this.flushes++;
    for (const [lba, gen] of covered) {
      const s = this.#state(lba);
      if (gen > s.floor) s.floor = gen;
    }
  }

  /** A flush failed or never completed: what it covered is not durable (and is acknowledged again by nothing). */
  flushLost(covered: Map<number, number>): void {
    for (const [lba, gen] of covered) if (gen > (this.#pending.get(lba) ?? 0)) this.#pending.set(lba, gen);
  }

  get lbas(): number[] {
    return [...this.#blocks.keys()].sort((a, b) => a - b);
  }

  /** Check one block read back after the crash; afterwards the block's state is what it holds. */
  check(lba: number, block: Uint8Array, out: VerifyResult): void {
    const s = this.#state(lba);
    const gens = new Set<number>();
    for (let i = 0; i < this.blockSize / SECTOR; i++) {
      const g = sectorGen(block, i, this.dev, lba);
      if (g < 0)
        out.errors.push(`dev ${this.dev} block ${lba} sector ${i}: garbage (no stamp of this block)`);
      else if (g < s.floor)
        out.errors.push(
          `dev ${this.dev} block ${lba} sector ${i}: generation ${g}, older than durable ${s.floor}`,
        );
      else if (g > s.max)
        out.errors.push(
          `dev ${this.dev} block ${lba} sector ${i}: generation ${g}, never submitted (max ${s.max})`,
        );
      gens.add(g);
    }
    out.blocks++;
    const held = Math.min(...gens);
    if (gens.size > 1) out.torn++;
    if (held < s.acked) out.lostUnflushed++;
    // What the restarted target serves is what the next round builds on: a process kill never
    // takes back what the kernel already has.
    s.acked = Math.max(...gens);
    s.floor = Math.max(s.floor, held);
    this.#pending.delete(lba);
  }
}
