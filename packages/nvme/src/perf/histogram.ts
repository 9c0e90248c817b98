// Latency histogram with log-linear buckets (like SPDK's histogram_data.h): 32 sub-buckets per
// power of two of microseconds, about 3% resolution, fixed memory, O(1) record.

const SUB = 32;
const RANGES = 40;

export class LatencyHistogram {
  readonly #buckets = new Float64Array(RANGES * SUB);
  count = 0;
  #sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = 0;

  record(us: number): void {
    this.count++;
    this.#sum += us;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
    this.#buckets[LatencyHistogram.#index(us)]++;
  }

  static #index(us: number): number {
    // Bucket by value in 1/SUB µs units: below SUB linear, above that log2 range + top bits.
    const v = Math.max(0, Math.floor(us * SUB));
    if (v < SUB) return v;
    const r = Math.min(31 - Math.clz32(v) - 4, RANGES - 1); // log2(v) - log2(SUB) + 1
    const sub = (v >>> (r - 1 + 0)) & (SUB - 1);
    return Math.min(r * SUB + sub, RANGES * SUB - 1);
  }

  // Upper bound (µs) of a bucket.
  static #upper(i: number): number {
    const r = Math.floor(i / SUB);
    const sub = i % SUB;
    if (r === 0) return (sub + 1) / SUB;
    return ((SUB + sub + 1) * 2 ** (r - 1)) / SUB;
  }

  get mean(): number {
    return this.count ? this.#sum / this.count : 0;
  }

  /** Latency (µs) below which `p` percent of samples fall (bucket upper bound, capped at max). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const want = (p / 100) * this.count;
    let seen = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i];
      if (seen >= want && this.#buckets[i] > 0) return Math.min(LatencyHistogram.#upper(i), this.max);
    }
    return this.max;
  }
}
