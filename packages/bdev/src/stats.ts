import { IoStatus, IoType } from './types.js';

/** Per-bdev or per-channel I/O statistics (the fields of SPDK's bdev_get_iostat, in ticks). */
export class IoStat {
  bytesRead = 0;
  numReadOps = 0;
  bytesWritten = 0;
  numWriteOps = 0;
  bytesUnmapped = 0;
  numUnmapOps = 0;
  numOtherOps = 0;
  readLatencyTicks = 0;
  maxReadLatencyTicks = 0;
  minReadLatencyTicks = Number.MAX_SAFE_INTEGER;
  writeLatencyTicks = 0;
  maxWriteLatencyTicks = 0;
  minWriteLatencyTicks = Number.MAX_SAFE_INTEGER;
  unmapLatencyTicks = 0;
  maxUnmapLatencyTicks = 0;
  minUnmapLatencyTicks = Number.MAX_SAFE_INTEGER;
  otherLatencyTicks = 0;
  numErrors = 0;
  /**
   * Failed I/O by status: index i counts status -(i + 1), FAILED (-1) to AIO_ERROR (-8), as SPDK's
   * io_error stat does (bdev_get_iostat names them, see IO_ERROR_NAMES).
   */
  ioError: number[] = [0, 0, 0, 0, 0, 0, 0, 0];

  /** Account one completed I/O by its status (SPDK's numbers); no allocation. */
  record(type: IoType, bytes: number, ticks: number, status: number): void {
    if (status !== IoStatus.SUCCESS) {
      this.numErrors++;
      const i = -status - 1;
      if (i >= 0 && i < 8) this.ioError[i]++;
      return;
    }
    switch (type) {
      case IoType.READ:
        this.bytesRead += bytes;
        this.numReadOps++;
        this.readLatencyTicks += ticks;
        if (ticks > this.maxReadLatencyTicks) this.maxReadLatencyTicks = ticks;
        if (ticks < this.minReadLatencyTicks) this.minReadLatencyTicks = ticks;
        return;
      case IoType.WRITE:
      case IoType.WRITE_ZEROES:
      case IoType.COMPARE_AND_WRITE:
        this.bytesWritten += bytes;
        this.numWriteOps++;
        this.writeLatencyTicks += ticks;
        if (ticks > this.maxWriteLatencyTicks) this.maxWriteLatencyTicks = ticks;
        if (ticks < this.minWriteLatencyTicks) this.minWriteLatencyTicks = ticks;
        return;
      case IoType.UNMAP:
        this.bytesUnmapped += bytes;
        this.numUnmapOps++;
        this.unmapLatencyTicks += ticks;
        if (ticks > this.maxUnmapLatencyTicks) this.maxUnmapLatencyTicks = ticks;
        if (ticks < this.minUnmapLatencyTicks) this.minUnmapLatencyTicks = ticks;
        return;
      default:
        this.numOtherOps++;
        this.otherLatencyTicks += ticks;
    }
  }

  /** Add another stat (a channel's into a bdev's); `o` may be a plain JSON copy. */
  add(o: IoStatJson | IoStat): void {
    const s = o as IoStat;
    this.bytesRead += s.bytesRead;
    this.numReadOps += s.numReadOps;
    this.bytesWritten += s.bytesWritten;
    this.numWriteOps += s.numWriteOps;
    this.bytesUnmapped += s.bytesUnmapped;
    this.numUnmapOps += s.numUnmapOps;
    this.numOtherOps += s.numOtherOps;
    this.readLatencyTicks += s.readLatencyTicks;
    this.maxReadLatencyTicks = Math.max(this.maxReadLatencyTicks, s.maxReadLatencyTicks);
    this.minReadLatencyTicks = Math.min(this.minReadLatencyTicks, s.minReadLatencyTicks);
    this.writeLatencyTicks += s.writeLatencyTicks;
    this.maxWriteLatencyTicks = Math.max(this.maxWriteLatencyTicks, s.maxWriteLatencyTicks);
    this.minWriteLatencyTicks = Math.min(this.minWriteLatencyTicks, s.minWriteLatencyTicks);
    this.unmapLatencyTicks += s.unmapLatencyTicks;
    this.maxUnmapLatencyTicks = Math.max(this.maxUnmapLatencyTicks, s.maxUnmapLatencyTicks);
    this.minUnmapLatencyTicks = Math.min(this.minUnmapLatencyTicks, s.minUnmapLatencyTicks);
    this.otherLatencyTicks += s.otherLatencyTicks;
    this.numErrors += s.numErrors;
    const e = s.ioError;
    if (e !== undefined) for (let i = 0; i < 8; i++) this.ioError[i] += e[i] ?? 0;
  }

  reset(): void {
    Object.assign(this, new IoStat());
  }

  /** SPDK's bdev_get_iostat field names (min latencies are 0 when nothing was recorded). */
  toJSON(): IoStatJson {
    const fix = (v: number) => (v === Number.MAX_SAFE_INTEGER ? 0 : v);
    return {
      bytesRead: this.bytesRead,
      numReadOps: this.numReadOps,
      bytesWritten: this.bytesWritten,
      numWriteOps: this.numWriteOps,
      bytesUnmapped: this.bytesUnmapped,
      numUnmapOps: this.numUnmapOps,
      numOtherOps: this.numOtherOps,
      readLatencyTicks: this.readLatencyTicks,
      maxReadLatencyTicks: this.maxReadLatencyTicks,
      minReadLatencyTicks: fix(this.minReadLatencyTicks),
      writeLatencyTicks: this.writeLatencyTicks,
      maxWriteLatencyTicks: this.maxWriteLatencyTicks,
      minWriteLatencyTicks: fix(this.minWriteLatencyTicks),
      unmapLatencyTicks: this.unmapLatencyTicks,
      maxUnmapLatencyTicks: this.maxUnmapLatencyTicks,
      minUnmapLatencyTicks: fix(this.minUnmapLatencyTicks),
      otherLatencyTicks: this.otherLatencyTicks,
      numErrors: this.numErrors,
      ioError: [...this.ioError],
    };
  }

