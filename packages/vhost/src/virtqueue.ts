import type { InflightArea } from './inflight.js';
import type { Gpa, GuestMemory } from './memory.js';
import { eventfdWrite } from './native.js';
import { needEvent, Vring } from './spec.js';

/** Segments one chain may have (also the advertised seg_max plus the header and status). */
export const MAX_SEGMENTS = 130;

const TWO_32 = 2 ** 32;
const EMPTY_DV = new DataView(new ArrayBuffer(0));
/** Descriptor addresses with a high word at or above this are beyond 2^53: never guest memory. */
const MAX_HI = 2 ** 21;

/**
 * One descriptor chain popped from the avail ring: its segments as views straight into guest
 * memory (zero copy). Preallocated per queue slot and reused; only the views are new objects.
 */
export class Chain {
  head = 0;
  /** Ring descriptors the chain took (packed rings advance the used index by it). */
  ndesc = 1;
  count = 0;
  readonly iov: Uint8Array[] = new Array(MAX_SEGMENTS);
  /** 1 where the segment is device-writable. */
  readonly writable = new Uint8Array(MAX_SEGMENTS);
  readBytes = 0;
  writeBytes = 0;
  /** Why the chain is unusable (the request is completed with length 0), or null. */
  error: string | null = null;

  reset(head: number): void {
    this.head = head;
    this.ndesc = 1;
    this.count = 0;
    this.readBytes = 0;
    this.writeBytes = 0;
    this.error = null;
  }

  push(view: Uint8Array, writable: boolean): boolean {
    if (this.count >= MAX_SEGMENTS) {
      this.error = `chain longer than ${MAX_SEGMENTS} segments`;
      return false;
    }
    this.iov[this.count] = view;
    this.writable[this.count] = writable ? 1 : 0;
    this.count++;
    if (writable) this.writeBytes += view.length;
    else this.readBytes += view.length;
    return true;
  }
}

export interface QueueAddresses {
  desc: Gpa;
  avail: Gpa;
  used: Gpa;
}

/** Per-queue counters (for vhost_get_controllers and tests). */
export interface QueueStats {
  requests: number;
  badChains: number;
  interrupts: number;
}

/**
 * What every virtqueue layout shares: state the controller sets from vhost-user messages, the
 * notifiers, counters, and the device-facing operations.
 */
export abstract class VirtQueue {
  readonly index: number;
  size = 0;
  /** Queue is started (addresses set, size set, kick received or enabled). */
  running = false;
  enabled = false;
  /** GET_VRING_BASE: take no new requests, complete those in flight. */
  draining = false;
  broken: string | null = null;
  callFd = -1;
  kickFd = -1;
  errFd = -1;
  eventIdx = false;
  indirect = false;
  inflight = 0;
  readonly stats: QueueStats = { requests: 0, badChains: 0, interrupts: 0 };
  addr: QueueAddresses = { desc: 0, avail: 0, used: 0 };

  constructor(index: number) {
    this.index = index;
  }

  /** Locate the ring in guest memory and start; null, or why it cannot start (nothing touched). */
  abstract start(mem: GuestMemory, size: number, addr: QueueAddresses): string | null;
  /** Stop the ring (GET_VRING_BASE, reset): keeps the indices for the reply. */
  abstract stop(): void;
  /** Take the next available chain; false when none (or broken). It may carry `error`. */
  abstract pop(chain: Chain): boolean;
  /** Return a chain to the driver with `len` bytes written. Signalling waits for `publish`. */
  abstract push(chain: Chain, len: number): void;
  /** Make completions visible; returns whether the driver wants an interrupt now. */
  abstract publish(): boolean;
  /** The vring base as GET_VRING_BASE reports it. */
  abstract get base(): number;
  /** SET_VRING_BASE. */
  abstract setBase(num: number): void;

  protected fail(why: string): void {
    this.broken = `queue ${this.index}: ${why}`;
    this.running = false;
  }

  /** Signal the call eventfd (the driver's interrupt). */
  signal(): void {
    if (this.callFd >= 0) {
      eventfdWrite(this.callFd);
      this.stats.interrupts++;
    }
  }
}

/**
 * The device side of a split virtqueue (virtio 1.x §2.7) over guest memory. Ring memory is
 * located once when the queue starts (each part wholly inside one region, correctly aligned);
 * descriptors and buffers are bounds checked on every use. Hostile rings: a bad avail index or
 * head marks the queue broken (it stops); a bad chain (outside memory, a loop, too long, bad
 * indirect table) is completed with length 0 and counted.
 */
