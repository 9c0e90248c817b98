// The data buffers targets move blocks through, in the shape of SPDK's iobuf (lib/thread/iobuf.c):
// a pool of small and a pool of large buffers, channels that each module opens on its thread with
// a cache reserved from the pool, and a wait queue when both are empty.
//
// One pool per reactor: a reactor's threads share its JS heap, so the pool needs no atomics, and
// the process-wide counts of iobuf_set_options are divided among the reactors (each pool holds its
// share), so the process never holds more than the configured buffers. A buffer's memory is made
// the first time the pool hands it out and kept from then on: an idle target holds little, a busy
// one at most count * size per class.
//
// A channel can be capped (a module's share of the pool, e.g. NVMe-oF's num_shared_buffers): at
// the cap, gets wait like an empty pool. Waiters are served oldest first: a buffer put back goes to
// the first waiter of its own channel, then (when it reaches the pool) to other channels' waiters.
// A waiter's callback runs inside the put that freed its buffer, as SPDK's does.
import { BlockError } from './errors.js';
import { LinkedFifo } from './fifo.js';

/** iobuf_set_options (SPDK's names): counts for the whole process, sizes in bytes. */
export interface IobufOptions {
  small_pool_count: number;
  large_pool_count: number;
  small_bufsize: number;
  large_bufsize: number;
}

/** SPDK's defaults (lib/thread/iobuf.c): 8192 x 8 KiB and 1024 x 132 KiB. */
export const IOBUF_DEFAULTS: Readonly<IobufOptions> = {
  small_pool_count: 8192,
  large_pool_count: 1024,
  small_bufsize: 8192,
  large_bufsize: 132 * 1024,
};

/** SPDK's lower limits (counts) and storkit's (sizes: a 4 KiB block fits a small buffer). */
const MIN = { small_pool_count: 64, large_pool_count: 8, small_bufsize: 4096, large_bufsize: 8192 };

/** Validate and complete iobuf options. */
export function iobufOptions(p: Partial<IobufOptions> = {}): IobufOptions {
  const o = { ...IOBUF_DEFAULTS, ...p };
  for (const k of Object.keys(MIN) as (keyof IobufOptions)[]) {
    const v = o[k];
    if (!Number.isSafeInteger(v) || v < MIN[k])
      throw new BlockError('EINVAL', `iobuf ${k} must be an integer >= ${MIN[k]}, got ${v}`);
  }
  if (o.large_bufsize < o.small_bufsize)
    throw new BlockError(
      'EINVAL',
      `iobuf large_bufsize ${o.large_bufsize} is smaller than small_bufsize ${o.small_bufsize}`,
    );
  return o;
}

/** One pooled buffer: `bytes` is all of it; `view(n)` its first n bytes (the view is kept). */
export class Iobuf {
  readonly bytes: Uint8Array;
  readonly large: boolean;
  #view: Uint8Array;
  constructor(size: number, large: boolean) {
    this.bytes = new Uint8Array(size);
    this.large = large;
    this.#view = this.bytes;
  }
  /** The first `n` bytes; the same view while `n` repeats (no allocation in the steady state). */
  view(n: number): Uint8Array {
    if (this.#view.length !== n) this.#view = this.bytes.subarray(0, n);
    return this.#view;
  }
}

/**
 * A caller's wait-queue entry (spdk_iobuf_entry): made once per request, reused. `cb(buf, arg)`
 * runs when a buffer of the asked size is the caller's.
 */
export class IobufEntry {
  cb: (buf: Iobuf, arg: unknown) => void;
  arg: unknown;
  /** @internal */ len = 0;
  /** @internal */ next: IobufEntry | null = null;
  /** @internal */ queued = false;
  constructor(cb: (buf: Iobuf, arg: unknown) => void, arg?: unknown) {
    this.cb = cb;
    this.arg = arg;
  }
}

/** One size class of a pool. */
class SizeClass {
  readonly size: number;
  readonly count: number;
  readonly large: boolean;
  /** Buffers made so far (never more than `count`). */
  made = 0;
  readonly free: Iobuf[] = [];
  constructor(size: number, count: number, large: boolean) {
    this.size = size;
    this.count = count;
    this.large = large;
  }
  take(): Iobuf | null {
    if (this.free.length > 0) return this.free.pop() as Iobuf;
    if (this.made === this.count) return null;
    this.made++;
    return new Iobuf(this.size, this.large);
  }
}

/** Counters per size class, in iobuf_get_stats's names. */
export interface IobufClassStats {
  /** Gets served from the channel's cache. */
  cache: number;
  /** Gets served from the pool. */
  main: number;
  /** Gets that had to wait. */
  retry: number;
}

export class IobufPool {
  readonly options: IobufOptions;
  readonly small: SizeClass;
  readonly large: SizeClass;
  readonly #channels: IobufChannel[] = [];
  #nextWake = 0;

