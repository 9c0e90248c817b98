import { needEvent, Vring } from './spec.js';

/** One buffer of a chain the driver adds: guest address, length, device-writable. */
export interface DriverSegment {
  addr: number;
  len: number;
  write: boolean;
}

/**
 * The driver side of a split virtqueue over memory this process owns (rust-vmm's MockSplitQueue,
 * and the ring half of the virtio-user initiator). Layout: descriptor table at `descOff`, avail
 * ring after it, used ring 4-aligned after that, all inside `mem` (whose byte 0 is guest address
 * `base`). Tests also poke the raw fields to build hostile rings.
 */
export class DriverQueue {
  readonly size: number;
  readonly mem: Uint8Array;
  readonly base: number;
  readonly descOff: number;
  readonly availOff: number;
  readonly usedOff: number;
  readonly dv: DataView;
  /** The driver's avail index (published to the ring by `kick`). */
  availIdx = 0;
  lastUsed = 0;
  eventIdx = false;
  /** false: a polling driver; it asks for no interrupts (NO_INTERRUPT / a used_event never reached). */
  interrupts = true;
  #free: number[] = [];
  /** Descriptors of each in-flight head (to free them when it is used). */
  #chainLen: Uint16Array;

  constructor(mem: Uint8Array, base: number, descOff: number, size: number) {
    this.mem = mem;
    this.base = base;
    this.size = size;
    this.descOff = descOff;
    this.availOff = descOff + 16 * size;
    this.usedOff = (this.availOff + 6 + 2 * size + 3) & ~3;
    this.dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
    this.#chainLen = new Uint16Array(size);
    this.reset();
  }

  /** Bytes the rings take from `descOff`. */
  static bytes(size: number): number {
    const avail = 16 * size;
    const used = (avail + 6 + 2 * size + 3) & ~3;
    return used + 6 + 8 * size;
  }

  get descAddr(): number {
    return this.base + this.descOff;
  }
  get availAddr(): number {
    return this.base + this.availOff;
  }
  get usedAddr(): number {
    return this.base + this.usedOff;
  }

  reset(): void {
    this.mem.fill(0, this.descOff, this.descOff + DriverQueue.bytes(this.size));
    this.availIdx = 0;
    this.lastUsed = 0;
    this.#free = [];
    for (let i = this.size - 1; i >= 0; i--) this.#free.push(i);
  }

  get freeDescriptors(): number {
    return this.#free.length;
  }

  /** Write descriptor `i` as is (tests build loops and wild pointers with it). */
  writeDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const o = this.descOff + 16 * i;
    this.dv.setUint32(o, addr % 2 ** 32, true);
    this.dv.setUint32(o + 4, Math.floor(addr / 2 ** 32), true);
    this.dv.setUint32(o + 8, len, true);
    this.dv.setUint16(o + 12, flags, true);
    this.dv.setUint16(o + 14, next, true);
  }

  /** Put `head` in the avail ring (not yet visible: `kick` publishes the index). */
  offer(head: number): void {
    this.dv.setUint16(this.availOff + 4 + 2 * (this.availIdx % this.size), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  /** Publish the avail index (and the driver's interrupt wish). */
  kick(): void {
    if (!this.interrupts && !this.eventIdx) this.dv.setUint16(this.availOff, Vring.AvailFNoInterrupt, true);
    this.dv.setUint16(this.availOff + 2, this.availIdx, true);
  }

  /** Set the raw avail index (tests). */
  setAvailIdx(v: number): void {
    this.dv.setUint16(this.availOff + 2, v, true);
  }

  /** Add a chain; returns its head, or -1 when descriptors are short. */
  add(segs: readonly DriverSegment[]): number {
    if (segs.length === 0 || segs.length > this.#free.length) return -1;
    const ids: number[] = [];
    for (let k = 0; k < segs.length; k++) ids.push(this.#free.pop() as number);
    for (let k = 0; k < segs.length; k++) {
      const s = segs[k];
      const last = k === segs.length - 1;
      const flags = (last ? 0 : Vring.DescFNext) | (s.write ? Vring.DescFWrite : 0);
      this.writeDesc(ids[k], s.addr, s.len, flags, last ? 0 : ids[k + 1]);
    }
    this.#chainLen[ids[0]] = segs.length;
    this.offer(ids[0]);
    return ids[0];
  }

  /** Add a chain through one indirect table written at guest address `tableAddr` (inside `mem`). */
  addIndirect(segs: readonly DriverSegment[], tableAddr: number): number {
    const id = this.#free.pop();
    if (id === undefined) return -1;
    const t = tableAddr - this.base;
    segs.forEach((s, k) => {
      const o = t + 16 * k;
      const last = k === segs.length - 1;
      this.dv.setBigUint64(o, BigInt(s.addr), true);
      this.dv.setUint32(o + 8, s.len, true);
      this.dv.setUint16(o + 12, (last ? 0 : Vring.DescFNext) | (s.write ? Vring.DescFWrite : 0), true);
      this.dv.setUint16(o + 14, last ? 0 : k + 1, true);
    });
    this.writeDesc(id, tableAddr, 16 * segs.length, Vring.DescFIndirect, 0);
    this.#chainLen[id] = 1;
    this.offer(id);
    return id;
  }

  /** The device's published used index. */
  usedIdx(): number {
    return this.dv.getUint16(this.usedOff + 2, true);
  }

  /** Length of the element `next()` returned last. */
  usedLen = 0;

  /** Take the next used element: its head (length in `usedLen`), or -1. Frees the chain's descriptors. */
  next(): number {
    if (this.usedIdx() === this.lastUsed) return -1;
    const o = this.usedOff + 4 + 8 * (this.lastUsed % this.size);
    const id = this.dv.getUint32(o, true);
    this.usedLen = this.dv.getUint32(o + 4, true);
    this.lastUsed = (this.lastUsed + 1) & 0xffff;
    if (id < this.size) this.#release(id);
    if (this.eventIdx && this.interrupts)
      this.dv.setUint16(this.availOff + 4 + 2 * this.size, this.lastUsed, true);
    return id;
  }

  /** Take the next used element as [head, len], or null (tests). */
  takeUsed(): [number, number] | null {
    const id = this.next();
    return id < 0 ? null : [id, this.usedLen];
  }

  #release(head: number): void {
    let i = head;
    const n = this.#chainLen[head];
    this.#chainLen[head] = 0;
    for (let k = 0; k < n; k++) {
      const o = this.descOff + 16 * i;
      this.#free.push(i);
      i = this.dv.getUint16(o + 14, true);
    }
  }

  /** Whether the device asked to be kicked for the entries published since `old` (EVENT_IDX). */
  deviceWantsKick(old: number): boolean {
    if (!this.eventIdx) return (this.dv.getUint16(this.usedOff, true) & Vring.UsedFNoNotify) === 0;
    return needEvent(this.dv.getUint16(this.usedOff + 4 + 8 * this.size, true), this.availIdx, old);
  }
}
