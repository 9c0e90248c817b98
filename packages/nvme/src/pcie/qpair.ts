// An NVMe over PCIe queue pair: a submission and a completion queue in DMA memory, doorbells in
// BAR0, polled by its owner thread (SPDK's nvme_pcie_qpair). Commands carry PRPs or SGLs built
// from the IO addresses of the caller's DMA buffers (zero copy); a buffer outside DMA memory is
// bounced through the qpair's own DMA allocator, and counted.
//
// processCompletions reads completion entries by phase tag, runs their callbacks, and then writes
// each doorbell once: the CQ head for everything it consumed, the SQ tail for everything submitted
// since the last poll (SPDK bdev_nvme's delay_cmd_submit). With the shadow doorbell buffer
// (Doorbell Buffer Config) a doorbell is written to memory and rung in MMIO only when the
// controller's EventIdx asks for it.
//
// Everything the controller writes is checked before it is used: a completion for a command ID
// that is not outstanding, or an SQ head beyond the queue, fails the qpair (outstanding commands
// complete with ABORTED - SQ DELETION) and touches nothing else. A controller-wide state word,
// shared by every thread's qpairs, tells a qpair its controller was reset, failed or removed.

import {
  type DmaAddr,
  DmaAllocator,
  DmaRegion,
  type HugepageMode,
  type IoMap,
  MappedRegion,
  type MmioRegion,
} from '@storkit/native';
import {
  AdminOpcode,
  DsmAttribute,
  Fuse,
  GenericStatus,
  IoOpcode,
  makeStatus,
  Sct,
} from '@storkit/nvme-spec';

import {
  type CommandSpec,
  type Completion,
  type HostQpair,
  HostQpairError,
  type QpairStats,
  STATUS_ABORTED_SQ_DELETION,
} from '../host/qpair.js';
import type { IoQpairGrant } from '../host/transport.js';
import { buildPrps, buildSgl, ioAt, type ListArea, SglSupport } from './data-pointer.js';
import { CQE_BYTES, type QueueLayout, SQE_BYTES } from './queue-memory.js';

/** Controller state words shared by every qpair of a controller (in a native shared region). */
export const CtrlState = {
  /** Incremented by each reset, failure or removal: a qpair of an older epoch is dead. */
  EPOCH: 0,
  /** Nonzero once the controller failed or was removed for good. */
  FAILED: 1,
  WORDS: 2,
} as const;

/** What a PCIe qpair reaches: BAR0 for doorbells, DMA mapping for buffers. */
export interface PcieDeviceAccess {
  bar(index: number): MmioRegion;
  dmaMap(region: DmaRegion): IoMap;
}

/** Shadow doorbells (Doorbell Buffer Config): one region, two pages. */
export interface ShadowDoorbells {
  region: DmaRegion;
  /** Offsets of the shadow doorbell page and the EventIdx page in the region. */
  dbOffset: number;
  eiOffset: number;
}

export interface PcieQpairSetup {
  qid: number;
  /** Commands outstanding at most (the queues have one entry more). */
  depth: number;
  device: PcieDeviceAccess;
  queues: DmaRegion;
  layout: QueueLayout;
  dstrd: number;
  shadow: ShadowDoorbells | null;
  /** Controller state words, and the epoch this qpair belongs to. */
  state: Int32Array;
  epoch: number;
  /** SGL support of the controller (None for the admin queue: admin commands use PRPs). */
  sgl: SglSupport;
  maxTransfer: number;
  timeoutMs: number;
  /** Ring the SQ tail doorbell from processCompletions rather than at each submit. */
  delayDoorbell: boolean;
  /** DMA memory of the qpair's own (bounce buffers): uio needs hugepages. */
  hugepages: HugepageMode;
  /** Let go of what the setup attached (queue and shadow views, BAR views), when the qpair is done with it. */
  release?: () => void;
  /** The submission queue lives in the Controller Memory Buffer: this BAR, from this offset. */
  sqCmb?: { bar: MmioRegion; offset: number } | null;
  /** The IO pages of a BAR holding the Controller Memory Buffer, for data buffers there (else null). */
  cmbOf?: ((r: MappedRegion) => IoMap | null) | null;
}

