import { IoType } from './types.js';

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

  /** Account one completed I/O; no allocation. */
  record(type: IoType, bytes: number, ticks: number, ok: boolean): void {
    if (!ok) {
      this.numErrors++;
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
}

/** Sub-buckets per power of two (2^SUB_BITS): ~3% relative bucket width. */
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const RANGES = 54;

/**
 * A latency histogram in ticks (SPDK's spdk_histogram_data idea): log2 ranges split into 32
 * linear sub-buckets. `tally` does arithmetic only; merging is element-wise addition.
 */
export class Histogram {
  readonly buckets = new Float64Array(RANGES * SUB);

  tally(ticks: number): void {
    this.buckets[Histogram.index(ticks)]++;
  }

  static index(v: number): number {
    if (v < SUB) return v < 0 ? 0 : Math.floor(v);
    const range = Math.floor(Math.log2(v)) - SUB_BITS + 1;
    const sub = Math.floor(v / 2 ** (range - 1)) - SUB;
    return Math.min(RANGES * SUB - 1, range * SUB + sub);
  }

  /** Lower bound (ticks) of bucket `i`. */
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
