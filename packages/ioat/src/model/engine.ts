// One I/OAT channel as the hardware behaves, for the device model's worker: registers in the BAR,
// descriptors fetched from DMA memory through the model's IOMMU, copies and fills done,
// completions written back, CHANSTS kept, errors latched in CHANERR with the channel halted until
// a reset. Written from SPDK's ioat_spec.h and the behaviour SPDK's and Linux's drivers rely on
// (see ../spec.ts for the sources).
//
// The BAR is plain shared memory the engine polls, as the PCI layer's device models are: a
// command (CHANCMD) or a new DMACOUNT shows as a changed value. One thing plain memory cannot show
// is a store that rewrites the value already there, which is how a driver clears CHANERR (write
// the bits back, write 1 to clear): a partial clear is seen and applied, a clear of every bit is
// not, so the engine also clears CHANERR when it resets (the driver clears it before resetting,
// as hardware needs).
import {
  copyRange,
  type DmaRegion,
  type MmioRegion,
  MODEL_IO_SHIFT,
  type PciFunctionModel,
} from '@storkit/native';

import {
  CBVER_3_3,
  CHANCMD,
  CHANCMP_ALIGN,
  CHANCTRL,
  CHANERR,
  CHANSTS,
  CTL,
  CTL_OP_SHIFT,
  DESC_SIZE,
  DMACAP,
  maxTransfer,
  OP,
  REG,
} from '../spec.js';

export interface EngineOptions {
  /** XFERCAP: log2 of the largest transfer (default 20: 1 MiB). */
  xfercap?: number;
  /** Offer block fill (DMACAP.BFILL; default true). */
  fill?: boolean;
  /** CBVER (default 0x33). */
  version?: number;
  /** How long a reset takes, in microseconds (default 20): the driver must wait for it. */
  resetDelayUs?: number;
}

/** Counters the model publishes (Float64 slots of an engine's stats array). */
export const STAT = {
  DESCRIPTORS: 0,
  DMACOUNT_CHANGES: 1,
  HALTS: 2,
  RESETS: 3,
  BYTES: 4,
} as const;
export const STAT_SLOTS = 8;

/** Descriptors one poll runs at most before looking at the registers again. */
const BURST = 64;
const TWO32 = 2 ** 32;

export class ChannelEngine {
  readonly #fn: PciFunctionModel;
  readonly #bar: MmioRegion;
  readonly #cmd: Uint8Array;
  readonly #stats: Float64Array;
  readonly #max: number;
  readonly #fill: boolean;
  readonly #xfercap: number;
  readonly #version: number;
  readonly #resetDelayMs: number;
  #status: number = CHANSTS.ARMED;
  #count = 0;
  #dmacount = 0;
  #started = false;
  #next = 0;
  #lastCompleted = 0;
  #chanerr = 0;
  #resetAt = -1;
  #removed = false;
  // The last DMA translation: region bytes, words, doubles, and the offset in them.
  #bytes: Uint8Array = new Uint8Array(0);
  #words: Uint32Array = new Uint32Array(0);
  #doubles: Float64Array = new Float64Array(0);
  #off = 0;

  constructor(fn: PciFunctionModel, stats: Float64Array, opts: EngineOptions = {}) {
    this.#fn = fn;
    this.#bar = fn.bar(0);
    this.#cmd = new Uint8Array(this.#bar.buffer, REG.CHANCMD, 1);
    this.#stats = stats;
    this.#xfercap = opts.xfercap ?? 20;
    this.#max = maxTransfer(this.#xfercap);
    this.#fill = opts.fill ?? true;
    this.#version = opts.version ?? CBVER_3_3;
    this.#resetDelayMs = (opts.resetDelayUs ?? 20) / 1000;
    this.#powerOn();
  }

  /** Whether a reset is in progress (the worker must keep polling to finish it). */
  get resetting(): boolean {
    return this.#resetAt >= 0;
  }

  /** The device was pulled: it does nothing more and its BAR reads all-ones. */
  remove(): void {
    this.#removed = true;
    this.#fn.remove();
  }