/** What the grant of a PCIe I/O qpair carries: plain JSON (handles of shared memory), posted to its owner. */
export interface PcieQpairGrant extends IoQpairGrant {
  trtype: 'PCIe';
  address: string;
  /** What `attachPciDevice` needs in the owner's thread. */
  device: import('@storkit/native').PciDeviceShare;
  /** Handle of the queue memory region and its layout. */
  queues: number;
  layout: QueueLayout;
  dstrd: number;
  shadow: { region: number; dbOffset: number; eiOffset: number } | null;
  /** Handle of the controller state words' region. */
  state: number;
  sgl: SglSupport;
  delayDoorbell: boolean;
  /** The Controller Memory Buffer's BAR and that BAR's IO address, when the controller has one in use. */
  cmb: { bir: number; barIo: number } | null;
  /** Offset in that BAR of this queue's SQ when it is in the CMB (else null: in `queues`). */
  sqCmbOffset: number | null;
}

export interface PcieQpairStats extends QpairStats {
  /** Commands whose buffer was not DMA memory, copied through the qpair's own. */
  bounced: number;
  /** Commands split at MDTS or a namespace boundary (counted once per caller request). */
  split: number;
  /** MMIO doorbell writes, and doorbell updates the shadow buffer spared. */
  doorbells: number;
  shadowSkipped: number;
}

const TWO32 = 0x1_0000_0000;
const NO_BOUNCE = -1;
// Split records: a caller request carried by several commands (MDTS, boundaries, fused pairs).
const MODE_SPLIT = 0;
const MODE_FUSED = 1;

export class PcieQpair implements HostQpair {
  readonly qid: number;
  readonly depth: number;
  readonly needsEventLoop = false;
  readonly stats: PcieQpairStats = {
    submitted: 0,
    completed: 0,
    bounced: 0,
    split: 0,
    doorbells: 0,
    shadowSkipped: 0,
  };
  onTimeout: ((qp: HostQpair, cid: number, opcode: number) => void) | null = null;
  onFailure: ((qp: HostQpair, err: Error) => void) | null = null;

  #s: PcieQpairSetup;
  #bar!: MmioRegion;
  #sq!: DataView;
  #sq32!: Uint32Array;
  /** All of the queue region (the per-slot list areas live there). */
  #qdv!: DataView;
  #cq!: Uint32Array;
  // Hot copies of the setup's fields.
  #sgl: SglSupport = SglSupport.None;
  #delay = true;
  #maxTransfer = 0;
  #listOffset = 0;
  #listBytes = 0;
  #list!: ListArea;
  #queueMap!: IoMap;
  #entries = 0;
  #sqTail = 0;
  #sqRung = 0;
  #cqHead = 0;
  #phase = 1;
  #sqDb = 0;
  #cqDb = 0;
  /** Word indexes of this queue's shadow doorbells (same stride as the MMIO ones). */
  #sqShadow = 0;
  #cqShadow = 0;
  #shadowDb: Uint32Array | null = null;
  #shadowEi: Uint32Array | null = null;
  #connected = false;
  #failed: Error | null = null;
  #outstanding = 0;
  #lastCid = -1;
  #boundaries = new Map<number, number>();

  // Per slot (command ID = slot).
  readonly #free: Int32Array;
  #freeTop = 0;
  readonly #busy: Uint8Array;
  readonly #opcode: Uint8Array;
  readonly #cb: (Completion<unknown> | null)[];
  readonly #ctx: unknown[];
  readonly #deadline: Float64Array;
  readonly #bounce: Float64Array;
  readonly #bounceUser: (Uint8Array | null)[];
  readonly #bounceIn: Uint8Array;
  // Split records.
  readonly #spFree: Int32Array;
  #spTop = 0;
  readonly #spLeft: Int32Array;
  readonly #spStatus: Int32Array;
  readonly #spFirst: Int32Array;
  readonly #spMode: Uint8Array;
  readonly #spCb: (Completion<unknown> | null)[];
  readonly #spCtx: unknown[];
  readonly #spDw0: Float64Array;

  // One-entry cache from a caller's ArrayBuffer to its IO map: most I/O uses one region.
  #lastBuf: ArrayBufferLike | null = null;
  #lastMap: IoMap | null = null;
  #maps = new WeakMap<MappedRegion, IoMap>();
  #bounceAlloc: DmaAllocator | null = null;
  #lastScan = 0;

