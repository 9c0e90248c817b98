// A software NVMe controller behind a PCI function model: registers and doorbells in BAR0 (shared
// memory), queues and data in the driver's DMA regions, reached by IO address through the model's
// IOMMU. It implements what storkit's PCIe driver uses, from the spec (NVMe Base 2.0): controller
// enable/disable/shutdown and function-level reset, admin and I/O queues, PRPs (lists, chained
// lists) and SGLs (data blocks, segments), the shadow doorbell buffer, identify, features, log
// pages, abort, asynchronous events, and the NVM commands (read, write, compare, fused
// compare-and-write, write zeroes, dataset management, flush) on RAM namespaces or null ones
// (no data moved: a controller that costs nearly nothing, for measuring the driver).
//
// It polls, like a device's firmware: `poll()` runs everything that is due once. QEMU's
// controller remains the judge of the driver; this one is for fast tests and the benchmark, and
// it can misbehave on purpose (bad completions, fatal status, removal, stalled commands).

import type { PciFunctionModel } from '@storkit/native';
import {
  AdminOpcode,
  CC,
  Cns,
  CommandSpecificStatus,
  CSTS,
  encodeCap,
  encodeFirmwareSlotLog,
  encodeHealthLog,
  encodeIdentifyController,
  encodeIdentifyNamespace,
  encodeNamespaceDescriptors,
  encodeNamespaceList,
  Feature,
  Fuse,
  GenericStatus,
  getLogPageFields,
  IDENTIFY_SIZE,
  IoOpcode,
  LogPage,
  MediaStatus,
  makeStatus,
  Oacs,
  Oncs,
  Reg,
  Sct,
} from '@storkit/nvme-spec';

export interface NvmeModelNamespace {
  nsid: number;
  blockSize: number;
  blocks: number;
  /** No data is kept or moved: reads return whatever the buffer held (the benchmark's null device). */
  null?: boolean;
  /** Namespace Optimal I/O Boundary in blocks (0: none). */
  noiob?: number;
}

export interface NvmeModelOptions {
  namespaces: readonly NvmeModelNamespace[];
  /** CAP.MQES + 1 (default 1024). */
  maxQueueEntries?: number;
  /** CAP.DSTRD (default 0). */
  dstrd?: number;
  /** MDTS as a power of two of 4 KiB pages (default 5: 128 KiB). */
  mdts?: number;
  /** Identify SGLS (default 1: SGLs supported, any alignment; 0: none). */
  sgls?: number;
  /** Offer the Doorbell Buffer Config command (default true). */
  doorbellBuffer?: boolean;
  /**
   * With shadow doorbells, where the EventIdx is kept: 'lag' (the last value seen, so each new
   * submission rings MMIO, as QEMU does) or 'ahead' (far ahead: a polling device needs no MMIO).
   */
  eventIdx?: 'lag' | 'ahead';
  /** I/O queue pairs allowed (default 64). */
  maxIoQueues?: number;
  serialNumber?: string;
  modelNumber?: string;
}

/** Ways to misbehave on purpose, for the driver's bad-input tests. */
export type NvmeModelFault =
  /** The next completion names a command ID nothing sent. */
  | 'unknown-cid'
  /** The next completion reports an SQ head beyond the queue. */
  | 'sq-head-out-of-range'
  /** A completion entry appears with the right phase although no command completed. */
  | 'phantom-completion'
  /** CSTS.CFS set. */
  | 'fatal'
  /** Hold the next I/O command without completing it (until aborted or reset). */
  | 'stall';

export const MODEL_VENDOR = 0x5354;
export const MODEL_DEVICE = 0x0001;
export const MODEL_BAR0_SIZE = 16384;

const TWO32 = 0x1_0000_0000;
const PAGE = 4096;
const ok = 0;
const st = (sc: number): number => makeStatus(Sct.Generic, sc);
const cs = (sc: number): number => makeStatus(Sct.CommandSpecific, sc);
const S = {
  invalidOpcode: st(GenericStatus.InvalidOpcode),
  invalidField: st(GenericStatus.InvalidField),
  dataTransfer: st(GenericStatus.DataTransferError),
  abortedByRequest: st(GenericStatus.AbortedByRequest),
  abortedFailedFused: st(GenericStatus.AbortedFailedFused),
  abortedMissingFused: st(GenericStatus.AbortedMissingFused),
  invalidNs: st(GenericStatus.InvalidNamespaceOrFormat),
  sglSegment: st(GenericStatus.InvalidSglSegmentDescriptor),
  sglLength: st(GenericStatus.DataSglLengthInvalid),
  sglType: st(GenericStatus.SglDescriptorTypeInvalid),
  prpOffset: st(GenericStatus.InvalidPrpOffset),
  lbaRange: st(GenericStatus.LbaOutOfRange),
  invalidQid: cs(CommandSpecificStatus.InvalidQueueIdentifier),
  invalidQsize: cs(CommandSpecificStatus.InvalidQueueSize),
  invalidLog: cs(CommandSpecificStatus.InvalidLogPage),
  compare: makeStatus(Sct.Media, MediaStatus.CompareFailure),
} as const;

