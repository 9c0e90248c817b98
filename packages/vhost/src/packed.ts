import type { GuestMemory } from './memory.js';
import { Packed, Vring } from './spec.js';
import { type Chain, type QueueAddresses, rd32, VirtQueue } from './virtqueue.js';

const TWO_32 = 2 ** 32;
const MAX_HI = 2 ** 21;

/**
 * The device side of a packed virtqueue (virtio 1.x §2.8): one descriptor ring the driver marks
 * available and the device marks used, plus the two event-suppression structures. A chain is a run
 * of consecutive descriptors (NEXT) or one indirect table read sequentially; its buffer id is in
 * its last descriptor; the used index advances by the descriptors the chain took. Validation is
 * that of the split ring: a chain longer than the ring, buffers outside guest memory or bad
 * indirect tables complete with length 0; nothing outside the guest's regions is reachable.
 */
export class PackedQueue extends VirtQueue {
  /** Next ring slot to look at for new buffers, and its wrap counter. */
  lastAvail = 0;
  availWrap = true;
  /** Next ring slot to write a used descriptor to, and its wrap counter. */
  usedIdx = 0;
  usedWrap = true;

  #mem: GuestMemory | null = null;
  #ring: Uint8Array = new Uint8Array(0);
  #flags: Uint16Array = new Uint16Array(0);
  #driverEvent: Uint16Array = new Uint16Array(0);
  #deviceEvent: Uint16Array = new Uint16Array(0);
  /** First used slot written since the last publish (and its wrap), for the head-flag store. */
  #batchStart = -1;
  #batchWrap = true;
  #batchFlags = 0;

  get base(): number {
    return (
      (this.lastAvail |
        (this.availWrap ? 0x8000 : 0) |
        ((this.usedIdx | (this.usedWrap ? 0x8000 : 0)) << 16)) >>>
      0
    );
  }

  setBase(num: number): void {
    this.lastAvail = num & 0x7fff;
    this.availWrap = (num & 0x8000) !== 0;
    this.usedIdx = (num >>> 16) & 0x7fff;
    this.usedWrap = (num & 0x80000000) !== 0;
  }

  start(mem: GuestMemory, size: number, addr: QueueAddresses): string | null {
    if (!Number.isInteger(size) || size < 1 || size > Vring.MaxSize) {
      return `queue ${this.index}: size ${size} out of 1..${Vring.MaxSize}`;
    }
    if (this.lastAvail >= size || this.usedIdx >= size) return `queue ${this.index}: base beyond the ring`;
    const d = mem.locate(addr.desc, 16 * size);
    const drv = mem.locate(addr.avail, 4);
    const dev = mem.locate(addr.used, 4);
    if (!d || !drv || !dev) return `queue ${this.index}: ring not inside guest memory`;
    const dOff = d.region.bytes.byteOffset + d.offset;
    const drvOff = drv.region.bytes.byteOffset + drv.offset;
    const devOff = dev.region.bytes.byteOffset + dev.offset;
    if (dOff % 16 !== 0 || drvOff % 4 !== 0 || devOff % 4 !== 0)
      return `queue ${this.index}: misaligned ring`;
    this.#mem = mem;
    this.#ring = d.region.bytes.subarray(d.offset, d.offset + 16 * size);
    this.#flags = new Uint16Array(d.region.bytes.buffer, dOff, 8 * size);
    this.#driverEvent = new Uint16Array(drv.region.bytes.buffer, drvOff, 2);
    this.#deviceEvent = new Uint16Array(dev.region.bytes.buffer, devOff, 2);
    this.size = size;
    this.addr = addr;
    this.#batchStart = -1;
    this.broken = null;
    this.draining = false;
    this.running = true;
    // We poll: no kicks, please.
    this.#deviceEvent[1] = Packed.EventDisable;
    return null;
  }

  stop(): void {
    this.running = false;
    this.draining = false;
    this.#mem = null;
    this.#ring = new Uint8Array(0);
    this.#flags = new Uint16Array(0);
    this.#driverEvent = new Uint16Array(0);
    this.#deviceEvent = new Uint16Array(0);
  }

  #isAvail(slot: number, wrap: boolean): boolean {
    const f = Atomics.load(this.#flags, slot * 8 + 7);
    const avail = (f & Packed.DescFAvail) !== 0;
    const used = (f & Packed.DescFUsed) !== 0;
    return avail === wrap && used !== wrap;
  }

