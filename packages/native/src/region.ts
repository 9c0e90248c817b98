import { binding } from './binding.js';
import { NativeError, native } from './errors.js';

/**
 * A worker's view of a mapping shared by the whole process. The handle is a plain integer:
 * post it to another worker, which attaches its own view of the same bytes.
 *
 * Lifetime is native: the creator owns the mapping; every view (one per `MappedRegion`
 * object) holds it too; the memory is unmapped once the owner has released it and every
 * view is closed. `close()` detaches this object's ArrayBuffer (so no typed array over it
 * can touch freed memory) and drops its references. Backstops, never double counted:
 * the ArrayBuffer's GC finalizer closes a forgotten view, a FinalizationRegistry releases
 * a forgotten owner, and a worker's exit does both for everything it created or attached.
 */
export abstract class MappedRegion {
  readonly #handle: number;
  readonly #view: number;
  readonly #owner: boolean;
  #buffer: ArrayBuffer;
  #closed = false;

  /** The bytes of the mapping, in this worker. Detached (length 0) after `close()`. */
  readonly bytes: Uint8Array;
  /** Size in bytes (rounded up to whole pages). */
  readonly size: number;

  protected constructor(handle: number, owner: boolean) {
    let v: { buffer: ArrayBuffer; view: number };
    try {
      v = native(() => binding.memView(handle));
    } catch (e) {
      if (owner) binding.memRelease(handle);
      throw e;
    }
    this.#handle = handle;
    this.#view = v.view;
    this.#owner = owner;
    this.#buffer = v.buffer;
    this.bytes = new Uint8Array(v.buffer);
    this.size = v.buffer.byteLength;
    byBuffer.set(v.buffer, this);
    if (owner) ownerBackstop.register(this, handle, this);
  }

  /**
   * The region (this worker's open view) whose memory `buf` lies in, or undefined: how a driver
   * finds the region, and so the IO address, of a caller's Uint8Array with no lookup table of its
   * own. A view over a closed region is not found.
   */
  static of(buf: ArrayBufferView): MappedRegion | undefined {
    return byBuffer.get(buf.buffer);
  }

  /** The process-wide handle: post it to other workers, which call `attach(handle)`. */
  get handle(): number {
    return this.#handle;
  }

  /** The ArrayBuffer over the mapping (per worker; detached after `close()`). */
  get buffer(): ArrayBuffer {
    return this.#buffer;
  }

  /** Whether this object created (and so owns) the mapping. */
  get owner(): boolean {
    return this.#owner;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Close this view and, if this object is the owner, release ownership. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    byBuffer.delete(this.#buffer);
    native(() => binding.memViewClose(this.#buffer, this.#view));
    if (this.#owner) {
      ownerBackstop.unregister(this);
      binding.memRelease(this.#handle);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// This worker's open views by their ArrayBuffer (weak: a dropped view is not kept alive by it).
const byBuffer = new WeakMap<ArrayBufferLike, MappedRegion>();

const ownerBackstop = new FinalizationRegistry<number>((handle) => binding.memRelease(handle));

export function checkedSize(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new NativeError(`${name} must be a positive integer`, 'EINVAL');
  return n;
}

/** Process-wide mapping counters: mappings created/freed, bytes mapped, owned handles, open views. */
export interface MemoryStats {
  created: number;
  freed: number;
  bytesMapped: number;
  owned: number;
  views: number;
}

export function memoryStats(): MemoryStats {
  return binding.memStats();
}

/** What the registry knows about a handle: still owned, views open, memory still mapped. */
export function regionState(handle: number): { owned: boolean; views: number; live: boolean } {
  return binding.memState(handle);
}

/** Free 2 MiB hugepages the system has reserved (`/proc/meminfo` HugePages_Free). */
export function hugepagesFree(): number {
  return binding.hugepagesFree();
}