export class SplitQueue extends VirtQueue {
  /** Next avail entry to take, and next used entry to fill (both set by SET_VRING_BASE). */
  lastAvail = 0;
  usedIdx = 0;

  #mem: GuestMemory | null = null;
  /** The descriptor table, read in place: its region's DataView and its offset there. */
  #descDv: DataView = EMPTY_DV;
  #descAt = 0;
  #avail: Uint16Array = new Uint16Array(0);
  #used16: Uint16Array = new Uint16Array(0);
  #used32: Uint32Array = new Uint32Array(0);
  /** The used index as last published (EVENT_IDX compares against it). */
  #publishedIdx = 0;
  #pendingSignal = false;
  /** INFLIGHT_SHMFD: where taken-but-unfinished heads are recorded (set before `start`). */
  inflightArea: InflightArea | null = null;
  /** Heads a previous backend took and never finished: served before the avail ring. */
  #resubmit: number[] = [];
  /** Heads completed since the last publish (their in-flight marks go after the used index). */
  #batch = new Uint16Array(0);
  #batchLen = 0;

  get base(): number {
    return this.lastAvail;
  }

  setBase(num: number): void {
    this.lastAvail = num & 0xffff;
    this.usedIdx = this.lastAvail;
  }

  start(mem: GuestMemory, size: number, addr: QueueAddresses): string | null {
    if (!Number.isInteger(size) || size < 1 || size > Vring.MaxSize || (size & (size - 1)) !== 0) {
      return `queue ${this.index}: size ${size} is not a power of two in 1..${Vring.MaxSize}`;
    }
    const d = mem.locate(addr.desc, 16 * size);
    const a = mem.locate(addr.avail, 6 + 2 * size);
    const u = mem.locate(addr.used, 6 + 8 * size);
    if (!d || !a || !u) return `queue ${this.index}: ring not inside guest memory`;
    const aOff = a.region.bytes.byteOffset + a.offset;
    const uOff = u.region.bytes.byteOffset + u.offset;
    if (addr.desc % 16 !== 0 || aOff % 2 !== 0 || uOff % 4 !== 0)
      return `queue ${this.index}: misaligned ring`;
    this.#mem = mem;
    this.#descDv = d.region.dv;
    this.#descAt = d.offset;
    this.#avail = new Uint16Array(a.region.bytes.buffer, aOff, 3 + size);
    // flags, idx, ring[size] as u32 pairs, then avail_event: the u16 view covers it all.
    this.#used16 = new Uint16Array(u.region.bytes.buffer, uOff, 3 + 4 * size);
    this.#used32 = new Uint32Array(u.region.bytes.buffer, uOff, 1 + 2 * size);
    this.size = size;
    this.addr = addr;
    this.#batch = new Uint16Array(size);
    this.#batchLen = 0;
    this.#resubmit = [];
    if (this.inflightArea !== null) this.#recover(this.inflightArea);
    this.#publishedIdx = this.usedIdx;
    this.broken = null;
    this.draining = false;
    this.running = true;
    // We poll: ask the driver not to kick (EVENT_IDX: leave avail_event alone, far behind).
    if (!this.eventIdx) this.#used16[0] = Vring.UsedFNoNotify;
    return null;
  }

  /**
   * Pick up where a previous backend left off: heads it published as used are finished (even if
   * it died before clearing their marks), the rest are resubmitted, and the avail index resumes
   * after them (libvhost-user's rule: last avail = used + in flight).
   */
  #recover(area: InflightArea): void {
    const ringUsed = this.#used16[1];
    const gap = (ringUsed - area.usedIdx) & 0xffff;
    if (area.fresh || gap > this.size) {
      area.init(ringUsed);
      return;
    }
    for (let k = 0; k < gap; k++) {
      const head = this.#used32[1 + 2 * ((area.usedIdx + k) & (this.size - 1))];
      if (head < this.size) area.done(head);
    }
    area.usedIdx = ringUsed;
    this.#resubmit = area.pending();
    this.usedIdx = ringUsed;
    this.lastAvail = (ringUsed + this.#resubmit.length) & 0xffff;
  }