  /** Look at the registers, finish a due reset, run descriptors. Returns the work done. */
  poll(now: number): number {
    if (this.#removed) return 0;
    const bar = this.#bar;
    let work = 0;
    if (this.#fn.resetRequested()) {
      // A function-level reset: back to the state at power-on.
      this.#powerOn();
      this.#fn.resetDone();
      work++;
    }
    const cmd = Atomics.load(this.#cmd, 0);
    if (cmd !== 0 && this.#resetAt < 0) work += this.#command(cmd);
    if (this.#resetAt >= 0 && now >= this.#resetAt) {
      this.#finishReset();
      work++;
    }
    const err = bar.read32(REG.CHANERR);
    if (err !== this.#chanerr) {
      // The driver wrote some bits back: write 1 to clear.
      this.#chanerr &= ~err;
      bar.write32(REG.CHANERR, this.#chanerr);
    }
    const target = bar.read16(REG.DMACOUNT);
    if (target !== this.#dmacount) {
      this.#dmacount = target;
      this.#stats[STAT.DMACOUNT_CHANGES]++;
    }
    if (
      (this.#status === CHANSTS.ACTIVE || this.#status === CHANSTS.IDLE || this.#status === CHANSTS.ARMED) &&
      this.#resetAt < 0 &&
      this.#count !== target &&
      this.#fn.busMaster
    ) {
      this.#status = CHANSTS.ACTIVE;
      let n = 0;
      while (this.#count !== target && n < BURST && this.#execute(target)) n++;
      if (this.#status === CHANSTS.ACTIVE && this.#count === target) this.#status = CHANSTS.IDLE;
      this.#publishStatus();
      work += n + 1;
    }
    return work;
  }

  #powerOn(): void {
    const bar = this.#bar;
    bar.bytes.fill(0, 0, 0x100);
    bar.write8(REG.CHANCNT, 1);
    bar.write8(REG.XFERCAP, this.#xfercap);
    bar.write8(REG.CBVER, this.#version);
    bar.write32(REG.DMACAPABILITY, DMACAP.PB | (this.#fill ? DMACAP.BFILL : 0));
    this.#resetAt = -1;
    this.#chanerr = 0;
    this.#clear();
  }

  /** A command in CHANCMD: act on it and clear it (RESET stays set until the reset is done). */
  #command(cmd: number): number {
    if ((cmd & CHANCMD.RESET) !== 0) {
      this.#resetAt = performance.now() + this.#resetDelayMs;
      return 1;
    }
    if ((cmd & CHANCMD.SUSPEND) !== 0) {
      if (this.#status === CHANSTS.ACTIVE || this.#status === CHANSTS.IDLE) this.#status = CHANSTS.SUSPENDED;
    } else if ((cmd & CHANCMD.RESUME) !== 0) {
      if (this.#status === CHANSTS.SUSPENDED) this.#status = CHANSTS.IDLE;
    } else {
      // START, APPEND and ABORT are the DMA v1/v2 interface; CB3 counts with DMACOUNT.
      this.#halt(CHANERR.CHANCMD);
    }
    // Clear what was handled, unless the driver has written another command meanwhile.
    Atomics.compareExchange(this.#cmd, 0, cmd, 0);
    this.#publishStatus();
    return 1;
  }

  #finishReset(): void {
    const bar = this.#bar;
    this.#resetAt = -1;
    this.#chanerr = 0;
    bar.write32(REG.CHANERR, 0);
    bar.write16(REG.DMACOUNT, 0);
    bar.write16(REG.CHANCTRL, 0);
    bar.write64(REG.CHAINADDR, 0n);
    bar.write64(REG.CHANCMP, 0n);
    this.#clear();
    Atomics.and(this.#cmd, 0, ~CHANCMD.RESET);
    this.#stats[STAT.RESETS]++;
  }

  #clear(): void {
    this.#status = CHANSTS.ARMED;
    this.#count = 0;
    this.#dmacount = 0;
    this.#started = false;
    this.#lastCompleted = 0;
    this.#publishStatus();
  }

  /** Point the translation fields at [io, io+len) of DMA memory; false (a fault) if unreachable. */
  #dma(io: number, len: number): boolean {
    const r = this.#fn.dmaRegion(io, len);
    if (r === null) return false;
    const v = viewsOf(r);
    this.#bytes = r.bytes;
    this.#words = v.words;
    this.#doubles = v.doubles;
    this.#off = io % MODEL_IO_SHIFT;
    return true;
  }

  /** Fetch and run one descriptor; false when it halted the engine. */
  #execute(target: number): boolean {
    let addr = this.#next;
    if (!this.#started) {
      addr = Number(this.#bar.read64(REG.CHAINADDR));
      if (addr % DESC_SIZE !== 0 || !this.#dma(addr, DESC_SIZE)) return this.#halt(CHANERR.CHAIN_ADDR_VALUE);
      this.#started = true;
    } else if (addr % DESC_SIZE !== 0) {
      return this.#halt(CHANERR.NEXT_DESCRIPTOR_ALIGNMENT);
    } else if (!this.#dma(addr, DESC_SIZE)) {
      return this.#halt(CHANERR.NEXT_DESCRIPTOR_ADDR);
    }
    const d = this.#words;
    const w = this.#off >>> 2;
    const size = d[w];
    const ctl = d[w + 1];
    const src = d[w + 2] + d[w + 3] * TWO32;
    const lo = d[w + 2];
    const hi = d[w + 3];
    const dst = d[w + 4] + d[w + 5] * TWO32;
    const next = d[w + 6] + d[w + 7] * TWO32;
    const op = ctl >>> CTL_OP_SHIFT;
    if (op === OP.COPY && (ctl & CTL.NULL) !== 0) {
      // Moves nothing.
    } else if (op === OP.COPY) {
      if (size === 0 || size > this.#max) return this.#halt(CHANERR.DESCRIPTOR_LENGTH);
      if (!this.#dma(src, size)) return this.#halt(CHANERR.SRC_ADDR);
      const sBytes = this.#bytes;
      const sOff = this.#off;
      if (!this.#dma(dst, size)) return this.#halt(CHANERR.DEST_ADDR);
      copyRange(this.#bytes, this.#off, sBytes, sOff, size);
      this.#stats[STAT.BYTES] += size;
    } else if (op === OP.FILL && this.#fill) {
      if (size === 0 || size > this.#max) return this.#halt(CHANERR.DESCRIPTOR_LENGTH);
      if (!this.#dma(dst, size)) return this.#halt(CHANERR.DEST_ADDR);
      fill(this.#bytes, this.#off, size, lo, hi);
      this.#stats[STAT.BYTES] += size;
    } else {
      return this.#halt(CHANERR.DESCRIPTOR_CONTROL);
    }
    this.#stats[STAT.DESCRIPTORS]++;
    this.#lastCompleted = addr;
    this.#next = next;
    this.#count = (this.#count + 1) & 0xffff;
    if ((ctl & CTL.COMPLETION_UPDATE) !== 0) {
      const st = this.#count === target ? CHANSTS.IDLE : CHANSTS.ACTIVE;
      if (!this.#writeCompletion(addr + st)) return this.#halt(CHANERR.COMPLETION_ADDR);
    }
    return true;
  }

  /** The engine stops on an error: CHANERR latches it, CHANSTS says halted. Returns false. */
  #halt(bits: number): false {
    this.#chanerr |= bits;
    this.#bar.write32(REG.CHANERR, this.#chanerr);
    this.#status = CHANSTS.HALTED;
    this.#stats[STAT.HALTS]++;
    this.#publishStatus();
    if ((this.#bar.read16(REG.CHANCTRL) & CHANCTRL.ERR_COMPLETION_EN) !== 0) {
      this.#writeCompletion(this.#lastCompleted + CHANSTS.HALTED);
    }
    return false;
  }

  /** Write the CHANSTS image to the completion address: one 64-bit store. */
  #writeCompletion(value: number): boolean {
    const at = Number(this.#bar.read64(REG.CHANCMP));
    if (at % CHANCMP_ALIGN !== 0 || !this.#dma(at, 8)) return false;
    // An aligned Float64Array element store is one 8-byte store, so the driver never sees half of
    // it. The bits are an IO address below 2^53 plus status: never a NaN, so never rewritten.
    const lo = value % TWO32;
    scratchU32[0] = lo;
    scratchU32[1] = (value - lo) / TWO32;
    this.#doubles[this.#off >>> 3] = scratchF64[0];
    return true;
  }

  #publishStatus(): void {
    this.#bar.write64(REG.CHANSTS, BigInt(this.#lastCompleted + this.#status));
  }
}

const views = new WeakMap<DmaRegion, { words: Uint32Array; doubles: Float64Array }>();
function viewsOf(r: DmaRegion): { words: Uint32Array; doubles: Float64Array } {
  let v = views.get(r);
  if (v === undefined) {
    v = {
      words: new Uint32Array(r.buffer, 0, r.size >>> 2),
      doubles: new Float64Array(r.buffer, 0, r.size >>> 3),
    };
    views.set(r, v);
  }
  return v;
}

const scratchF64 = new Float64Array(1);
const scratchU32 = new Uint32Array(scratchF64.buffer);

/** Fill with an 8-byte little-endian pattern (lo, hi), byte i = pattern byte i % 8. */
function fill(b: Uint8Array, off: number, size: number, lo: number, hi: number): void {
  const b0 = lo & 0xff;
  if (lo === hi && lo === (b0 * 0x01010101) >>> 0) {
    b.fill(b0, off, off + size);
    return;
  }
  const n = Math.min(8, size);
  for (let i = 0; i < n; i++) b[off + i] = i < 4 ? (lo >>> (8 * i)) & 0xff : (hi >>> (8 * (i - 4))) & 0xff;
  for (let done = n; done < size; done *= 2) b.copyWithin(off + done, off, off + Math.min(done, size - done));
}