  constructor(s: PcieQpairSetup) {
    this.#s = s;
    this.qid = s.qid;
    this.depth = s.depth;
    const d = s.depth;
    this.#free = new Int32Array(d);
    this.#busy = new Uint8Array(d);
    this.#opcode = new Uint8Array(d);
    this.#cb = new Array(d).fill(null);
    this.#ctx = new Array(d).fill(undefined);
    this.#deadline = new Float64Array(d);
    this.#bounce = new Float64Array(d).fill(NO_BOUNCE);
    this.#bounceUser = new Array(d).fill(null);
    this.#bounceIn = new Uint8Array(d);
    this.#spFree = new Int32Array(d);
    this.#spLeft = new Int32Array(d);
    this.#spStatus = new Int32Array(d);
    this.#spFirst = new Int32Array(d);
    this.#spMode = new Uint8Array(d);
    this.#spCb = new Array(d).fill(null);
    this.#spCtx = new Array(d).fill(undefined);
    this.#spDw0 = new Float64Array(d);
    this.#attach(s);
  }

  #attach(s: PcieQpairSetup): void {
    this.#s = s;
    this.#bar = s.device.bar(0);
    const q = s.queues;
    const L = s.layout;
    this.#entries = L.entries;
    // The SQ in the Controller Memory Buffer: entries are written straight into the BAR.
    const sqBuf = s.sqCmb ? s.sqCmb.bar.buffer : q.buffer;
    const sqAt = s.sqCmb ? s.sqCmb.offset : L.sqOffset;
    this.#sq = new DataView(sqBuf, sqAt, L.entries * SQE_BYTES);
    this.#sq32 = new Uint32Array(sqBuf, sqAt, (L.entries * SQE_BYTES) / 4);
    this.#sgl = s.sgl;
    this.#delay = s.delayDoorbell;
    this.#maxTransfer = s.maxTransfer;
    this.#listOffset = L.listOffset;
    this.#listBytes = L.listBytes;
    this.#cq = new Uint32Array(q.buffer, L.cqOffset, (L.entries * CQE_BYTES) / 4);
    this.#cq.fill(0);
    this.#queueMap = s.device.dmaMap(q);
    this.#list = { u32: new Uint32Array(q.buffer), off: 0, bytes: L.listBytes, map: this.#queueMap };
    this.#qdv = new DataView(q.buffer);
    const stride = 4 << s.dstrd;
    this.#sqDb = 0x1000 + 2 * s.qid * stride;
    this.#cqDb = this.#sqDb + stride;
    this.#sqShadow = 2 * s.qid * (1 << s.dstrd);
    this.#cqShadow = this.#sqShadow + (1 << s.dstrd);
    if (s.shadow !== null) {
      const b = s.shadow.region.buffer;
      this.#shadowDb = new Uint32Array(b, s.shadow.dbOffset, 1024);
      this.#shadowEi = new Uint32Array(b, s.shadow.eiOffset, 1024);
    } else {
      this.#shadowDb = null;
      this.#shadowEi = null;
    }
    this.#sqTail = 0;
    this.#sqRung = 0;
    this.#cqHead = 0;
    this.#phase = 1;
    for (let i = 0; i < this.depth; i++) this.#free[i] = this.depth - 1 - i;
    this.#freeTop = this.depth;
    for (let i = 0; i < this.depth; i++) this.#spFree[i] = this.depth - 1 - i;
    this.#spTop = this.depth;
    this.#outstanding = 0;
    this.#connected = true;
    this.#failed = null;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get failed(): Error | null {
    return this.#failed;
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  /** Whether the submission queue is in the Controller Memory Buffer (`pcie.cmbSqs`). */
  get sqInCmb(): boolean {
    return (this.#s.sqCmb ?? null) !== null;
  }

  /** Whether the qpair writes shadow doorbells (Doorbell Buffer Config in force). */
  get shadowDoorbells(): boolean {
    return this.#s.shadow !== null;
  }

  /** The command ID the last submission used (what an Abort names). */
  get lastCommandId(): number {
    return this.#lastCid;
  }

  /** The epoch this qpair's queues belong to. */
  get epoch(): number {
    return this.#s.epoch;
  }

  /**
   * Split I/O of namespace `nsid` so that no command crosses a multiple of `blocks` (the
   * namespace's optimal I/O boundary, NOIOB); 0 removes the boundary.
   */
  setIoBoundary(nsid: number, blocks: number): void {
    if (blocks > 0) this.#boundaries.set(nsid, blocks);
    else this.#boundaries.delete(nsid);
  }

  // ---- submission ----

  read<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Read, nsid, lba, nlb, buf, cb as Completion<unknown>, ctx);
  }

  write<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Write, nsid, lba, nlb, buf, cb as Completion<unknown>, ctx);
  }

  compare<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean {
    return this.#rw(IoOpcode.Compare, nsid, lba, nlb, buf, cb as Completion<unknown>, ctx);
  }

  writeZeroes<C>(nsid: number, lba: number, nlb: number, cb: Completion<C>, ctx: C): boolean {
    if (!this.#connected || this.#freeTop === 0) return false;
    this.#take(IoOpcode.WriteZeroes, nsid, cb as Completion<unknown>, ctx);
    this.#lba(lba, nlb);
    this.#push();
    return true;
  }

  flush<C>(nsid: number, cb: Completion<C>, ctx: C): boolean {
    if (!this.#connected || this.#freeTop === 0) return false;
    this.#take(IoOpcode.Flush, nsid, cb as Completion<unknown>, ctx);
    this.#push();
    return true;
  }

  deallocate<C>(
    nsid: number,
    ranges: readonly (readonly [number, number])[],
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    if (ranges.length === 0 || ranges.length > 256) throw new RangeError('1 to 256 ranges');
    if (!this.#connected || this.#freeTop === 0) return false;
    const bytes = ranges.length * 16;
    const slot = this.#take(IoOpcode.DatasetManagement, nsid, cb as Completion<unknown>, ctx);
    const s = this.#sqTail * SQE_BYTES;
    const sq = this.#sq;
    sq.setUint32(s + 40, ranges.length - 1, true);
    sq.setUint32(s + 44, DsmAttribute.Deallocate, true);
    // The range list goes in the slot's list area when it fits, else through a bounce buffer.
    let dv: DataView;
    let at: number;
    let io: number;
    if (bytes <= this.#listBytes) {
      dv = this.#qdv;
      at = this.#listOffset + slot * this.#listBytes;
      io = ioAt(this.#queueMap, at);
    } else {
      const a = this.#bounceFor(slot, null, bytes, false);
      const region = this.#bounceAlloc!.region(a);
      dv = new DataView(region.buffer);
      at = this.#bounceAlloc!.offsetOf(a);
      io = this.#mapOf(region).pages[0] + at;
    }
    for (let i = 0; i < ranges.length; i++, at += 16) {
      dv.setUint32(at, 0, true);
      dv.setUint32(at + 4, ranges[i][1] >>> 0, true);
      dv.setUint32(at + 8, ranges[i][0] >>> 0, true);
      dv.setUint32(at + 12, Math.floor(ranges[i][0] / TWO32), true);
    }
    sq.setUint32(s + 24, io >>> 0, true);
    sq.setUint32(s + 28, Math.floor(io / TWO32), true);
    this.#push();
    return true;
  }

  compareAndWrite<C>(
    nsid: number,
    lba: number,
    nlb: number,
    expect: Uint8Array,
    data: Uint8Array,
    cb: Completion<C>,
    ctx: C,
  ): boolean {
    if (!this.#connected || this.#freeTop < 2 || this.#spTop === 0) return false;
    const sp = this.#splitRecord(MODE_FUSED, 2, cb as Completion<unknown>, ctx);
    // The two halves sit in adjacent SQ entries and reach the controller under one doorbell.
    this.#one(IoOpcode.Compare, Fuse.First, nsid, lba, nlb, expect, 0, expect.byteLength, this.#child, sp);
    this.#one(
      IoOpcode.Write,
      Fuse.Second,
      nsid,
      lba,
      nlb,
      data,
      0,
      data.byteLength,
      this.#child,
      sp | (1 << 16),
    );
    return true;
  }

  submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean {
    if (!this.#connected || this.#freeTop === 0) return false;
    const slot = this.#take(c.opcode, c.nsid ?? 0, cb as Completion<unknown>, ctx);
    const s = this.#sqTail * SQE_BYTES;
    const sq = this.#sq;
    if (c.fuse) sq.setUint8(s + 1, c.fuse & 3);
    const cdws = [c.cdw10, c.cdw11, c.cdw12, c.cdw13, c.cdw14, c.cdw15];
    for (let i = 0; i < 6; i++)
      if (cdws[i] !== undefined) sq.setUint32(s + 40 + 4 * i, (cdws[i] as number) >>> 0, true);
    if (c.buf !== undefined && c.buf.byteLength > 0) {
      if (!this.#data(slot, s >> 2, c.buf, 0, c.buf.byteLength, (c.dir ?? 2) === 2)) {
        this.#release(slot);
        throw new HostQpairError('EPROTO', 'buffer cannot be described by PRPs or SGLs');
      }
    }
    c.fill?.(sq, s);
    this.#push();
    return true;
  }

  #rw(
    op: number,
    nsid: number,
    lba: number,
    nlb: number,
    buf: Uint8Array,
    cb: Completion<unknown>,
    ctx: unknown,
  ): boolean {
    if (!this.#connected || this.#freeTop === 0) return false;
    const bytes = buf.byteLength;
    const bs = bytes / nlb;
    const boundary = this.#boundaries.size > 0 ? (this.#boundaries.get(nsid) ?? 0) : 0;
    if (
      bytes > this.#maxTransfer ||
      (boundary > 0 && Math.floor(lba / boundary) !== Math.floor((lba + nlb - 1) / boundary))
    ) {
      return this.#split(op, nsid, lba, nlb, buf, bs, boundary, cb, ctx);
    }
    this.#one(op, 0, nsid, lba, nlb, buf, 0, bytes, cb, ctx);
    return true;
  }

  /** Carry one request by several commands, each within MDTS and the namespace boundary. */
  #split(
    op: number,
    nsid: number,
    lba: number,
    nlb: number,
    buf: Uint8Array,
    bs: number,
    boundary: number,
    cb: Completion<unknown>,
    ctx: unknown,
  ): boolean {
    const maxBlocks = Math.max(1, Math.floor(this.#maxTransfer / bs));
    let n = 0;
    for (let l = lba, end = lba + nlb; l < end; n++) l += this.#piece(l, end, maxBlocks, boundary);
    if (n > this.#freeTop || this.#spTop === 0) return false;
    const sp = this.#splitRecord(MODE_SPLIT, n, cb, ctx);
    this.stats.split++;
    for (let l = lba, end = lba + nlb; l < end; ) {
      const k = this.#piece(l, end, maxBlocks, boundary);
      this.#one(op, 0, nsid, l, k, buf, (l - lba) * bs, k * bs, this.#child, sp);
      l += k;
    }
    return true;
  }

  #piece(l: number, end: number, maxBlocks: number, boundary: number): number {
    let k = Math.min(end - l, maxBlocks);
    if (boundary > 0) k = Math.min(k, boundary - (l % boundary));
    return k;
  }

  #one(
    op: number,
    fuse: number,
    nsid: number,
    lba: number,
    nlb: number,
    buf: Uint8Array,
    off: number,
    len: number,
    cb: Completion<unknown>,
    ctx: unknown,
  ): void {
    const slot = this.#take(op, nsid, cb, ctx);
    const w = this.#sqTail << 4;
    const sq = this.#sq32;
    if (fuse) sq[w] = (sq[w] | (fuse << 8)) >>> 0;
    sq[w + 10] = lba >>> 0;
    sq[w + 11] = (lba / TWO32) >>> 0;
    sq[w + 12] = (nlb - 1) & 0xffff;
    if (!this.#data(slot, w, buf, off, len, op === IoOpcode.Read)) {
      this.#release(slot);
      throw new HostQpairError('EPROTO', 'buffer cannot be described by PRPs or SGLs');
    }
    this.#push();
  }

  #lba(lba: number, nlb: number): void {
    const w = this.#sqTail << 4;
    const sq = this.#sq32;
    sq[w + 10] = lba >>> 0;
    sq[w + 11] = (lba / TWO32) >>> 0;
    sq[w + 12] = (nlb - 1) & 0xffff;
  }

  /** Take a free slot and start the SQE at the tail (zeroed, opcode, CID, NSID). */
  #take(op: number, nsid: number, cb: Completion<unknown>, ctx: unknown): number {
    const slot = this.#free[--this.#freeTop];
    this.#lastCid = slot;
    this.#busy[slot] = 1;
    this.#opcode[slot] = op;
    this.#cb[slot] = cb;
    this.#ctx[slot] = ctx;
    // An Asynchronous Event Request waits for an event, however long: it never times out.
    this.#deadline[slot] =
      this.#s.timeoutMs > 0 && !(this.qid === 0 && op === AdminOpcode.AsyncEventRequest)
        ? performance.now() + this.#s.timeoutMs
        : 0;
    // The whole entry, dword by dword: header, NSID, then zeroes the command fills in.
    const w = this.#sqTail << 4;
    const sq = this.#sq32;
    sq[w] = (op | (slot << 16)) >>> 0;
    sq[w + 1] = nsid >>> 0;
    for (let i = 2; i < 16; i++) sq[w + i] = 0;
    this.#outstanding++;
    return slot;
  }

  #release(slot: number): void {
    this.#busy[slot] = 0;
    this.#cb[slot] = null;
    this.#ctx[slot] = undefined;
    if (this.#bounce[slot] !== NO_BOUNCE) {
      this.#bounceAlloc?.free(this.#bounce[slot] as DmaAddr);
      this.#bounce[slot] = NO_BOUNCE;
      this.#bounceUser[slot] = null;
    }
    this.#free[this.#freeTop++] = slot;
    this.#outstanding--;
  }

  /** The SQE at the tail is complete: move the tail, and ring now unless doorbells are batched. */
  #push(): void {
    this.#sqTail = this.#sqTail + 1 === this.#entries ? 0 : this.#sqTail + 1;
    this.stats.submitted++;
    if (!this.#delay) this.#ringSq();
  }

  /** The data pointer for `len` bytes at `off` of `buf` (SQE at dword `w`); false when nothing can describe it. */
  #data(slot: number, w: number, buf: Uint8Array, off: number, len: number, toHost: boolean): boolean {
    let map: IoMap;
    let base: number;
    const ab = buf.buffer;
    if (ab === this.#lastBuf) {
      map = this.#lastMap as IoMap;
      base = buf.byteOffset + off;
    } else {
      const r = MappedRegion.of(buf);
      const cmb = r !== undefined && !(r instanceof DmaRegion) ? (this.#s.cmbOf?.(r) ?? null) : null;
      if (r instanceof DmaRegion) {
        map = this.#mapOf(r);
        this.#lastBuf = ab;
        this.#lastMap = map;
        base = buf.byteOffset + off;
      } else if (cmb !== null) {
        // The Controller Memory Buffer (mapCmb): the controller's own memory, by its IO address.
        map = cmb;
        this.#lastBuf = ab;
        this.#lastMap = map;
        base = buf.byteOffset + off;
      } else {
        // Not DMA memory: through a bounce buffer of the qpair's own.
        const a = this.#bounceFor(slot, buf.subarray(off, off + len), len, toHost);
        const region = this.#bounceAlloc!.region(a);
        map = this.#mapOf(region);
        base = this.#bounceAlloc!.offsetOf(a);
      }
    }
    const list = this.#list;
    list.off = this.#listOffset + slot * this.#listBytes;
    if (this.#sgl !== SglSupport.None && buildSgl(this.#sq32, w, map, base, len, list, this.#sgl))
      return true;
    return buildPrps(this.#sq32, w, map, base, len, list);
  }

  #mapOf(r: DmaRegion): IoMap {
    let m = this.#maps.get(r);
    if (m === undefined) {
      m = this.#s.device.dmaMap(r);
      this.#maps.set(r, m);
    }
    return m;
  }

  #bounceFor(slot: number, user: Uint8Array | null, len: number, toHost: boolean): DmaAddr {
    this.#bounceAlloc ??= new DmaAllocator({
      regionSize: 2 * 1024 * 1024,
      minBlock: 512,
      hugepages: this.#s.hugepages,
    });
    const a = this.#bounceAlloc.malloc(len, 4096);
    this.#bounce[slot] = a;
    this.#bounceUser[slot] = user;
    this.#bounceIn[slot] = toHost ? 1 : 0;
    if (user !== null && !toHost) this.#bounceAlloc.bytes(a, len).set(user);
    if (user !== null) this.stats.bounced++;
    return a;
  }

  #splitRecord(mode: number, parts: number, cb: Completion<unknown>, ctx: unknown): number {
    const sp = this.#spFree[--this.#spTop];
    this.#spMode[sp] = mode;
    this.#spLeft[sp] = parts;
    this.#spStatus[sp] = 0;
    this.#spFirst[sp] = -1;
    this.#spDw0[sp] = 0;
    this.#spCb[sp] = cb;
    this.#spCtx[sp] = ctx;
    return sp;
  }

  // One command of a split request or fused pair completed; ctx = record | child index << 16.
  readonly #child = (ctx: unknown, status: number, dw0: number): void => {
    const c = ctx as number;
    const i = c & 0xffff;
    if (this.#spMode[i] === MODE_FUSED) {
      if (c >>> 16 === 0) this.#spFirst[i] = status;
      else this.#spStatus[i] = status;
    } else if (status !== 0 && this.#spStatus[i] === 0) {
      this.#spStatus[i] = status;
    }
    this.#spDw0[i] = dw0;
    if (--this.#spLeft[i] > 0) return;
    // Fused: the compare's status when it failed, else the write's. Split: the first failure.
    const st =
      this.#spMode[i] === MODE_FUSED && this.#spFirst[i] !== 0 ? this.#spFirst[i] : this.#spStatus[i];
    const cb = this.#spCb[i] as Completion<unknown>;
    const cctx = this.#spCtx[i];
    this.#spCb[i] = null;
    this.#spCtx[i] = undefined;
    this.#spFree[this.#spTop++] = i;
    cb(cctx, st, this.#spDw0[i], 0);
  };

  // ---- doorbells ----

  #ringSq(): void {
    const tail = this.#sqTail;
    if (tail === this.#sqRung) return;
    const old = this.#sqRung;
    this.#sqRung = tail;
    this.#doorbell(this.#sqShadow, this.#sqDb, tail, old);
  }

  #doorbell(index: number, mmio: number, value: number, old: number): void {
    const db = this.#shadowDb;
    if (db !== null) {
      // Shadow doorbell: store, fence, then ring only if the controller's EventIdx lies in
      // (old, value] (NVMe Base 2.0 §5.8, the Linux and SPDK rule).
      Atomics.store(db, index, value);
      const ei = Atomics.load(this.#shadowEi as Uint32Array, index);
      if (((value - ei - 1) & 0xffff) >= ((value - old) & 0xffff)) {
        this.stats.shadowSkipped++;
        return;
      }
    }
    this.#bar.doorbell32(mmio, value);
    this.stats.doorbells++;
  }

  // ---- completion ----

  processCompletions(max = 0): number {
    if (!this.#connected) return 0;
    const cq = this.#cq;
    const entries = this.#entries;
    // Bounded by the queue size whatever `max` says: a controller cannot keep us here.
    const limit = max > 0 && max < entries ? max : entries;
    let head = this.#cqHead;
    let phase = this.#phase;
    let n = 0;
    while (n < limit) {
      const w = head << 2;
      const dw3 = cq[w + 3];
      if (((dw3 >>> 16) & 1) !== phase) break;
      const cid = dw3 & 0xffff;
      const sqhd = cq[w + 2] & 0xffff;
      if (cid >= this.depth || this.#busy[cid] === 0 || sqhd >= entries) {
        this.#cqHead = head;
        this.#phase = phase;
        this.#fail(
          new HostQpairError(
            'EPROTO',
            `qpair ${this.qid}: completion for ${cid >= this.depth || this.#busy[cid] === 0 ? `unknown command ID ${cid}` : `SQ head ${sqhd} beyond ${entries} entries`}`,
          ),
        );
        return n;
      }
      head = head + 1 === entries ? 0 : head + 1;
      if (head === 0) phase ^= 1;
      n++;
      this.#complete(cid, (dw3 >>> 17) & 0x7fff, cq[w], cq[w + 1]);
      if (!this.#connected) return n;
    }
    if (n > 0) {
      const old = this.#cqHead;
      this.#cqHead = head;
      this.#phase = phase;
      this.stats.completed += n;
      this.#doorbell(this.#cqShadow, this.#cqDb, head, old);
    }
    this.#ringSq();
    if (n === 0 && this.#outstanding > 0) this.#idleChecks();
    return n;
  }

  #complete(cid: number, status: number, dw0: number, dw1: number): void {
    const cb = this.#cb[cid] as Completion<unknown>;
    const ctx = this.#ctx[cid];
    const b = this.#bounce[cid];
    if (b !== NO_BOUNCE && this.#bounceIn[cid] === 1 && status === 0) {
      const user = this.#bounceUser[cid];
      if (user !== null) user.set(this.#bounceAlloc!.bytes(b as DmaAddr, user.byteLength));
    }
    this.#release(cid);
    cb(ctx, status, dw0, dw1);
  }

  /** Nothing completed: has the controller gone away under us, or has a command timed out? */
  #idleChecks(): void {
    const st = this.#s.state;
    if (st[CtrlState.EPOCH] !== this.#s.epoch || st[CtrlState.FAILED] !== 0) {
      this.#fail(
        new HostQpairError(
          'ENOTCONN',
          `qpair ${this.qid}: the controller was ${st[CtrlState.FAILED] !== 0 ? 'removed or failed' : 'reset'}`,
        ),
      );
      return;
    }
    if (this.#s.timeoutMs > 0) {
      const now = performance.now();
      if (now - this.#lastScan < 10) return;
      this.#lastScan = now;
      for (let i = 0; i < this.depth; i++) {
        if (this.#busy[i] === 1 && this.#deadline[i] !== 0 && now > this.#deadline[i]) {
          this.#deadline[i] = 0;
          this.onTimeout?.(this, i, this.#opcode[i]);
        }
      }
    }
  }

  /** Complete every outstanding command with ABORTED - SQ DELETION (never acknowledged). */
  #abortAll(): void {
    for (let i = 0; i < this.depth; i++) {
      if (this.#busy[i] === 1) this.#complete(i, STATUS_ABORTED_SQ_DELETION, 0, 0);
    }
  }

  #fail(err: Error): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#failed = err;
    this.#abortAll();
    this.onFailure?.(this, err);
  }

  /** Fail the qpair now (the controller was removed or reset under it). */
  failNow(err: Error): void {
    this.#fail(err);
  }

  /**
   * The command ID of an outstanding command submitted with `ctx` (for a bdev abort), or -1. A
   * request split into several commands (MDTS, boundaries, fused pairs) answers with one of its
   * outstanding pieces: aborting it fails the whole request, which completes once.
   */
  cidOf(ctx: unknown): number {
    for (let i = 0; i < this.depth; i++) {
      if (this.#busy[i] === 0) continue;
      if (this.#cb[i] === this.#child) {
        if (this.#spCtx[(this.#ctx[i] as number) & 0xffff] === ctx) return i;
      } else if (this.#ctx[i] === ctx) {
        return i;
      }
    }
    return -1;
  }

  /** Whether `cid` is outstanding (for the controller's abort path). */
  isOutstanding(cid: number): boolean {
    return cid < this.depth && this.#busy[cid] === 1;
  }

  #shutdown(): void {
    if (this.#connected) {
      this.#connected = false;
      this.#failed = new HostQpairError('ENOTCONN', `qpair ${this.qid} closed`);
      this.#abortAll();
    }
    this.#bounceAlloc?.close();
    this.#bounceAlloc = null;
    this.#lastBuf = null;
    this.#lastMap = null;
    this.#maps = new WeakMap();
  }

  close(): void {
    this.#shutdown();
    const r = this.#s.release;
    this.#s.release = undefined;
    r?.();
  }

  async disconnect(): Promise<void> {
    this.close();
  }

  /** How `reconnect` turns a grant into queues (set by the transport that opened the qpair). */
  setupFrom: ((grant: IoQpairGrant) => PcieQpairSetup) | null = null;

  async reconnect(grant: IoQpairGrant): Promise<void> {
    if (this.setupFrom === null)
      throw new HostQpairError('ECONNREFUSED', `qpair ${this.qid} cannot reconnect`);
    this.reopen(this.setupFrom(grant));
  }

  /** Re-open on new queues (after a controller reset); what the old setup attached is released. */
  reopen(setup: PcieQpairSetup): void {
    this.#shutdown();
    const r = this.#s.release;
    if (r !== setup.release) {
      this.#s.release = undefined;
      r?.();
    }
    this.#attach(setup);
  }

  /** The setup the qpair runs on (its queues, device and controller state). */
  get setup(): PcieQpairSetup {
    return this.#s;
  }
}

/** An opcode's name for messages. */
export function opcodeName(qid: number, op: number): string {
  const table: Record<string, number> = qid === 0 ? AdminOpcode : IoOpcode;
  return Object.entries(table).find(([, v]) => v === op)?.[0] ?? `0x${op.toString(16)}`;
}

export const STATUS_INVALID_FIELD = makeStatus(Sct.Generic, GenericStatus.InvalidField);