  stop(): void {
    this.running = false;
    this.draining = false;
    this.#mem = null;
    this.#descDv = EMPTY_DV;
    this.#avail = new Uint16Array(0);
    this.#used16 = new Uint16Array(0);
    this.#used32 = new Uint32Array(0);
  }

  pop(chain: Chain): boolean {
    if (!this.running || this.draining) return false;
    if (this.#resubmit.length > 0) {
      const head = this.#resubmit.shift() as number;
      chain.reset(head);
      this.#walk(chain, head);
      this.stats.requests++;
      if (chain.error !== null) this.stats.badChains++;
      return true;
    }
    const availIdx = this.#avail[1];
    const n = (availIdx - this.lastAvail) & 0xffff;
    if (n === 0) return false;
    if (n > this.size) {
      this.fail(`avail index ${availIdx} is ${n} entries ahead of ${this.lastAvail} (size ${this.size})`);
      return false;
    }
    const head = this.#avail[2 + (this.lastAvail & (this.size - 1))];
    if (head >= this.size) {
      this.fail(`avail ring names descriptor ${head} (size ${this.size})`);
      return false;
    }
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.inflightArea?.take(head);
    chain.reset(head);
    this.#walk(chain, head);
    this.stats.requests++;
    if (chain.error !== null) this.stats.badChains++;
    return true;
  }

  #walk(chain: Chain, head: number): void {
    const mem = this.#mem as GuestMemory;
    let dv = this.#descDv;
    let at = this.#descAt;
    let tableSize = this.size;
    let i = head;
    let inIndirect = false;
    // TTL: a chain visits each descriptor of its table at most once.
    for (let ttl = this.size + 1; ; ttl--) {
      if (ttl === 0) {
        chain.error = 'descriptor chain loops or is longer than its table';
        return;
      }
      const o = at + i * 16;
      const lo = dv.getUint32(o, true);
      const hi = dv.getUint32(o + 4, true);
      const len = dv.getUint32(o + 8, true);
      const flags = dv.getUint16(o + 12, true);
      const next = dv.getUint16(o + 14, true);
      if (hi >= MAX_HI) {
        chain.error = 'descriptor address beyond guest memory';
        return;
      }
      const gpa = hi * TWO_32 + lo;
      if (flags & Vring.DescFIndirect) {
        if (!this.indirect || inIndirect || flags & Vring.DescFNext || len === 0 || len % 16 !== 0) {
          chain.error = 'bad indirect descriptor';
          return;
        }
        const r = mem.regionOf(gpa, len);
        if (r === null) {
          chain.error = 'indirect table outside guest memory';
          return;
        }
        dv = r.dv;
        at = gpa - r.gpa;
        tableSize = len / 16;
        inIndirect = true;
        ttl = tableSize + 1;
        i = 0;
        continue;
      }
      const view = mem.slice(gpa, len);
      if (view === null) {
        chain.error = `buffer [${gpa}, +${len}) outside guest memory`;
        return;
      }
      if (!chain.push(view, (flags & Vring.DescFWrite) !== 0)) return;
      if ((flags & Vring.DescFNext) === 0) return;
      if (next >= tableSize) {
        chain.error = `next descriptor ${next} beyond table of ${tableSize}`;
        return;
      }
      i = next;
    }
  }

  push(chain: Chain, len: number): void {
    if (!this.running) return;
    const slot = this.usedIdx & (this.size - 1);
    this.#used32[1 + 2 * slot] = chain.head;
    this.#used32[2 + 2 * slot] = len;
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.#pendingSignal = true;
    if (this.inflightArea !== null && this.#batchLen < this.#batch.length)
      this.#batch[this.#batchLen++] = chain.head;
  }

  publish(): boolean {
    if (!this.#pendingSignal || !this.running) return false;
    this.#pendingSignal = false;
    // A seq-cst store: used elements are visible before the index, and the event index read
    // below cannot move above it.
    Atomics.store(this.#used16, 1, this.usedIdx);
    const area = this.inflightArea;
    if (area !== null) {
      area.usedIdx = this.usedIdx;
      for (let k = 0; k < this.#batchLen; k++) area.done(this.#batch[k]);
      this.#batchLen = 0;
    }
    const old = this.#publishedIdx;
    this.#publishedIdx = this.usedIdx;
    if (this.eventIdx) return needEvent(this.#avail[2 + this.size], this.usedIdx, old);
    return (this.#avail[0] & Vring.AvailFNoInterrupt) === 0;
  }
}

export function rd32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
