import { VhostError } from './errors.js';
import { type GuestMapping, mapGuestRegion } from './native.js';

/** A guest physical address (distinct from a frontend user address by name only). */
export type Gpa = number;
/** A frontend (QEMU) user-space virtual address, as vring addresses are given. */
export type Uva = number;

/** Region slots this backend accepts (GET_MAX_MEM_SLOTS). */
export const MAX_MEM_SLOTS = 32;

// Entries of the view cache: 2-way sets, so twice the sets. A driver with 256 requests in flight
// names ~800 (gpa, len) pairs (header, data, status); 1024 direct-mapped entries thrashed on them,
// making views (and garbage) in steady state: ~300-500 B per I/O of a vhost-blk randread run, ~120
// with this cache (the --trace-gc scavenges of the reactor's isolate per I/O).
const VIEW_CACHE = 16384;
const EMPTY = new Uint8Array(0);

/** One mapped guest memory region. `bytes` covers exactly [gpa, gpa + size). */
export interface GuestRegion {
  readonly gpa: Gpa;
  readonly size: number;
  readonly uva: Uva;
  readonly mmapOffset: number;
  readonly bytes: Uint8Array;
  /** A DataView over `bytes` (descriptor tables are read through it, in place). */
  readonly dv: DataView;
  /** The mapping behind it (null for regions the test harness builds from plain memory). */
  readonly mapping: GuestMapping | null;
}

/**
 * The guest's memory as the frontend described it: a small set of regions, each mapped once.
 * Every translation is bounds checked against one region: a buffer that is not wholly inside one
 * region is rejected, so nothing outside the guest's memory is ever reachable. Lookups scan at most
 * MAX_MEM_SLOTS regions, starting with the last hit.
 */
export class GuestMemory {
  #regions: GuestRegion[] = [];
  #last = 0;
  /**
   * Views handed out, by (gpa, len), direct mapped: drivers reuse their request headers, status
   * bytes, indirect tables and (often) data buffers, so in steady state a request's segments cost
   * no allocation. Emptied whenever the region table changes, so a view never outlives its region
   * in the table.
   */
  readonly #vGpa = new Float64Array(VIEW_CACHE).fill(-1);
  readonly #vLen = new Uint32Array(VIEW_CACHE);
  readonly #views: Uint8Array[] = new Array(VIEW_CACHE).fill(EMPTY);
  /** Per set: the way used last (the other one is replaced on a miss). */
  readonly #vLast = new Uint8Array(VIEW_CACHE >> 1);

  get regions(): readonly GuestRegion[] {
    return this.#regions;
  }

