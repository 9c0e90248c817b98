// One I/OAT DMA channel, driven from user space by polling (SPDK lib/ioat): a ring of 64-byte
// descriptors in DMA memory, chained through their NEXT fields; descriptors are built at the
// ring's head and handed to the engine by one DMACOUNT write per batch (flush); the engine writes
// the address of the last completed descriptor to a completion word in DMA memory, which
// processEvents() polls. No interrupts, no locks: a channel belongs to one thread.
import {
  DmaRegion,
  type IoMap,
  ioAddressIn,
  type MmioRegion,
  type PciDevice,
  type PciDeviceAccess,
} from '@storkit/native';
import { getThread, type Thread } from '@storkit/reactor';

import { IOAT_ECANCELED, IOAT_EIO, IoatError } from './errors.js';
import {
  CBVER_3_0,
  CBVER_3_3,
  CHANCMD,
  CHANCTRL,
  CHANSTS,
  CTL,
  CTL_OP_SHIFT,
  chanerrNames,
  DESC_SIZE,
  DMACAP,
  maxTransfer,
  OP,
  REG,
} from './spec.js';

/**
 * The function a channel is driven through: a PciDevice this thread opened, or another worker's
 * device attached here (`attachPciDevice`; its owner enables bus mastering).
 */
export type IoatDevice = PciDevice | PciDeviceAccess;

/** A region as the device sees it: IO addresses and how far they run contiguously. */
class Window {
  readonly region: DmaRegion;
  readonly #map: IoMap;
  readonly #pageSize: number;
  readonly #base: number;

  constructor(region: DmaRegion, map: IoMap) {
    this.region = region;
    this.#map = map;
    this.#pageSize = map.pageSize;
    this.#base = map.contiguous ? map.pages[0] : -1;
  }

  ioAddress(offset: number): number {
    return this.#base >= 0 ? this.#base + offset : ioAddressIn(this.#map, offset);
  }

  /** Bytes from `offset` whose IO addresses are contiguous: to the region's end behind an IOMMU. */
  contiguous(offset: number): number {
    return this.#base >= 0 ? this.region.size - offset : this.#pageSize - (offset % this.#pageSize);
  }
}

/** Runs once per operation: status 0, IOAT_EIO (the engine halted on it) or IOAT_ECANCELED. */
// biome-ignore lint/suspicious/noExplicitAny: a ring slot holds callbacks of any argument type
export type IoatCallback<A = any> = (arg: A, status: number) => void;

export interface IoatChannelOptions {
  /** log2 of the ring's descriptors, 4..15 (default 7: 128, SPDK's IOAT_DEFAULT_ORDER). */
  ringOrder?: number;
  /**
   * How long a reset or the start may take (default 5000 ms). Hardware takes microseconds (SPDK
   * allows 20 ms); the margin is for a device model on a loaded machine (1 s was seen to be short
   * there), and costs only on failure.
   */
  timeoutMs?: number;
}

const WORDS = DESC_SIZE / 4;
const TWO32 = 2 ** 32;
/** Polls without progress, with operations outstanding, between looks at CHANSTS itself. */
const STALL_POLLS = 1 << 14;
/** Config-space CHANERR of engines before 3.3 (SPDK's SPDK_IOAT_PCI_CHANERR_INT_OFFSET). */
const PCI_CHANERR_INT = 0x180;

const RUNNING = 0;
const RESETTING = 1;
const FAILED = 2;
const DETACHED = 3;

/**
 * A claimed, started channel. Build operations with buildCopy/buildFill (they go into the ring,
 * not yet to the engine), hand every built one to the engine with flush(), and poll
 * processEvents() for completions. Errors of the engine (CHANERR) fail only the operation that
 * caused them: the channel is reset and the operations queued behind it run.
 *
 * Contract of the build functions: a throw (IoatError) means nothing was queued and the callback
 * never runs; `false` means the ring has no room for this operation now (poll, then retry);
 * `true` means the callback runs exactly once, from a later processEvents().
 */
export class IoatChannel {
  /** PCI address of the function. */
  readonly address: string;
  /** CBVER: major version in the high nibble. */
  readonly version: number;
  /** Largest transfer of one descriptor (XFERCAP); longer operations use several. */
  readonly maxTransfer: number;
  /** DMACAP.BFILL: the engine fills. */
  readonly fillSupported: boolean;
  /** CHANERR of the last halt (0 before any). */
  lastError = 0;
  /** Times the engine halted and the channel was reset to recover. */
  halts = 0;
  /** Why the channel failed, when it did. */
  failure = '';
  /** DMACOUNT writes: one per flush that handed the engine something. */
  doorbells = 0;