interface Cq {
  qid: number;
  io: number;
  size: number;
  u32: Uint32Array;
  /** Word index of entry 0 in u32. */
  base: number;
  tail: number;
  phase: number;
}

interface Sq {
  qid: number;
  io: number;
  size: number;
  dv: DataView;
  base: number;
  head: number;
  cq: Cq;
}

interface Ns extends NvmeModelNamespace {
  data: Uint8Array | null;
}

interface Held {
  sq: Sq;
  cid: number;
}

export interface NvmeModelStats {
  commands: number;
  readCommands: number;
  writeCommands: number;
  bytesRead: number;
  bytesWritten: number;
  mmioDoorbellsSeen: number;
}

export class NvmeControllerModel {
  readonly fn: PciFunctionModel;
  readonly o: Required<Omit<NvmeModelOptions, 'namespaces'>>;
  readonly stats: NvmeModelStats = {
    commands: 0,
    readCommands: 0,
    writeCommands: 0,
    bytesRead: 0,
    bytesWritten: 0,
    mmioDoorbellsSeen: 0,
  };
  readonly #bar: Uint32Array;
  readonly #ns = new Map<number, Ns>();
  #cc = 0;
  #sqs: (Sq | undefined)[] = [];
  #cqs: (Cq | undefined)[] = [];
  #features = new Map<number, number>();
  #aers: Held[] = [];
  #held: Held[] = [];
  #shadow: { db: Uint32Array; dbBase: number; ei: Uint32Array; eiBase: number } | null = null;
  #faults: NvmeModelFault[] = [];
  // Scratch for admin data (identify, log pages) and DSM ranges.
  readonly #scratch = new Uint8Array(IDENTIFY_SIZE * 4);
  // Where the last `#mem` lookup landed.
  #mu8: Uint8Array = new Uint8Array(0);
  #moff = 0;
  #mdv: DataView = new DataView(new ArrayBuffer(8));
  readonly #dvs = new WeakMap<ArrayBufferLike, DataView>();

  constructor(fn: PciFunctionModel, options: NvmeModelOptions) {
    this.fn = fn;
    this.o = {
      maxQueueEntries: options.maxQueueEntries ?? 1024,
      dstrd: options.dstrd ?? 0,
      mdts: options.mdts ?? 5,
      sgls: options.sgls ?? 1,
      doorbellBuffer: options.doorbellBuffer ?? true,
      eventIdx: options.eventIdx ?? 'lag',
      maxIoQueues: options.maxIoQueues ?? 64,
      serialNumber: options.serialNumber ?? 'STORKITMODEL0001',
      modelNumber: options.modelNumber ?? 'storkit NVMe model',
    };
    for (const n of options.namespaces) {
      this.#ns.set(n.nsid, { ...n, data: n.null ? null : new Uint8Array(n.blocks * n.blockSize) });
    }
    this.#bar = new Uint32Array(fn.bar(0).buffer);
    this.#powerOn();
  }

  /** Namespace `nsid`'s bytes (tests read what the driver wrote). */
  media(nsid: number): Uint8Array | null {
    return this.#ns.get(nsid)?.data ?? null;
  }

  /** Misbehave once, on purpose (see NvmeModelFault). */
  inject(f: NvmeModelFault): void {
    if (f === 'fatal') Atomics.or(this.#bar, Reg.CSTS >> 2, CSTS.CFS);
    else this.#faults.push(f);
  }

  /** Commands held by a 'stall' fault, not yet completed. */
  get held(): number {
    return this.#held.length;
  }

  #powerOn(): void {
    const cap = encodeCap({
      maxQueueEntries: this.o.maxQueueEntries,
      timeout: 2,
      mpsmin: 0,
      mpsmax: 0,
      dstrd: this.o.dstrd,
    });
    const b = this.#bar;
    b.fill(0, 0, 0x1000 >> 2);
    b[Reg.CAP >> 2] = cap.lo;
    b[(Reg.CAP + 4) >> 2] = cap.hi;
    b[Reg.VS >> 2] = 0x00010400;
    this.#cc = 0;
    Atomics.store(b, Reg.CSTS >> 2, 0);
    this.#dropQueues();
  }