  pop(chain: Chain): boolean {
    if (!this.running || this.draining) return false;
    if (!this.#isAvail(this.lastAvail, this.availWrap)) return false;
    const mem = this.#mem as GuestMemory;
    const ring = this.#ring;
    chain.reset(0);
    let slot = this.lastAvail;
    let wrap = this.availWrap;
    let n = 0;
    let id = 0;
    for (;;) {
      if (n >= this.size) {
        // A chain as long as the ring without an end: the ring is corrupt.
        this.fail('descriptor chain longer than the ring');
        return false;
      }
      if (n > 0 && !this.#isAvail(slot, wrap)) {
        this.fail(`chain continues into descriptor ${slot}, which is not available`);
        return false;
      }
      const o = slot * 16;
      const flags = ring[o + 14] | (ring[o + 15] << 8);
      id = ring[o + 12] | (ring[o + 13] << 8);
      n++;
      slot++;
      if (slot === this.size) {
        slot = 0;
        wrap = !wrap;
      }
      if (chain.error === null) this.#segment(mem, ring, o, flags, chain);
      if ((flags & Vring.DescFNext) === 0 || flags & Vring.DescFIndirect) break;
    }
    this.lastAvail = slot;
    this.availWrap = wrap;
    chain.head = id;
    chain.ndesc = n;
    this.stats.requests++;
    if (chain.error !== null) this.stats.badChains++;
    return true;
  }

  /** Add descriptor `o` of `table` to the chain (expanding an indirect table). */
  #segment(mem: GuestMemory, table: Uint8Array, o: number, flags: number, chain: Chain): void {
    const hi = rd32(table, o + 4);
    const len = rd32(table, o + 8);
    if (hi >= MAX_HI) {
      chain.error = 'descriptor address beyond guest memory';
      return;
    }
    const gpa = hi * TWO_32 + rd32(table, o);
    if (flags & Vring.DescFIndirect) {
      if (!this.indirect || chain.count > 0 || len === 0 || len % 16 !== 0 || len / 16 > Vring.MaxSize) {
        chain.error = 'bad indirect descriptor';
        return;
      }
      const t = mem.slice(gpa, len);
      if (t === null) {
        chain.error = 'indirect table outside guest memory';
        return;
      }
      for (let k = 0; k < len / 16 && chain.error === null; k++) {
        const f = t[16 * k + 14] | (t[16 * k + 15] << 8);
        if (f & Vring.DescFIndirect) chain.error = 'nested indirect table';
        else this.#segment(mem, t, 16 * k, f, chain);
      }
      return;
    }
    const view = mem.slice(gpa, len);
    if (view === null) {
      chain.error = `buffer [${gpa}, +${len}) outside guest memory`;
      return;
    }
    chain.push(view, (flags & Vring.DescFWrite) !== 0);
  }

  push(chain: Chain, len: number): void {
    if (!this.running) return;
    const o = this.usedIdx * 16;
    const r = this.#ring;
    r[o + 8] = len;
    r[o + 9] = len >>> 8;
    r[o + 10] = len >>> 16;
    r[o + 11] = len >>> 24;
    r[o + 12] = chain.head;
    r[o + 13] = chain.head >>> 8;
    const flags = this.usedWrap ? Packed.DescFAvail | Packed.DescFUsed : 0;
    if (this.#batchStart < 0) {
      // The first used descriptor of a batch gets its flags last (publish), so the driver sees
      // the whole batch at once.
      this.#batchStart = this.usedIdx;
      this.#batchWrap = this.usedWrap;
      this.#batchFlags = flags | (len > 0 ? Vring.DescFWrite : 0);
    } else this.#flags[this.usedIdx * 8 + 7] = flags | (len > 0 ? Vring.DescFWrite : 0);
    this.usedIdx += chain.ndesc;
    if (this.usedIdx >= this.size) {
      this.usedIdx -= this.size;
      this.usedWrap = !this.usedWrap;
    }
  }

  publish(): boolean {
    if (this.#batchStart < 0 || !this.running) return false;
    // Release: every used descriptor written above is visible before the head's flags.
    Atomics.store(this.#flags, this.#batchStart * 8 + 7, this.#batchFlags);
    const first = this.#batchStart + (this.#batchWrap ? this.size : 0);
    this.#batchStart = -1;
    const mode = Atomics.load(this.#driverEvent, 1);
    if (mode === Packed.EventDisable) return false;
    if (mode === Packed.EventEnable || !this.eventIdx) return true;
    // EVENT_IDX (DESC mode): did this batch cover the used slot the driver named? Positions are
    // taken on a circle of 2 * size (slot + size when its wrap bit is set), relative to the batch.
    const ev = this.#driverEvent[0];
    const lap = 2 * this.size;
    const evPos = (ev & 0x7fff) + (ev & 0x8000 ? this.size : 0);
    const endPos = this.usedIdx + (this.usedWrap ? this.size : 0);
    return (evPos - first + lap) % lap < (endPos - first + lap) % lap;
  }
}