  static fromJSON(j: IoStatJson): IoStat {
    const s = new IoStat();
    s.add(j);
    if (j.minReadLatencyTicks === 0 && j.numReadOps === 0) s.minReadLatencyTicks = Number.MAX_SAFE_INTEGER;
    if (j.minWriteLatencyTicks === 0 && j.numWriteOps === 0) s.minWriteLatencyTicks = Number.MAX_SAFE_INTEGER;
    if (j.minUnmapLatencyTicks === 0 && j.numUnmapOps === 0) s.minUnmapLatencyTicks = Number.MAX_SAFE_INTEGER;
    return s;
  }
}

export interface IoStatJson {
  bytesRead: number;
  numReadOps: number;
  bytesWritten: number;
  numWriteOps: number;
  bytesUnmapped: number;
  numUnmapOps: number;
  numOtherOps: number;
  readLatencyTicks: number;
  maxReadLatencyTicks: number;
  minReadLatencyTicks: number;
  writeLatencyTicks: number;
  maxWriteLatencyTicks: number;
  minWriteLatencyTicks: number;
  unmapLatencyTicks: number;
  maxUnmapLatencyTicks: number;
  minUnmapLatencyTicks: number;
  otherLatencyTicks: number;
  numErrors: number;
  /** Failed I/O by status -(i + 1) (absent in copies made before it existed). */
  ioError?: number[];
}

// SPDK's spdk_histogram_data layout (include/spdk/histogram_data.h) with its default
// bucket_shift of 7: range 0 holds values 0..127 one per bucket; range r >= 1 holds
// [2^(r+6), 2^(r+7)) in 128 buckets of width 2^(r-1); 58 ranges cover 64-bit values. Keeping the
// exact layout lets bdev_get_histogram hand out SPDK's bytes, which scripts/histogram.py decodes.
/** SPDK_HISTOGRAM_BUCKET_SHIFT_DEFAULT. */
export const HISTOGRAM_BUCKET_SHIFT = 7;
const SUB = 1 << HISTOGRAM_BUCKET_SHIFT;
const LSB = 64 - HISTOGRAM_BUCKET_SHIFT;
const RANGES = LSB + 1;
const TWO32 = 2 ** 32;

/**
 * A latency histogram in ticks, in spdk_histogram_data's layout (see above): sub-buckets 1/128
 * of a power of two wide. `tally` does arithmetic only; merging is element-wise addition.
 */
export class Histogram {
  readonly buckets = new Float64Array(RANGES * SUB);

  tally(ticks: number): void {
    this.buckets[Histogram.index(ticks)]++;
  }

  /** The bucket of a value (SPDK's range << bucket_shift | index, from the value's bit length). */
  static index(v: number): number {
    if (!(v >= SUB)) return v > 0 ? Math.floor(v) : 0;
    const x = Math.floor(v);
    const bits = x < TWO32 ? 32 - Math.clz32(x) : 64 - Math.clz32(Math.floor(x / TWO32));
    const range = bits - HISTOGRAM_BUCKET_SHIFT;
    if (range >= RANGES) return RANGES * SUB - 1;
    return range * SUB + (Math.floor(x / 2 ** (range - 1)) & (SUB - 1));
  }

  /** Lower bound (ticks) of bucket `i` (SPDK's bucket start; `i` = the count is the top). */
  static lowerBound(i: number): number {
    const range = Math.floor(i / SUB);
    const sub = i % SUB;
    if (range === 0) return sub;
    return (SUB + sub) * 2 ** (range - 1);
  }

  merge(o: Histogram | readonly number[]): void {
    const b = o instanceof Histogram ? o.buckets : o;
    for (let i = 0; i < this.buckets.length; i++) this.buckets[i] += b[i] ?? 0;
  }

  get count(): number {
    let n = 0;
    for (const v of this.buckets) n += v;
    return n;
  }

  /** The tick value at or below which `p` percent of the samples fall (bucket upper bound). */
  percentile(p: number): number {
    const total = this.count;
    if (total === 0) return 0;
    const want = (total * p) / 100;
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i];
      if (seen >= want) return Histogram.lowerBound(i + 1);
    }
    return Histogram.lowerBound(this.buckets.length);
  }

  clear(): void {
    this.buckets.fill(0);
  }
}

/**
 * bdev_get_histogram's result as SPDK returns it: the buckets as little-endian uint64 words in
 * spdk_histogram_data's order, base64; its bucket_shift; and the tick rate the counts are in.
 */
export function histogramSpdkJson(
  buckets: ArrayLike<number>,
  tscRate: number,
): { histogram: string; bucket_shift: number; tsc_rate: number } {
  const out = Buffer.alloc(buckets.length * 8);
  for (let i = 0; i < buckets.length; i++) out.writeBigUInt64LE(BigInt(buckets[i]), i * 8);
  return { histogram: out.toString('base64'), bucket_shift: HISTOGRAM_BUCKET_SHIFT, tsc_rate: tscRate };
}