  #dropQueues(): void {
    this.#sqs = [];
    this.#cqs = [];
    this.#aers = [];
    this.#held = [];
    this.#shadow = null;
    this.#features.clear();
    this.#features.set(
      Feature.NumberOfQueues,
      ((this.o.maxIoQueues - 1) | ((this.o.maxIoQueues - 1) << 16)) >>> 0,
    );
    this.#features.set(Feature.VolatileWriteCache, 1);
    // Doorbells read 0 after a reset.
    this.#bar.fill(0, 0x1000 >> 2);
  }

  /** Run everything that is due once; returns commands processed. */
  poll(): number {
    if (this.fn.resetRequested()) {
      this.#powerOn();
      this.fn.resetDone();
      return 0;
    }
    const cc = Atomics.load(this.#bar, Reg.CC >> 2);
    if (cc !== this.#cc) this.#ccChanged(cc);
    if ((this.#cc & CC.EN) === 0) return 0;
    let n = 0;
    for (let q = 0; q < this.#sqs.length; q++) {
      const sq = this.#sqs[q];
      if (sq !== undefined) n += this.#drain(sq);
    }
    return n;
  }

  #ccChanged(cc: number): void {
    const was = this.#cc;
    this.#cc = cc;
    const b = this.#bar;
    if ((cc & CC.EN) !== 0 && (was & CC.EN) === 0) {
      const aqa = b[Reg.AQA >> 2];
      const asq = b[Reg.ASQ >> 2] + b[(Reg.ASQ + 4) >> 2] * TWO32;
      const acq = b[Reg.ACQ >> 2] + b[(Reg.ACQ + 4) >> 2] * TWO32;
      const sqs = (aqa & 0xfff) + 1;
      const cqs = ((aqa >>> 16) & 0xfff) + 1;
      const cq = this.#makeCq(0, acq, cqs);
      const sq = cq !== null ? this.#makeSq(0, asq, sqs, cq) : null;
      if (cq === null || sq === null || CC.iosqes(cc) !== 6 || CC.iocqes(cc) !== 4 || CC.mps(cc) !== 0) {
        Atomics.or(b, Reg.CSTS >> 2, CSTS.CFS);
        return;
      }
      this.#cqs[0] = cq;
      this.#sqs[0] = sq;
      Atomics.or(b, Reg.CSTS >> 2, CSTS.RDY);
    } else if ((cc & CC.EN) === 0 && (was & CC.EN) !== 0) {
      this.#dropQueues();
      Atomics.and(b, Reg.CSTS >> 2, ~(CSTS.RDY | CSTS.CFS | 0xc));
    }
    if (CC.shn(cc) !== 0 && CC.shn(was) === 0) {
      Atomics.store(b, Reg.CSTS >> 2, (b[Reg.CSTS >> 2] & ~0xc) | CSTS.SHST_COMPLETE);
    }
  }

  // ---- memory reached by IO address ----

  /** Point #mu8/#moff at `[io, io+len)` when the driver made it reachable. */
  #mem(io: number, len: number): boolean {
    const r = this.fn.dmaRegion(io, len);
    if (r === null) return false;
    this.#mu8 = r.bytes;
    this.#moff = io % TWO32;
    let dv = this.#dvs.get(r.buffer);
    if (dv === undefined) {
      dv = new DataView(r.buffer);
      this.#dvs.set(r.buffer, dv);
    }
    this.#mdv = dv;
    return true;
  }

  #read64(io: number): number {
    if (!this.#mem(io, 8)) return -1;
    return this.#mdv.getUint32(this.#moff, true) + this.#mdv.getUint32(this.#moff + 4, true) * TWO32;
  }

  #makeCq(qid: number, io: number, size: number): Cq | null {
    if (io % PAGE !== 0 || !this.#mem(io, size * 16)) return null;
    return {
      qid,
      io,
      size,
      u32: new Uint32Array(this.#mu8.buffer),
      base: this.#moff >> 2,
      tail: 0,
      phase: 1,
    };
  }

  #makeSq(qid: number, io: number, size: number, cq: Cq): Sq | null {
    if (io % PAGE !== 0 || !this.#mem(io, size * 64)) return null;
    return { qid, io, size, dv: this.#mdv, base: this.#moff, head: 0, cq };
  }

  // ---- doorbells ----

  #sqTail(sq: Sq): number {
    const sh = this.#shadow;
    if (sh !== null && sq.qid > 0) return Atomics.load(sh.db, sh.dbBase + 2 * sq.qid * (1 << this.o.dstrd));
    return Atomics.load(this.#bar, (0x1000 >> 2) + 2 * sq.qid * (1 << this.o.dstrd));
  }

  #cqHead(cq: Cq): number {
    const sh = this.#shadow;
    if (sh !== null && cq.qid > 0)
      return Atomics.load(sh.db, sh.dbBase + (2 * cq.qid + 1) * (1 << this.o.dstrd));
    return Atomics.load(this.#bar, (0x1000 >> 2) + (2 * cq.qid + 1) * (1 << this.o.dstrd));
  }

  #drain(sq: Sq): number {
    const tail = this.#sqTail(sq);
    if (tail >= sq.size) return 0;
    let n = 0;
    while (sq.head !== tail) {
      if (!this.#cqRoom(sq.cq)) break;
      const s = sq.base + sq.head * 64;
      sq.head = sq.head + 1 === sq.size ? 0 : sq.head + 1;
      this.stats.commands++;
      n++;
      if (sq.qid === 0) this.#admin(sq, s);
      else this.#io(sq, s, tail);
      if ((this.#cc & CC.EN) === 0 || this.#sqs[sq.qid] !== sq) break;
    }
    const sh = this.#shadow;
    if (sh !== null && sq.qid > 0) {
      const idx = sh.eiBase + 2 * sq.qid * (1 << this.o.dstrd);
      Atomics.store(sh.ei, idx, this.o.eventIdx === 'ahead' ? (sq.head + 0x7fff) & 0xffff : sq.head);
    }
    return n;
  }

  #cqRoom(cq: Cq): boolean {
    const head = this.#cqHead(cq);
    return (cq.tail + 1) % cq.size !== head;
  }

  #post(sq: Sq, cid: number, status: number, dw0: number): void {
    const cq = sq.cq;
    let sqhd = sq.head;
    let id = cid;
    const f = this.#faults.length > 0 ? this.#faults[0] : null;
    if (f === 'unknown-cid' || f === 'sq-head-out-of-range') {
      this.#faults.shift();
      if (f === 'unknown-cid') id = (cid + 0x1234) & 0xffff;
      else sqhd = sq.size + 7;
    }
    const w = cq.base + cq.tail * 4;
    const u = cq.u32;
    u[w] = dw0 >>> 0;
    u[w + 1] = 0;
    u[w + 2] = (sqhd | (sq.qid << 16)) >>> 0;
    // The phase bit goes last, with a fence: the entry is whole when the driver sees it.
    Atomics.store(u, w + 3, (id | ((cq.phase | (status << 1)) << 16)) >>> 0);
    cq.tail++;
    if (cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    if (f === 'phantom-completion' && this.#cqRoom(cq)) {
      this.#faults.shift();
      // An entry with the current phase and a stale command ID, for nothing the driver sent.
      const p = cq.base + cq.tail * 4;
      u[p + 2] = (sq.head | (sq.qid << 16)) >>> 0;
      Atomics.store(u, p + 3, (cid | (cq.phase << 16)) >>> 0);
      cq.tail = cq.tail + 1 === cq.size ? 0 : cq.tail + 1;
      if (cq.tail === 0) cq.phase ^= 1;
    }
  }

  // ---- data ----

  /**
   * Move `len` bytes between the command's data pointer and `buf[off..]`: mode 0 to the host
   * (a read), 1 from it (a write), 2 compare (S.compare on a difference). Returns a status.
   */
  #data(sq: Sq, s: number, len: number, buf: Uint8Array | null, off: number, mode: 0 | 1 | 2): number {
    const dv = sq.dv;
    const psdt = (dv.getUint8(s + 1) >>> 6) & 3;
    if (psdt !== 0) {
      if (sq.qid === 0 || this.o.sgls === 0) return S.invalidField;
      return this.#sgl(dv, s + 24, len, buf, off, mode);
    }
    const prp1 = dv.getUint32(s + 24, true) + dv.getUint32(s + 28, true) * TWO32;
    const prp2 = dv.getUint32(s + 32, true) + dv.getUint32(s + 36, true) * TWO32;
    if (prp1 % 4 !== 0) return S.prpOffset;
    const first = Math.min(len, PAGE - (prp1 % PAGE));
    let r = this.#segment(prp1, first, buf, off, mode);
    if (r !== ok) return r;
    let done = first;
    if (done === len) return ok;
    if (len - done <= PAGE) {
      if (prp2 % PAGE !== 0) return S.prpOffset;
      return this.#segment(prp2, len - done, buf, off + done, mode);
    }
    if (prp2 % 8 !== 0) return S.prpOffset;
    let list = prp2;
    // Bounded: one entry per page of the transfer (plus chain pointers).
    for (let guard = 0; done < len && guard < 1 + (len / PAGE) * 2; guard++) {
      const e = this.#read64(list);
      if (e < 0) return S.dataTransfer;
      // The last entry of a list page points to the next list page when more pages follow.
      if ((list + 8) % PAGE === 0 && len - done > PAGE) {
        if (e % 8 !== 0) return S.prpOffset;
        list = e;
        continue;
      }
      if (e % PAGE !== 0) return S.prpOffset;
      const n = Math.min(PAGE, len - done);
      r = this.#segment(e, n, buf, off + done, mode);
      if (r !== ok) return r;
      done += n;
      list += 8;
    }
    return done === len ? ok : S.dataTransfer;
  }

  #sgl(
    dv0: DataView,
    at0: number,
    len: number,
    buf: Uint8Array | null,
    off: number,
    mode: 0 | 1 | 2,
  ): number {
    let dv = dv0;
    let at = at0;
    let count = 1;
    let done = 0;
    // Descriptors walked, bounded so a looping segment chain cannot hold the model.
    for (let guard = 0; guard < 4096; guard++) {
      if (count === 0) break;
      const addr = dv.getUint32(at, true) + dv.getUint32(at + 4, true) * TWO32;
      const n = dv.getUint32(at + 8, true);
      const type = dv.getUint8(at + 15) >>> 4;
      count--;
      at += 16;
      if (type === 0) {
        if (done + n > len) return S.sglLength;
        const r = this.#segment(addr, n, buf, off + done, mode);
        if (r !== ok) return r;
        done += n;
      } else if (type === 2 || type === 3) {
        // A (last) segment: the next descriptors live at addr.
        if (n === 0 || n % 16 !== 0 || (type === 2 && count !== 0)) return S.sglSegment;
        if (!this.#mem(addr, n)) return S.dataTransfer;
        dv = this.#mdv;
        at = this.#moff;
        count = n / 16;
      } else {
        return S.sglType;
      }
    }
    return done === len ? ok : S.sglLength;
  }

  #segment(io: number, n: number, buf: Uint8Array | null, off: number, mode: 0 | 1 | 2): number {
    if (!this.#mem(io, n)) return S.dataTransfer;
    if (buf === null) return ok;
    const host = this.#mu8;
    const h = this.#moff;
    if (mode === 0) host.set(buf.subarray(off, off + n), h);
    else if (mode === 1) buf.set(host.subarray(h, h + n), off);
    else {
      for (let i = 0; i < n; i++) if (host[h + i] !== buf[off + i]) return S.compare;
    }
    return ok;
  }

  // ---- admin ----

  #admin(sq: Sq, s: number): void {
    const dv = sq.dv;
    const op = dv.getUint8(s);
    const cid = dv.getUint16(s + 2, true);
    const nsid = dv.getUint32(s + 4, true);
    const c10 = dv.getUint32(s + 40, true);
    const c11 = dv.getUint32(s + 44, true);
    let status = ok;
    let dw0 = 0;
    switch (op) {
      case AdminOpcode.Identify:
        status = this.#identify(sq, s, c10 & 0xff, nsid);
        break;
      case AdminOpcode.GetLogPage:
        status = this.#logPage(sq, s, c10, c11, dv.getUint32(s + 48, true), dv.getUint32(s + 52, true));
        break;
      case AdminOpcode.SetFeatures:
        [status, dw0] = this.#setFeature(c10 & 0xff, c11);
        break;
      case AdminOpcode.GetFeatures:
        if (this.#features.has(c10 & 0xff)) dw0 = this.#features.get(c10 & 0xff) as number;
        else status = S.invalidField;
        break;
      case AdminOpcode.CreateIoCq:
        status = this.#createCq(dv, s, c10, c11);
        break;
      case AdminOpcode.CreateIoSq:
        status = this.#createSq(dv, s, c10, c11);
        break;
      case AdminOpcode.DeleteIoSq:
        status = this.#deleteSq(c10 & 0xffff);
        break;
      case AdminOpcode.DeleteIoCq:
        status = this.#deleteCq(c10 & 0xffff);
        break;
      case AdminOpcode.Abort:
        dw0 = this.#abort(c10 & 0xffff, c10 >>> 16);
        break;
      case AdminOpcode.AsyncEventRequest:
        if (this.#aers.length >= 4) status = cs(CommandSpecificStatus.AsyncEventRequestLimitExceeded);
        else {
          this.#aers.push({ sq, cid });
          return;
        }
        break;
      case AdminOpcode.DoorbellBufferConfig:
        status = this.#doorbellBuffer(dv, s);
        break;
      default:
        status = S.invalidOpcode;
    }
    this.#post(sq, cid, status, dw0);
  }

  #identify(sq: Sq, s: number, cns: number, nsid: number): number {
    const out = this.#scratch.subarray(0, IDENTIFY_SIZE);
    const ns = this.#ns.get(nsid);
    switch (cns) {
      case Cns.Controller:
        encodeIdentifyController(
          {
            vid: MODEL_VENDOR,
            ssvid: MODEL_VENDOR,
            serialNumber: this.o.serialNumber,
            modelNumber: this.o.modelNumber,
            firmwareRevision: '1.0',
            ieee: 0x525400,
            cmic: 0,
            mdts: this.o.mdts,
            cntlid: 0,
            version: 0x00010400,
            oaes: 1 << 8,
            ctratt: 0,
            cntrltype: 1,
            oacs: this.o.doorbellBuffer ? Oacs.DoorbellBufferConfig : 0,
            abortLimit: 4,
            aerLimit: 4,
            frmw: 3,
            lpa: 2,
            errorLogEntries: 4,
            kas: 0,
            maxcmd: 0,
            nn: Math.max(0, ...this.#ns.keys()),
            oncs: Oncs.Compare | Oncs.Dsm | Oncs.WriteZeroes,
            fuses: 1,
            vwc: 1,
            acwu: 0,
            sgls: this.o.sgls,
            subnqn: `nqn.2016-06.io.storkit:model:${this.o.serialNumber}`,
            ioccsz: 0,
            iorcsz: 0,
            icdoff: 0,
            msdbd: 0,
          },
          out,
        );
        break;
      case Cns.Namespace:
        if (ns === undefined) {
          // An inactive namespace within NN reads as zeroes; beyond NN it is an error.
          if (nsid === 0 || nsid === 0xffffffff) return S.invalidNs;
          out.fill(0);
          break;
        }
        encodeIdentifyNamespace(
          {
            nsze: ns.blocks,
            ncap: ns.blocks,
            nuse: ns.blocks,
            nsfeat: 0,
            blockSize: ns.blockSize,
            nmic: 0,
            dlfeat: 1 | (1 << 3),
            noiob: ns.noiob ?? 0,
            nguid: nguidOf(ns.nsid),
            eui64: new Uint8Array(8),
          },
          out,
        );
        break;
      case Cns.ActiveNamespaceList:
        encodeNamespaceList([...this.#ns.keys()], nsid, out);
        break;
      case Cns.NamespaceDescriptorList:
        if (ns === undefined) return S.invalidNs;
        encodeNamespaceDescriptors({ nguid: nguidOf(ns.nsid) }, out);
        break;
      default:
        return S.invalidField;
    }
    return this.#data(sq, s, IDENTIFY_SIZE, out, 0, 0);
  }

  #logPage(sq: Sq, s: number, c10: number, c11: number, c12: number, c13: number): number {
    const f = getLogPageFields(c10, c11, c12, c13);
    const out = this.#scratch.subarray(0, 4096);
    out.fill(0);
    let size = 0;
    switch (f.lid) {
      case LogPage.Error:
        size = 4 * 64;
        break;
      case LogPage.Health: {
        size = 512;
        const st = this.stats;
        encodeHealthLog(
          {
            criticalWarning: 0,
            temperature: 300,
            availableSpare: 100,
            availableSpareThreshold: 10,
            percentageUsed: 0,
            dataUnitsRead: Math.ceil(st.bytesRead / 512_000),
            dataUnitsWritten: Math.ceil(st.bytesWritten / 512_000),
            hostReadCommands: st.readCommands,
            hostWriteCommands: st.writeCommands,
            powerCycles: 1,
            powerOnHours: 0,
            unsafeShutdowns: 0,
            mediaErrors: 0,
            errorLogEntries: 0,
          },
          out,
        );
        break;
      }
      case LogPage.FirmwareSlot:
        size = 512;
        encodeFirmwareSlotLog('1.0', out);
        break;
      default:
        return S.invalidLog;
    }
    if (f.offset >= size || f.length > 4096) return S.invalidField;
    const n = Math.min(f.length, size - f.offset);
    if (n < f.length) out.fill(0, size, f.length);
    return this.#data(sq, s, f.length, out, f.offset, 0);
  }

  #setFeature(fid: number, value: number): [number, number] {
    switch (fid) {
      case Feature.NumberOfQueues: {
        // Ask for any number; get what the controller has.
        const got = this.#features.get(fid) as number;
        return [ok, got];
      }
      case Feature.Arbitration:
      case Feature.PowerManagement:
      case Feature.TemperatureThreshold:
      case Feature.ErrorRecovery:
      case Feature.VolatileWriteCache:
      case Feature.InterruptCoalescing:
      case Feature.AsyncEventConfig:
        this.#features.set(fid, value >>> 0);
        return [ok, 0];
      default:
        return [S.invalidField, 0];
    }
  }

  #createCq(dv: DataView, s: number, c10: number, c11: number): number {
    const qid = c10 & 0xffff;
    const size = (c10 >>> 16) + 1;
    if (qid === 0 || qid > this.o.maxIoQueues || this.#cqs[qid] !== undefined) return S.invalidQid;
    if (size < 2 || size > this.o.maxQueueEntries) return S.invalidQsize;
    if ((c11 & 1) === 0) return S.invalidField;
    const io = dv.getUint32(s + 24, true) + dv.getUint32(s + 28, true) * TWO32;
    const cq = this.#makeCq(qid, io, size);
    if (cq === null) return S.invalidField;
    this.#cqs[qid] = cq;
    return ok;
  }

  #createSq(dv: DataView, s: number, c10: number, c11: number): number {
    const qid = c10 & 0xffff;
    const size = (c10 >>> 16) + 1;
    const cq = this.#cqs[c11 >>> 16];
    if (qid === 0 || qid > this.o.maxIoQueues || this.#sqs[qid] !== undefined) return S.invalidQid;
    if (cq === undefined || cq.qid === 0) return cs(0x00); // Completion Queue Invalid
    if (size < 2 || size > this.o.maxQueueEntries) return S.invalidQsize;
    if ((c11 & 1) === 0) return S.invalidField;
    const io = dv.getUint32(s + 24, true) + dv.getUint32(s + 28, true) * TWO32;
    const sq = this.#makeSq(qid, io, size, cq);
    if (sq === null) return S.invalidField;
    this.#sqs[qid] = sq;
    return ok;
  }

  #deleteSq(qid: number): number {
    if (qid === 0 || this.#sqs[qid] === undefined) return S.invalidQid;
    this.#sqs[qid] = undefined;
    this.#held = this.#held.filter((h) => h.sq.qid !== qid);
    return ok;
  }

  #deleteCq(qid: number): number {
    if (qid === 0 || this.#cqs[qid] === undefined) return S.invalidQid;
    if (this.#sqs.some((q) => q?.cq.qid === qid)) return cs(0x0c); // Invalid Queue Deletion
    this.#cqs[qid] = undefined;
    return ok;
  }

  /** Abort: a held command completes with Aborted by Request; dw0 bit 0 says whether it was not. */
  #abort(sqid: number, cid: number): number {
    const i = this.#held.findIndex((h) => h.sq.qid === sqid && h.cid === cid);
    if (i < 0) return 1;
    const [h] = this.#held.splice(i, 1);
    this.#post(h.sq, h.cid, S.abortedByRequest, 0);
    return 0;
  }

  #doorbellBuffer(dv: DataView, s: number): number {
    if (!this.o.doorbellBuffer) return S.invalidOpcode;
    const db = dv.getUint32(s + 24, true) + dv.getUint32(s + 28, true) * TWO32;
    const ei = dv.getUint32(s + 32, true) + dv.getUint32(s + 36, true) * TWO32;
    if (db % PAGE !== 0 || ei % PAGE !== 0) return S.invalidField;
    if (!this.#mem(db, PAGE)) return S.invalidField;
    const dbU32 = new Uint32Array(this.#mu8.buffer);
    const dbBase = this.#moff >> 2;
    if (!this.#mem(ei, PAGE)) return S.invalidField;
    this.#shadow = { db: dbU32, dbBase, ei: new Uint32Array(this.#mu8.buffer), eiBase: this.#moff >> 2 };
    // Queues that exist now continue from the tails and heads the MMIO doorbells hold.
    for (const q of this.#sqs) {
      if (q === undefined || q.qid === 0) continue;
      const stride = 1 << this.o.dstrd;
      const sqI = 2 * q.qid * stride;
      Atomics.store(dbU32, dbBase + sqI, this.#bar[(0x1000 >> 2) + sqI]);
      Atomics.store(dbU32, dbBase + sqI + stride, this.#bar[(0x1000 >> 2) + sqI + stride]);
    }
    return ok;
  }

  // ---- I/O ----

  #io(sq: Sq, s: number, tail: number): void {
    const dv = sq.dv;
    const op = dv.getUint8(s);
    const cid = dv.getUint16(s + 2, true);
    if (this.#faults.length > 0 && this.#faults[0] === 'stall') {
      this.#faults.shift();
      this.#held.push({ sq, cid });
      return;
    }
    const fuse = dv.getUint8(s + 1) & 3;
    if (fuse === Fuse.First) {
      this.#fused(sq, s, tail);
      return;
    }
    if (fuse === Fuse.Second) {
      this.#post(sq, cid, S.abortedMissingFused, 0);
      return;
    }
    this.#post(sq, cid, this.#nvm(sq, s, op), 0);
  }

  /** Compare (fuse first) and write (fuse second) as one atomic unit. */
  #fused(sq: Sq, s: number, tail: number): void {
    const dv = sq.dv;
    const cid1 = dv.getUint16(s + 2, true);
    if (sq.head === tail) {
      this.#post(sq, cid1, S.abortedMissingFused, 0);
      return;
    }
    const s2 = sq.base + sq.head * 64;
    sq.head = sq.head + 1 === sq.size ? 0 : sq.head + 1;
    const cid2 = dv.getUint16(s2 + 2, true);
    if (
      (dv.getUint8(s2 + 1) & 3) !== Fuse.Second ||
      dv.getUint8(s) !== IoOpcode.Compare ||
      dv.getUint8(s2) !== IoOpcode.Write
    ) {
      this.#post(sq, cid1, S.abortedMissingFused, 0);
      this.#post(sq, cid2, S.abortedMissingFused, 0);
      return;
    }
    const c = this.#nvm(sq, s, IoOpcode.Compare);
    this.#post(sq, cid1, c, 0);
    this.#post(sq, cid2, c === ok ? this.#nvm(sq, s2, IoOpcode.Write) : S.abortedFailedFused, 0);
  }

  #nvm(sq: Sq, s: number, op: number): number {
    const dv = sq.dv;
    const ns = this.#ns.get(dv.getUint32(s + 4, true));
    if (op === IoOpcode.Flush)
      return ns !== undefined || dv.getUint32(s + 4, true) === 0xffffffff ? ok : S.invalidNs;
    if (ns === undefined) return S.invalidNs;
    if (op === IoOpcode.DatasetManagement) return this.#dsm(sq, s, ns);
    const slba = dv.getUint32(s + 40, true) + dv.getUint32(s + 44, true) * TWO32;
    const nlb = (dv.getUint32(s + 48, true) & 0xffff) + 1;
    if (slba + nlb > ns.blocks) return S.lbaRange;
    const len = nlb * ns.blockSize;
    const at = slba * ns.blockSize;
    switch (op) {
      case IoOpcode.Read:
        this.stats.readCommands++;
        this.stats.bytesRead += len;
        if (len > PAGE << this.o.mdts) return S.invalidField;
        return this.#data(sq, s, len, ns.data, at, 0);
      case IoOpcode.Write:
        this.stats.writeCommands++;
        this.stats.bytesWritten += len;
        if (len > PAGE << this.o.mdts) return S.invalidField;
        return this.#data(sq, s, len, ns.data, at, 1);
      case IoOpcode.Compare:
        if (len > PAGE << this.o.mdts) return S.invalidField;
        return this.#data(sq, s, len, ns.data, at, 2);
      case IoOpcode.WriteZeroes:
        ns.data?.fill(0, at, at + len);
        return ok;
      default:
        return S.invalidOpcode;
    }
  }

  #dsm(sq: Sq, s: number, ns: Ns): number {
    const dv = sq.dv;
    const nr = (dv.getUint32(s + 40, true) & 0xff) + 1;
    const attr = dv.getUint32(s + 44, true);
    const ranges = this.#scratch.subarray(0, nr * 16);
    const r = this.#data(sq, s, nr * 16, ranges, 0, 1);
    if (r !== ok) return r;
    const rd = new DataView(ranges.buffer, ranges.byteOffset, ranges.byteLength);
    for (let i = 0; i < nr; i++) {
      const n = rd.getUint32(i * 16 + 4, true);
      const slba = rd.getUint32(i * 16 + 8, true) + rd.getUint32(i * 16 + 12, true) * TWO32;
      if (slba + n > ns.blocks) return S.lbaRange;
      // Deallocated blocks read back as zeroes (DLFEAT = 1).
      if ((attr & 4) !== 0) ns.data?.fill(0, slba * ns.blockSize, (slba + n) * ns.blockSize);
    }
    return ok;
  }
}

function nguidOf(nsid: number): Uint8Array {
  const g = new Uint8Array(16);
  g.set([0x53, 0x54, 0x4f, 0x52, 0x4b, 0x49, 0x54, 0x4d]);
  new DataView(g.buffer).setUint32(12, nsid, false);
  return g;
}