  readonly #dev: IoatDevice;
  readonly #regs: MmioRegion;
  readonly #timeoutMs: number;
  readonly #size: number;
  readonly #mask: number;
  // Ring and completion word in one DMA region: descriptors first, the completion word after them.
  readonly #ringRegion: DmaRegion;
  readonly #desc: Uint32Array;
  readonly #compIo: number;
  readonly #compWord: number;
  readonly #slotIo: Float64Array;
  readonly #ringContiguous: boolean;
  readonly #cbs: (IoatCallback | null)[];
  readonly #args: unknown[];
  /** 1 on the last descriptor of an operation. */
  readonly #ends: Uint8Array;
  // Free-running counters: head = next slot to build, tail = oldest outstanding, flushed = head at
  // the last flush, base = the counter value the engine's DMACOUNT counts from (its last start).
  #head = 0;
  #tail = 0;
  #flushed = 0;
  #base = 0;
  #lastSeen = 0;
  #idlePolls = 0;
  #resetPolls = 0;
  #state = RUNNING;
  #owner: Thread | null = null;
  #claimed = false;
  #reactorWide = false;
  readonly #windows = new Map<DmaRegion, Window>();
  #lastRegion: DmaRegion | null = null;
  #lastWindow: Window | null = null;

  private constructor(dev: IoatDevice, regs: MmioRegion, opts: Required<IoatChannelOptions>) {
    this.#dev = dev;
    this.address = dev.address;
    this.#regs = regs;
    this.#timeoutMs = opts.timeoutMs;
    this.version = regs.read8(REG.CBVER);
    this.maxTransfer = maxTransfer(regs.read8(REG.XFERCAP));
    this.fillSupported = (regs.read32(REG.DMACAPABILITY) & DMACAP.BFILL) !== 0;
    this.#size = 1 << opts.ringOrder;
    this.#mask = this.#size - 1;
    const ringBytes = this.#size * DESC_SIZE;
    this.#ringRegion = DmaRegion.create(ringBytes + DESC_SIZE);
    const win = new Window(this.#ringRegion, dev.dmaMap(this.#ringRegion));
    this.#desc = new Uint32Array(this.#ringRegion.buffer, 0, this.#size * WORDS + 2);
    this.#compWord = this.#size * WORDS;
    this.#compIo = win.ioAddress(ringBytes);
    this.#ringContiguous = win.contiguous(0) >= ringBytes;
    this.#slotIo = new Float64Array(this.#size);
    for (let i = 0; i < this.#size; i++) this.#slotIo[i] = win.ioAddress(i * DESC_SIZE);
    // Each descriptor's NEXT points at the one after it, the last at the first: set once.
    for (let i = 0; i < this.#size; i++)
      setAddr(this.#desc, i * WORDS + 6, this.#slotIo[(i + 1) & this.#mask]);
    this.#cbs = new Array(this.#size).fill(null);
    this.#args = new Array(this.#size).fill(undefined);
    this.#ends = new Uint8Array(this.#size);
  }

  /**
   * Open an I/OAT function: bus mastering on, check the version (3.0 or later) and XFERCAP,
   * reset the channel, build the ring and start it with a null descriptor (SPDK's
   * ioat_channel_start). The channel is unclaimed: claim() it from the thread that will use it.
   */
  static async attach(dev: IoatDevice, options: IoatChannelOptions = {}): Promise<IoatChannel> {
    const opts = { ringOrder: options.ringOrder ?? 7, timeoutMs: options.timeoutMs ?? 5000 };
    if (!Number.isInteger(opts.ringOrder) || opts.ringOrder < 4 || opts.ringOrder > 15) {
      throw new IoatError('EINVAL', `ringOrder must be an integer in 4..15, got ${opts.ringOrder}`);
    }
    if ('enableBusMaster' in dev) dev.enableBusMaster();
    const regs = dev.bar(0);
    if (regs.read32(0) === 0xffffffff) throw new IoatError('ENODEV', `${dev.address}: BAR0 reads all-ones`);
    const version = regs.read8(REG.CBVER);
    if (version < CBVER_3_0) {
      throw new IoatError('ENOTSUP', `${dev.address}: I/OAT version ${version >> 4}.${version & 15} < 3.0`);
    }
    if (maxTransfer(regs.read8(REG.XFERCAP)) === 0) {
      throw new IoatError('ENOTSUP', `${dev.address}: invalid XFERCAP ${regs.read8(REG.XFERCAP)}`);
    }
    const ch = new IoatChannel(dev, regs, opts);
    try {
      await ch.#start();
    } catch (e) {
      ch.#ringRegion.close();
      throw e;
    }
    return ch;
  }

  /** Descriptors in the ring (SPDK's spdk_ioat_get_max_descriptors); one stays empty. */
  getMaxDescriptors(): number {
    return this.#size;
  }

  /** Operations built and not yet completed. */
  get outstanding(): number {
    return this.#head - this.#tail;
  }

  /** Whether an engine error made the channel unusable (it failed to reset, or vanished). */
  get failed(): boolean {
    return this.#state === FAILED;
  }

  /**
   * Make the calling thread (null outside any reactor thread) the only one that may use it; with
   * `reactor`, any thread of the calling thread's reactor (they take turns on one OS thread, so
   * they never use it at the same time).
   */
  claim(scope: 'thread' | 'reactor' = 'thread'): void {
    const t = getThread();
    if (this.#claimed && !this.#mine(t)) {
      throw new IoatError('EBUSY', `${this.address}: channel is claimed by thread ${this.#owner?.name}`);
    }
    if (scope === 'reactor' && t === null)
      throw new IoatError('EINVAL', 'a reactor-wide claim needs a current thread');
    this.#owner = t;
    this.#claimed = true;
    this.#reactorWide = scope === 'reactor';
  }

  #mine(t: Thread | null): boolean {
    return t === this.#owner || (this.#reactorWide && t !== null && t.host === (this.#owner as Thread).host);
  }

  /** The thread that claimed it (null: unclaimed, or claimed outside any thread). */
  get owner(): Thread | null {
    return this.#owner;
  }

  /** Give the channel back (from its thread) so another thread may claim it. */
  release(): void {
    this.#own();
    this.#claimed = false;
    this.#owner = null;
    this.#reactorWide = false;
  }

  /**
   * Queue a copy of `len` bytes from `src[0..]` to `dst[0..]`, both views of DMA regions (as SPDK
   * takes virtual addresses of DMA memory). Splits at the engine's transfer limit and where IO
   * addresses stop being contiguous. See the class comment for the return contract.
   */
  buildCopy(dst: Uint8Array, src: Uint8Array, len: number, cb: IoatCallback, arg?: unknown): boolean {
    if (len > dst.length || len > src.length) {
      throw new IoatError(
        'EINVAL',
        `copy of ${len} bytes does not fit dst (${dst.length}) or src (${src.length})`,
      );
    }
    return this.buildCopyAt(regionOf(dst), dst.byteOffset, regionOf(src), src.byteOffset, len, cb, arg);
  }

  /** buildCopy by (region, offset) pairs. */
  buildCopyAt(
    dst: DmaRegion,
    dstOff: number,
    src: DmaRegion,
    srcOff: number,
    len: number,
    cb: IoatCallback,
    arg?: unknown,
  ): boolean {
    this.#own();
    checkRange(dst, dstOff, len, 'dst');
    checkRange(src, srcOff, len, 'src');
    if (dst === src && dstOff < srcOff + len && srcOff < dstOff + len) {
      throw new IoatError('EINVAL', `copy ranges overlap (dst ${dstOff}, src ${srcOff}, ${len} bytes)`);
    }
    const dw = this.#window(dst);
    const sw = this.#window(src);
    const max = this.maxTransfer;
    let n = 1;
    if (len > max || dw.contiguous(dstOff) < len || sw.contiguous(srcOff) < len) {
      n = 0;
      for (let done = 0; done < len; n++) {
        done += Math.min(len - done, max, dw.contiguous(dstOff + done), sw.contiguous(srcOff + done));
      }
    }
    if (this.#size - 1 - (this.#head - this.#tail) < n) return this.#tooBig(n);
    const d = this.#desc;
    let slot = 0;
    for (let done = 0; done < len; ) {
      const chunk = Math.min(len - done, max, dw.contiguous(dstOff + done), sw.contiguous(srcOff + done));
      slot = this.#head++ & this.#mask;
      const w = slot * WORDS;
      d[w] = chunk;
      d[w + 1] = OP.COPY << CTL_OP_SHIFT;
      setAddr(d, w + 2, sw.ioAddress(srcOff + done));
      setAddr(d, w + 4, dw.ioAddress(dstOff + done));
      this.#cbs[slot] = null;
      this.#ends[slot] = 0;
      done += chunk;
    }
    this.#cbs[slot] = cb;
    this.#args[slot] = arg;
    this.#ends[slot] = 1;
    return true;
  }

  /**
   * Queue a fill of `len` bytes at `dst[0..]` with an 8-byte pattern, given as its little-endian
   * low and high words (byte i of the destination = byte i % 8 of the pattern). Needs
   * DMACAP.BFILL (ENOTSUP otherwise).
   */
  buildFill(
    dst: Uint8Array,
    patternLo: number,
    patternHi: number,
    len: number,
    cb: IoatCallback,
    arg?: unknown,
  ) {
    if (len > dst.length)
      throw new IoatError('EINVAL', `fill of ${len} bytes does not fit dst (${dst.length})`);
    return this.buildFillAt(regionOf(dst), dst.byteOffset, patternLo, patternHi, len, cb, arg);
  }

  /** buildFill by (region, offset). */
  buildFillAt(
    dst: DmaRegion,
    dstOff: number,
    patternLo: number,
    patternHi: number,
    len: number,
    cb: IoatCallback,
    arg?: unknown,
  ): boolean {
    this.#own();
    if (!this.fillSupported) throw new IoatError('ENOTSUP', `${this.address}: the engine has no block fill`);
    checkRange(dst, dstOff, len, 'dst');
    if (patternLo >>> 0 !== patternLo || patternHi >>> 0 !== patternHi) {
      throw new IoatError('EINVAL', 'the fill pattern words must be 32-bit unsigned integers');
    }
    const dw = this.#window(dst);
    const max = this.maxTransfer;
    let n = 1;
    if (len > max || dw.contiguous(dstOff) < len) {
      n = 0;
      for (let done = 0; done < len; n++) done += Math.min(len - done, max, dw.contiguous(dstOff + done));
    }
    if (this.#size - 1 - (this.#head - this.#tail) < n) return this.#tooBig(n);
    const d = this.#desc;
    let slot = 0;
    for (let done = 0; done < len; ) {
      const chunk = Math.min(len - done, max, dw.contiguous(dstOff + done));
      slot = this.#head++ & this.#mask;
      const w = slot * WORDS;
      d[w] = chunk;
      d[w + 1] = OP.FILL << CTL_OP_SHIFT;
      // Each descriptor repeats the pattern from its own first byte: keep the phase across splits.
      const rot = done & 7;
      d[w + 2] = rot === 0 ? patternLo : rotateLo(patternLo, patternHi, rot);
      d[w + 3] = rot === 0 ? patternHi : rotateLo(patternHi, patternLo, rot);
      setAddr(d, w + 4, dw.ioAddress(dstOff + done));
      d[w + 10] = 0;
      d[w + 11] = 0;
      this.#cbs[slot] = null;
      this.#ends[slot] = 0;
      done += chunk;
    }
    this.#cbs[slot] = cb;
    this.#args[slot] = arg;
    this.#ends[slot] = 1;
    return true;
  }

  /**
   * Hand every descriptor built since the last flush to the engine: the last one asks for a
   * completion write, then one DMACOUNT write (SPDK's spdk_ioat_flush). While the channel recovers
   * from an error, the batch waits for the restart.
   */
  flush(): void {
    if (this.#head === this.#flushed) return;
    this.#own();
    this.#flush();
  }

  #flush(): void {
    const head = this.#head;
    const w = ((head - 1) & this.#mask) * WORDS + 1;
    this.#desc[w] |= CTL.COMPLETION_UPDATE;
    this.#flushed = head;
    if (this.#state === RUNNING) {
      this.#regs.write16(REG.DMACOUNT, (head - this.#base) & 0xffff);
      this.doorbells++;
    }
  }

  /** buildCopy, then flush. */
  submitCopy(dst: Uint8Array, src: Uint8Array, len: number, cb: IoatCallback, arg?: unknown): boolean {
    const ok = this.buildCopy(dst, src, len, cb, arg);
    if (ok) this.flush();
    return ok;
  }

  /** buildFill, then flush. */
  submitFill(
    dst: Uint8Array,
    patternLo: number,
    patternHi: number,
    len: number,
    cb: IoatCallback,
    arg?: unknown,
  ) {
    const ok = this.buildFill(dst, patternLo, patternHi, len, cb, arg);
    if (ok) this.flush();
    return ok;
  }

  /**
   * Run the callbacks of every operation the engine has finished, in order; recover from a halt.
   * Returns the number of callbacks run (SPDK's spdk_ioat_process_events).
   */
  processEvents(): number {
    if (this.#head === this.#tail && this.#state === RUNNING) return 0;
    this.#own();
    return this.#poll();
  }

  #poll(): number {
    if (this.#state === RESETTING) return this.#continueReset();
    if (this.#state !== RUNNING) return 0;
    const d = this.#desc;
    const c = this.#compWord;
    // The engine writes the word as one 64-bit store; hi, lo, hi again rejects a torn read.
    let hi = d[c + 1];
    let lo = d[c];
    while (d[c + 1] !== hi) {
      hi = d[c + 1];
      lo = d[c];
    }
    const addr = lo - (lo & CHANSTS.ADDRESS_LOW_MASK) + hi * TWO32;
    if ((lo & CHANSTS.STATUS_MASK) === CHANSTS.HALTED) return this.#halted(addr);
    if (addr === this.#lastSeen) return this.#stalled();
    this.#idlePolls = 0;
    return this.#completeThrough(addr);
  }

  /**
   * Stop the channel and give its resources back: the engine is suspended and reset, operations
   * still outstanding complete with IOAT_ECANCELED, the ring is freed and the function closed.
   */
  async detach(): Promise<void> {
    if (this.#state === DETACHED) return;
    const pending = this.#state !== FAILED;
    this.#state = DETACHED;
    if (pending) {
      try {
        await this.#resetHw();
      } catch {
        // The device is being let go either way.
      }
    }
    this.#failOutstanding(IOAT_ECANCELED);
    // Buffer regions stay mapped: they are their owners' (in one VFIO container, for every device).
    this.#windows.clear();
    this.#dev.dmaUnmap(this.#ringRegion);
    this.#ringRegion.close();
    this.#dev.close();
  }

  // --- internals

  /** No room now: false (retry later), or EINVAL when the operation can never fit the ring. */
  #tooBig(n: number): false {
    if (n > this.#size - 1) {
      throw new IoatError('EINVAL', `operation needs ${n} descriptors, the ring holds ${this.#size - 1}`);
    }
    return false;
  }

  #own(): void {
    if (!this.#claimed || !this.#mine(getThread())) {
      throw new IoatError(
        this.#claimed ? 'EWRONGTHREAD' : 'EBUSY',
        this.#claimed
          ? `${this.address}: channel belongs to thread ${this.#owner?.name ?? '(none)'}`
          : `${this.address}: claim() the channel first`,
      );
    }
    if (this.#state === DETACHED) throw new IoatError('ESHUTDOWN', `${this.address}: channel is detached`);
  }

  #window(region: DmaRegion): Window {
    if (region === this.#lastRegion) return this.#lastWindow as Window;
    let w = this.#windows.get(region);
    if (w === undefined) {
      if (region.closed) throw new IoatError('EFAULT', 'buffer region is closed');
      try {
        w = new Window(region, this.#dev.dmaMap(region));
      } catch (e) {
        throw new IoatError('EFAULT', `${this.address}: cannot map the buffer's region for DMA`, {
          cause: e,
        });
      }
      this.#windows.set(region, w);
    }
    this.#lastRegion = region;
    this.#lastWindow = w;
    return w;
  }

  #slotOf(addr: number): number {
    if (this.#ringContiguous) {
      const off = addr - this.#slotIo[0];
      if (off < 0 || off >= this.#size * DESC_SIZE || off % DESC_SIZE !== 0) return -1;
      return off / DESC_SIZE;
    }
    return this.#slotIo.indexOf(addr);
  }

  /** Complete from the tail through the slot at IO address `addr`; returns callbacks run. */
  #completeThrough(addr: number): number {
    const slot = this.#slotOf(addr);
    const dist = slot < 0 ? -1 : (slot - this.#tail) & this.#mask;
    if (dist < 0 || dist >= this.#head - this.#tail) {
      // A completion outside what was submitted: the engine is not trustworthy any more.
      this.#fail(`completion address 0x${addr.toString(16)} is not an outstanding descriptor`);
      return 0;
    }
    this.#lastSeen = addr;
    const end = this.#tail + dist + 1;
    let n = 0;
    while (this.#tail !== end) {
      const s = this.#tail++ & this.#mask;
      const cb = this.#cbs[s];
      if (cb !== null) {
        const a = this.#args[s];
        this.#cbs[s] = null;
        this.#args[s] = undefined;
        n++;
        cb(a, 0);
      }
    }
    return n;
  }

  /** No new completion: now and then look at CHANSTS itself, in case no completion write comes. */
  #stalled(): number {
    if (++this.#idlePolls < STALL_POLLS) return 0;
    this.#idlePolls = 0;
    const lo = this.#regs.read32(REG.CHANSTS);
    if ('removed' in this.#dev && this.#dev.removed()) {
      this.#fail('the device was removed');
      return 0;
    }
    if (lo === 0xffffffff && this.#regs.read32(0) === 0xffffffff) {
      this.#fail('the device does not answer (BAR0 reads all-ones)');
      return 0;
    }
    if ((lo & CHANSTS.STATUS_MASK) !== CHANSTS.HALTED) return 0;
    const hi = this.#regs.read32(REG.CHANSTS + 4);
    return this.#halted(lo - (lo & CHANSTS.ADDRESS_LOW_MASK) + hi * TWO32);
  }

  /**
   * The engine halted after completing the descriptor at `addr`: complete what finished, fail the
   * operation the next descriptor belongs to, and reset; the operations behind it run once the
   * channel restarts from the descriptor after the failed operation.
   */
  #halted(addr: number): number {
    let n = 0;
    if (addr !== this.#lastSeen && this.#slotOf(addr) >= 0) n = this.#completeThrough(addr);
    if (this.#state !== RUNNING) return n;
    const err = this.#regs.read32(REG.CHANERR);
    this.lastError = err;
    this.halts++;
    if (this.#tail !== this.#head) {
      let s = this.#tail & this.#mask;
      while (this.#ends[s] === 0 && this.#tail + 1 !== this.#head) {
        this.#cbs[s] = null;
        this.#tail++;
        s = this.#tail & this.#mask;
      }
      const cb = this.#cbs[s];
      const a = this.#args[s];
      this.#cbs[s] = null;
      this.#args[s] = undefined;
      this.#tail++;
      if (cb !== null) {
        n++;
        cb(a, IOAT_EIO);
      }
    }
    // Clear the errors (write 1 to clear) and reset; processEvents() finishes the restart.
    this.#regs.write32(REG.CHANERR, err);
    this.#regs.write8(REG.CHANCMD, CHANCMD.RESET);
    this.#state = RESETTING;
    this.#resetPolls = 0;
    return n;
  }

  #continueReset(): number {
    if ((this.#regs.read8(REG.CHANCMD) & CHANCMD.RESET) !== 0) {
      // A reset that never completes leaves nothing to recover.
      if (++this.#resetPolls > 100_000) this.#fail(`reset did not complete (CHANERR ${hex(this.lastError)})`);
      return 0;
    }
    this.#program(this.#tail);
    this.#state = RUNNING;
    if (this.#flushed !== this.#tail) this.#regs.write16(REG.DMACOUNT, (this.#flushed - this.#base) & 0xffff);
    return 0;
  }

  /** Point the engine at slot `first` with a clean completion word; DMACOUNT counts from there. */
  #program(first: number): void {
    this.#desc[this.#compWord] = 0;
    this.#desc[this.#compWord + 1] = 0;
    this.#lastSeen = 0;
    this.#base = first;
    this.#regs.write16(REG.CHANCTRL, CHANCTRL.ANY_ERR_ABORT_EN | CHANCTRL.ERR_COMPLETION_EN);
    this.#regs.write64(REG.CHANCMP, BigInt(this.#compIo));
    this.#regs.write64(REG.CHAINADDR, BigInt(this.#slotIo[first & this.#mask]));
  }

  #fail(why: string): void {
    this.#state = FAILED;
    this.#failOutstanding(IOAT_EIO);
    this.failure = `${this.address}: ${why}`;
  }

  #failOutstanding(status: number): void {
    while (this.#tail !== this.#head) {
      const s = this.#tail++ & this.#mask;
      const cb = this.#cbs[s];
      const a = this.#args[s];
      this.#cbs[s] = null;
      this.#args[s] = undefined;
      if (cb !== null) cb(a, status);
    }
    this.#flushed = this.#head;
  }

  async #start(): Promise<void> {
    await this.#resetHw();
    this.#program(0);
    // A null descriptor wakes the channel; it must complete before the channel is trusted.
    const w = 0;
    this.#desc[w] = 8;
    this.#desc[w + 1] = (OP.COPY << CTL_OP_SHIFT) | CTL.NULL;
    setAddr(this.#desc, w + 2, 0);
    setAddr(this.#desc, w + 4, 0);
    this.#cbs[0] = null;
    this.#ends[0] = 1;
    this.#head = 1;
    this.#flush();
    const ok = await this.#waitFor(() => (this.#chansts() & CHANSTS.STATUS_MASK) === CHANSTS.IDLE);
    if (!ok) {
      const err = this.#regs.read32(REG.CHANERR);
      throw new IoatError(
        'ETIMEDOUT',
        `${this.address}: channel did not start: CHANSTS status ${this.#chansts() & 7}, CHANERR ${hex(err)} ` +
          `${chanerrNames(err).join(' ')}`,
      );
    }
    this.#poll();
    if (this.#tail !== 1)
      throw new IoatError('EIO', `${this.address}: no completion write for the start descriptor`);
  }

  /** Suspend if running, clear CHANERR, reset, wait for the reset to finish (SPDK's ioat_reset_hw). */
  async #resetHw(): Promise<void> {
    const running = () => {
      const s = this.#chansts() & CHANSTS.STATUS_MASK;
      return s === CHANSTS.ACTIVE || s === CHANSTS.IDLE;
    };
    if (running()) this.#regs.write8(REG.CHANCMD, CHANCMD.SUSPEND);
    if (!(await this.#waitFor(() => !running()))) {
      throw new IoatError('ETIMEDOUT', `${this.address}: timed out waiting for suspend`);
    }
    const err = this.#regs.read32(REG.CHANERR);
    this.#regs.write32(REG.CHANERR, err);
    const dev = this.#dev;
    if (this.version < CBVER_3_3 && 'configRead' in dev) {
      dev.configWrite(PCI_CHANERR_INT, 4, dev.configRead(PCI_CHANERR_INT, 4));
    }
    this.#regs.write8(REG.CHANCMD, CHANCMD.RESET);
    if (!(await this.#waitFor(() => (this.#regs.read8(REG.CHANCMD) & CHANCMD.RESET) === 0))) {
      throw new IoatError('ETIMEDOUT', `${this.address}: timed out waiting for reset`);
    }
  }

  #chansts(): number {
    return this.#regs.read32(REG.CHANSTS);
  }

  async #waitFor(done: () => boolean): Promise<boolean> {
    const deadline = performance.now() + this.#timeoutMs;
    for (;;) {
      if (done()) return true;
      if (performance.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 0.1));
    }
  }
}

function regionOf(buf: Uint8Array): DmaRegion {
  const r = DmaRegion.of(buf);
  if (r === undefined || r.closed) throw new IoatError('EFAULT', 'buffer is not in an open DMA region');
  return r;
}

function checkRange(r: DmaRegion, off: number, len: number, what: string): void {
  if (!Number.isSafeInteger(len) || len <= 0) throw new IoatError('EINVAL', `length ${len} must be positive`);
  if (!Number.isSafeInteger(off) || off < 0 || off + len > r.size) {
    throw new IoatError(
      'EINVAL',
      `${what} range [${off}, ${off}+${len}) is outside its region (${r.size} bytes)`,
    );
  }
}

function setAddr(d: Uint32Array, w: number, io: number): void {
  const lo = io >>> 0;
  d[w] = lo;
  d[w + 1] = (io - lo) / TWO32;
}

/** Low word of an 8-byte little-endian pattern (lo, hi) rotated to start at byte `rot` (1..7). */
function rotateLo(lo: number, hi: number, rot: number): number {
  if (rot === 4) return hi;
  if (rot < 4) return ((lo >>> (8 * rot)) | (hi << (32 - 8 * rot))) >>> 0;
  return ((hi >>> (8 * (rot - 4))) | (lo << (32 - 8 * (rot - 4)))) >>> 0;
}

function hex(v: number): string {
  return `0x${v.toString(16)}`;
}