  /**
   * A pool holding `share` of the options' counts (1 / the number of reactors sharing them; at
   * least the SPDK minimum of each).
   */
  constructor(options: IobufOptions = iobufOptions(), share = 1) {
    this.options = options;
    const n = (c: number, min: number) => Math.max(min, Math.ceil(c * share));
    this.small = new SizeClass(
      options.small_bufsize,
      n(options.small_pool_count, MIN.small_pool_count),
      false,
    );
    this.large = new SizeClass(
      options.large_bufsize,
      n(options.large_pool_count, MIN.large_pool_count),
      true,
    );
  }

  /**
   * Open a module's channel on the calling thread (spdk_iobuf_channel_init): its caches are
   * reserved from the pool now (as many as there are). `limit` caps the buffers it holds at once.
   */
  channel(module: string, smallCache = 0, largeCache = 0, limit = Number.MAX_SAFE_INTEGER): IobufChannel {
    const ch = new IobufChannel(this, module, smallCache, largeCache, limit);
    this.#channels.push(ch);
    return ch;
  }

  /** The bytes the pool has made so far (its buffers' memory, in use or free). */
  get bytesMade(): number {
    return this.small.made * this.small.size + this.large.made * this.large.size;
  }

  /** The most this pool will ever hold. */
  get bytesMax(): number {
    return this.small.count * this.small.size + this.large.count * this.large.size;
  }