  /** Map a region from its fd and add it. Overlaps with an existing region are rejected. */
  addFromFd(fd: number, gpa: Gpa, size: number, uva: Uva, mmapOffset: number): GuestRegion {
    this.#checkNew(gpa, size, uva);
    const m = mapGuestRegion(fd, mmapOffset, size);
    const bytes = new Uint8Array(m.buffer, m.delta, size);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, size);
    const r: GuestRegion = { gpa, size, uva, mmapOffset, bytes, dv, mapping: m };
    this.#insert(r);
    return r;
  }

  /** Add a region over memory this process already has (the virtio-user side, tests). */
  addBytes(gpa: Gpa, bytes: Uint8Array, uva: Uva = gpa): GuestRegion {
    this.#checkNew(gpa, bytes.length, uva);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const r: GuestRegion = { gpa, size: bytes.length, uva, mmapOffset: 0, bytes, dv, mapping: null };
    this.#insert(r);
    return r;
  }

  #checkNew(gpa: number, size: number, uva: number): void {
    const ok = (x: number) => Number.isSafeInteger(x) && x >= 0;
    if (!ok(gpa) || !ok(uva) || !ok(size) || size === 0 || !ok(gpa + size) || !ok(uva + size)) {
      throw new VhostError('EINVAL', `bad memory region gpa=${gpa} size=${size} uva=${uva}`);
    }
    if (this.#regions.length >= MAX_MEM_SLOTS)
      throw new VhostError('EINVAL', `more than ${MAX_MEM_SLOTS} memory regions`);
    for (const r of this.#regions) {
      if (gpa < r.gpa + r.size && r.gpa < gpa + size) {
        throw new VhostError('EINVAL', `memory region at gpa ${gpa} overlaps the region at ${r.gpa}`);
      }
    }
  }

  #insert(r: GuestRegion): void {
    this.#regions.push(r);
    this.#regions.sort((a, b) => a.gpa - b.gpa);
    this.#last = 0;
    this.#forget();
  }

  #forget(): void {
    this.#vGpa.fill(-1);
    this.#views.fill(EMPTY);
  }

  /** Take the region with this gpa and size out of the table without unmapping it (REM_MEM_REG). */
  detach(gpa: Gpa, size: number): GuestRegion | null {
    const i = this.#regions.findIndex((r) => r.gpa === gpa && r.size === size);
    if (i < 0) return null;
    const [r] = this.#regions.splice(i, 1);
    this.#last = 0;
    this.#forget();
    return r;
  }

  /** Take ownership of a region detached from another table. */
  adopt(r: GuestRegion): void {
    this.#checkNew(r.gpa, r.size, r.uva);
    this.#insert(r);
  }

  /** Unmap everything (SET_MEM_TABLE replaces the table; disconnect drops it). */
  clear(): void {
    for (const r of this.#regions) r.mapping?.close();
    this.#regions = [];
    this.#last = 0;
    this.#forget();
  }

  /** Index of the region holding [gpa, gpa + len), or -1. */
  #find(gpa: number, len: number): number {
    const rs = this.#regions;
    const n = rs.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#last + k) % n;
      const r = rs[i];
      if (gpa >= r.gpa && gpa - r.gpa <= r.size - len) {
        this.#last = i;
        return i;
      }
    }
    return -1;
  }

  /**
   * A view of guest memory [gpa, gpa + len) (zero copy), or null when that range is not wholly
   * inside one region. `gpa` and `len` must be non-negative safe integers (the ring code checks).
   */
  slice(gpa: Gpa, len: number): Uint8Array | null {
    if (len < 0 || gpa < 0) return null;
    const set = ((gpa >>> 4) ^ (gpa >>> 14) ^ len) & ((VIEW_CACHE >> 1) - 1);
    const k0 = set << 1;
    if (this.#vGpa[k0] === gpa && this.#vLen[k0] === len) {
      this.#vLast[set] = 0;
      return this.#views[k0];
    }
    if (this.#vGpa[k0 + 1] === gpa && this.#vLen[k0 + 1] === len) {
      this.#vLast[set] = 1;
      return this.#views[k0 + 1];
    }
    const i = this.#find(gpa, len);
    if (i < 0) return null;
    const r = this.#regions[i];
    const off = gpa - r.gpa;
    const v = r.bytes.subarray(off, off + len);
    const way = this.#vLast[set] ^ 1;
    this.#vLast[set] = way;
    const k = k0 + way;
    this.#vGpa[k] = gpa;
    this.#vLen[k] = len;
    this.#views[k] = v;
    return v;
  }

  /** The region holding [gpa, gpa + len), or null (the offset in it is gpa - region.gpa). */
  regionOf(gpa: Gpa, len: number): GuestRegion | null {
    if (len < 0 || gpa < 0) return null;
    const i = this.#find(gpa, len);
    return i < 0 ? null : this.#regions[i];
  }

  /** The region holding [gpa, gpa + len) and the offset in its `bytes`, for typed-array views. */
  locate(gpa: Gpa, len: number): { region: GuestRegion; offset: number } | null {
    const i = this.#find(gpa, len);
    if (i < 0) return null;
    const r = this.#regions[i];
    return { region: r, offset: gpa - r.gpa };
  }

  /** The guest physical address of a frontend user address range, or -1 if it is not mapped. */
  uvaToGpa(uva: Uva, len: number): Gpa {
    for (const r of this.#regions) {
      if (uva >= r.uva && uva - r.uva <= r.size - len) return r.gpa + (uva - r.uva);
    }
    return -1;
  }
}