  /** Per module, iobuf_get_stats's shape. */
  stats(): { module: string; small_pool: IobufClassStats; large_pool: IobufClassStats }[] {
    return this.#channels.map((c) => ({
      module: c.module,
      small_pool: { ...c.stats.small },
      large_pool: { ...c.stats.large },
    }));
  }

  /** @internal a channel let go */
  _closed(ch: IobufChannel): void {
    const i = this.#channels.indexOf(ch);
    if (i >= 0) this.#channels.splice(i, 1);
  }

  /** @internal a buffer back in the pool: the first waiting channel of its class gets it */
  _returned(c: SizeClass, b: Iobuf): void {
    const chans = this.#channels;
    for (let k = 0; k < chans.length; k++) {
      const ch = chans[(this.#nextWake + k) % chans.length];
      if (ch._serve(b)) {
        this.#nextWake = (this.#nextWake + k + 1) % chans.length;
        return;
      }
    }
    c.free.push(b);
  }
}

export class IobufChannel {
  readonly pool: IobufPool;
  readonly module: string;
  readonly smallCacheSize: number;
  readonly largeCacheSize: number;
  readonly limit: number;
  readonly stats = {
    small: { cache: 0, main: 0, retry: 0 } as IobufClassStats,
    large: { cache: 0, main: 0, retry: 0 } as IobufClassStats,
  };
  /** Buffers the channel's users hold now (cached ones excluded). */
  inUse = 0;
  readonly #smallCache: Iobuf[] = [];
  readonly #largeCache: Iobuf[] = [];
  readonly #smallWait = new LinkedFifo<IobufEntry>();
  readonly #largeWait = new LinkedFifo<IobufEntry>();
  #closed = false;

  /** @internal use IobufPool.channel */
  constructor(pool: IobufPool, module: string, smallCache: number, largeCache: number, limit: number) {
    this.pool = pool;
    this.module = module;
    this.smallCacheSize = smallCache;
    this.largeCacheSize = largeCache;
    this.limit = limit;
    for (let i = 0; i < smallCache; i++) {
      const b = pool.small.take();
      if (b === null) break;
      this.#smallCache.push(b);
    }
    for (let i = 0; i < largeCache; i++) {
      const b = pool.large.take();
      if (b === null) break;
      this.#largeCache.push(b);
    }
  }

  /** Whether a transfer of `len` bytes fits one buffer of this pool. */
  fits(len: number): boolean {
    return len <= this.pool.large.size;
  }

  /** Requests waiting for a buffer. */
  get waiting(): number {
    return this.#smallWait.length + this.#largeWait.length;
  }

  /**
   * A buffer of at least `len` bytes (spdk_iobuf_get): from the cache, else the pool; null when
   * both are empty (or the channel is at its limit), and then `entry.cb` runs once one is the
   * caller's. Throws EINVAL for a length above large_bufsize (check `fits`).
   */
  get(len: number, entry: IobufEntry): Iobuf | null {
    const large = len > this.pool.small.size;
    if (large && len > this.pool.large.size)
      throw new BlockError('EINVAL', `iobuf: ${len} bytes exceed large_bufsize ${this.pool.large.size}`);
    const st = large ? this.stats.large : this.stats.small;
    const q = large ? this.#largeWait : this.#smallWait;
    if (q.head === null && this.inUse < this.limit) {
      const cache = large ? this.#largeCache : this.#smallCache;
      let b = cache.pop();
      if (b !== undefined) st.cache++;
      else {
        b = (large ? this.pool.large : this.pool.small).take() ?? undefined;
        if (b !== undefined) st.main++;
      }
      if (b !== undefined) {
        this.inUse++;
        return b;
      }
    }
    if (entry.queued) throw new BlockError('EINVAL', 'iobuf entry is already waiting');
    st.retry++;
    entry.len = len;
    q.push(entry);
    return null;
  }

  /** Give a buffer back (spdk_iobuf_put): to the first waiter, else the cache, else the pool. */
  put(b: Iobuf): void {
    this.inUse--;
    if (this._serve(b)) return;
    const cache = b.large ? this.#largeCache : this.#smallCache;
    if (!this.#closed && cache.length < (b.large ? this.largeCacheSize : this.smallCacheSize)) {
      cache.push(b);
      return;
    }
    this.pool._returned(b.large ? this.pool.large : this.pool.small, b);
  }

  /** Stop waiting (the request went away). */
  abort(entry: IobufEntry): void {
    if (entry.queued) (entry.len > this.pool.small.size ? this.#largeWait : this.#smallWait).remove(entry);
  }

  /** Give the caches back to the pool (spdk_iobuf_channel_fini); nobody may be waiting. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.pool._closed(this);
    while (this.#smallCache.length > 0) this.pool._returned(this.pool.small, this.#smallCache.pop() as Iobuf);
    while (this.#largeCache.length > 0) this.pool._returned(this.pool.large, this.#largeCache.pop() as Iobuf);
  }

  /** @internal hand `b` to this channel's first waiter it fits; false when none may take it */
  _serve(b: Iobuf): boolean {
    if (this.#closed || this.inUse >= this.limit) return false;
    // A large buffer also serves a small waiter when no large one waits (it fits).
    let e = (b.large ? this.#largeWait : this.#smallWait).shift();
    if (e === null && b.large) e = this.#smallWait.shift();
    if (e === null) return false;
    this.inUse++;
    e.cb(b, e.arg);
    return true;
  }
}
