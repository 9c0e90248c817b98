// A controller: what a host's Connect on the admin queue creates. Holds the controller's registers
// (CC, CSTS), features, keep alive timer, outstanding Asynchronous Event Requests, error log and
// health counters, its I/O qpairs, and executes admin commands (NVMe Base §5, NVMe-oF §6).

import {
  AdminOpcode,
  AsyncEvent,
  CC,
  CHANGED_NS_LOG_SIZE,
  Cns,
  CntrlType,
  CommandSpecificStatus,
  CSTS,
  ERROR_LOG_ENTRY_SIZE,
  encodeCap,
  encodeChangedNamespaceLog,
  encodeErrorLogEntry,
  encodeFirmwareSlotLog,
  encodeHealthLog,
  encodeIdentifyController,
  encodeIdentifyNamespace,
  encodeNamespaceDescriptors,
  encodeNamespaceList,
  FabricsType,
  Feature,
  FIRMWARE_LOG_SIZE,
  GenericStatus,
  getLogPageFields,
  HEALTH_LOG_SIZE,
  IDENTIFY_SIZE,
  IoOpcode,
  LogPage,
  makeStatus,
  NVME_VERSION_1_3,
  Oncs,
  PropertyOff,
  propertySize,
  Reg,
  readU64,
  Sct,
  SqeOff,
  writeU64,
} from '@storkit/nvme-spec';
import { type ControllerTable, STAT_FIELDS, StatField } from './controller-table.js';
import type { Request } from './request.js';
import type { Subsystem } from './subsystem.js';
import type { TcpQpair } from './tcp-qpair.js';

/** What a controller needs from the target. */
export interface ControllerHost {
  readonly options: import('./options.js').TcpTransportOptions;
  /** The whole discovery log page as this host sees it. */
  discoveryLog(hostnqn: string): Uint8Array;
  controllerGone(c: Controller): void;
  /** CSTS.RDY changed (enable, or a reset through CC.EN = 0). */
  controllerReady?(c: Controller, ready: boolean): void;
  /** An error log entry of a stand-in controller, for its owner's log. */
  forwardError?(c: Controller, entry: Uint8Array): void;
}

const FIRMWARE_REVISION = '0.1.0';
const AER_LIMIT = 4;
const ABORT_LIMIT = 4;
const ERROR_LOG_ENTRIES = 16;
/** Keep alive granularity: KAS is in 100 ms units. */
const KAS_MS = 100;

const st = (sct: number, sc: number, dnr = true): number => makeStatus(sct, sc, dnr);
const S_INVALID_FIELD = st(Sct.Generic, GenericStatus.InvalidField);
const S_INVALID_OPCODE = st(Sct.Generic, GenericStatus.InvalidOpcode);
const S_INVALID_NS = st(Sct.Generic, GenericStatus.InvalidNamespaceOrFormat);

export class Controller {
  readonly cntlid: number;
  readonly subsystem: Subsystem;
  readonly hostnqn: string;
  readonly hostid: Uint8Array;
  readonly host: ControllerHost;
  /** Queue ID → qpair; 0 is the admin queue. */
  readonly qpairs = new Map<number, TcpQpair>();
  cc = 0;
  csts = 0;
  /** Keep alive timeout in ms (0 = disabled). */
  kato: number;
  readonly features = new Map<number, number>();
  readonly #aers: Request[] = [];
  readonly #pendingEvents: number[] = [];
  readonly #changedNs = new Set<number>();
  #nsNoticeMasked = false;
  #discoveryNoticeMasked = false;
  readonly #errors: Uint8Array = new Uint8Array(ERROR_LOG_ENTRIES * ERROR_LOG_ENTRY_SIZE);
  readonly #errorsDv = new DataView(this.#errors.buffer);
  #errorCount = 0;
  readonly health = { dataUnitsRead: 0, dataUnitsWritten: 0, hostReadCommands: 0, hostWriteCommands: 0 };
  /** SMART counters (StatField order): this controller's own, or its reactor's cells in the table. */
  #stats: Float64Array<ArrayBufferLike> = new Float64Array(STAT_FIELDS);
  #statBase = 0;
  #table: ControllerTable | null = null;
  #kaTimer: NodeJS.Timeout | undefined;
  #gone = false;
  readonly #scratch = new Uint8Array(IDENTIFY_SIZE);
  readonly created = Date.now();
  /** Generation of the shared controller-table slot (multi-reactor targets). */
  gen = 0;
  /**
   * -1 for a controller whose admin queue is here; else the reactor that owns it, and this object
   * stands in for it on this reactor to carry I/O queues (no admin queue, no keep alive timer).
   */
  ownerReactor = -1;

  constructor(
    host: ControllerHost,
    subsystem: Subsystem,
    cntlid: number,
    hostnqn: string,
    hostid: Uint8Array,
    kato: number,
  ) {
    this.host = host;
    this.subsystem = subsystem;
    this.cntlid = cntlid;
    this.hostnqn = hostnqn;
    this.hostid = hostid;
    this.kato = 0;
    this.features.set(Feature.AsyncEventConfig, this.isDiscovery ? 0 : AsyncEvent.ConfigNamespaceAttribute);
    this.features.set(Feature.VolatileWriteCache, this.#hasWriteCache() ? 1 : 0);
    this.features.set(Feature.Arbitration, 0);
    this.features.set(Feature.PowerManagement, 0);
    this.features.set(Feature.TemperatureThreshold, 343); // 70 °C in kelvin
    this.features.set(Feature.ErrorRecovery, 0);
    this.features.set(Feature.InterruptCoalescing, 0);
    this.setKato(kato);
  }

  get isDiscovery(): boolean {
    return this.subsystem.subtype === 'Discovery';
  }

  get ioQueueLimit(): number {
    if (this.isDiscovery) return 0;
    const t = this.subsystem.table;
    const limit = this.host.options.max_io_qpairs_per_ctrlr;
    return t === null ? limit : Math.min(limit, t.qidCap);
  }

  #hasWriteCache(): boolean {
    for (const ns of this.subsystem.namespaces.values()) if (ns.backend.writeCache) return true;
    return false;
  }

  setKato(ms: number): void {
    this.kato = ms === 0 ? 0 : Math.ceil(ms / KAS_MS) * KAS_MS;
    if (this.#kaTimer) clearTimeout(this.#kaTimer);
    this.#kaTimer = undefined;
    if (this.kato > 0) {
      this.#kaTimer = setTimeout(() => this.#kaExpired(), this.kato);
      this.#kaTimer.unref();
    }
  }

  keepAlive(): void {
    this.#kaTimer?.refresh();
  }

  #kaExpired(): void {
    this.destroy('keep alive timeout expired');
  }

  /** Why the controller went away, when it did. */
  goneReason = '';

  /** Tear the controller down: every qpair's connection closes. */
  destroy(reason: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.goneReason = reason;
    if (this.#kaTimer) clearTimeout(this.#kaTimer);
    if (this.subsystem.controllers.get(this.cntlid) === this) this.subsystem.controllers.delete(this.cntlid);
    for (const qp of [...this.qpairs.values()]) qp.close();
    this.qpairs.clear();
    this.host.controllerGone(this);
  }

  get gone(): boolean {
    return this.#gone;
  }

  qpairClosed(qp: TcpQpair): void {
    if (this.qpairs.get(qp.qid) !== qp) return;
    this.qpairs.delete(qp.qid);
    // Losing the admin queue ends the association (NVMe-oF §3.3).
    if (qp.qid === 0) this.destroy('admin queue closed');
  }

  /**
   * Count SMART statistics in the subsystem's shared table, in this reactor's cells: a controller
   * whose I/O queues are spread over reactors then reports them all from its owner.
   */
  bindStats(table: ControllerTable, reactor: number): void {
    const b = table.statBase(this.cntlid, reactor);
    if (b < 0) return;
    this.#table = table;
    this.#stats = table.stats;
    this.#statBase = b;
  }

  countIo(opcode: number, bytes: number): void {
    const s = this.#stats;
    const b = this.#statBase;
    if (opcode === IoOpcode.Read) {
      s[b + StatField.ReadCommands]++;
      s[b + StatField.BytesRead] += bytes;
    } else if (opcode === IoOpcode.Write) {
      s[b + StatField.WriteCommands]++;
      s[b + StatField.BytesWritten] += bytes;
    }
  }

  #stat(f: StatField): number {
    const t = this.#table;
    return t === null ? this.#stats[f] : t.statSum(this.cntlid, f);
  }

  /** Record a failed command in the error log (newest first when read); a stand-in forwards it. */
  logError(sqid: number, r: Request, status = r.status): void {
    const e = this.#entry;
    encodeErrorLogEntry(
      { errorCount: 0, sqid, cid: r.cid, status, lba: readU64(r.sqeDv, SqeOff.cdw10), nsid: r.nsid },
      e,
      0,
    );
    if (this.ownerReactor >= 0 && this.host.forwardError) this.host.forwardError(this, e);
    else this.appendError(e);
  }

  readonly #entry = new Uint8Array(ERROR_LOG_ENTRY_SIZE);

  /** Add an encoded entry to this controller's error log, numbering it. */
  appendError(entry: Uint8Array): void {
    const i = this.#errorCount % ERROR_LOG_ENTRIES;
    this.#errorCount++;
    const o = i * ERROR_LOG_ENTRY_SIZE;
    this.#errors.set(entry.subarray(0, ERROR_LOG_ENTRY_SIZE), o);
    // Error Count (bytes 0-7): this log's sequence number.
    writeU64(this.#errorsDv, o, this.#errorCount);
  }

  // ---- asynchronous events ----

  namespaceChanged(nsid: number): void {
    this.features.set(
      Feature.VolatileWriteCache,
      this.features.get(Feature.VolatileWriteCache)! & (this.#hasWriteCache() ? 1 : 0),
    );
    this.#changedNs.add(nsid);
    if (
      !(this.features.get(Feature.AsyncEventConfig)! & AsyncEvent.ConfigNamespaceAttribute) ||
      this.#nsNoticeMasked
    )
      return;
    this.#nsNoticeMasked = true;
    this.#raise(AsyncEvent.TypeNotice | (AsyncEvent.NoticeNamespaceAttributeChanged << 8) | (0x04 << 16));
  }

  discoveryChanged(): void {
    if (!this.isDiscovery || this.#discoveryNoticeMasked) return;
    if (!(this.features.get(Feature.AsyncEventConfig)! & AsyncEvent.ConfigDiscoveryLogChange)) return;
    this.#discoveryNoticeMasked = true;
    this.#raise(AsyncEvent.TypeNotice | (AsyncEvent.NoticeDiscoveryLogChanged << 8) | (0x70 << 16));
  }

  #raise(dw0: number): void {
    const aer = this.#aers.shift();
    if (!aer) {
      this.#pendingEvents.push(dw0 >>> 0);
      return;
    }
    aer.dw0 = dw0 >>> 0;
    aer.qp.complete(aer, 0);
  }

  // ---- admin commands ----

  /** Take the outstanding Asynchronous Event Request with this CID off the list (never answered). */
  takeAer(cid: number): Request | null {
    const i = this.#aers.findIndex((a) => a.cid === cid);
    return i < 0 ? null : this.#aers.splice(i, 1)[0];
  }

  executeAdmin(qp: TcpQpair, r: Request): void {
    const s = this.#admin(qp, r);
    if (s === undefined) return; // held (AER)
    if (s !== 0) this.logError(0, r, s);
    qp.complete(r, s);
  }

  // Returns the status to complete with, or undefined when the command stays outstanding.
  #admin(qp: TcpQpair, r: Request): number | undefined {
    const dv = r.sqeDv;
    switch (r.opcode) {
      case AdminOpcode.Fabrics:
        return this.#fabrics(qp, r);
      case AdminOpcode.Identify:
        return this.#identify(r);
      case AdminOpcode.GetLogPage:
        return this.#getLogPage(r);
      case AdminOpcode.GetFeatures:
        return this.#getFeatures(r);
      case AdminOpcode.SetFeatures:
        return this.#setFeatures(r);
      case AdminOpcode.KeepAlive:
        this.keepAlive();
        return 0;
      case AdminOpcode.AsyncEventRequest: {
        if (this.#aers.length >= AER_LIMIT)
          return st(Sct.CommandSpecific, CommandSpecificStatus.AsyncEventRequestLimitExceeded);
        const ev = this.#pendingEvents.shift();
        if (ev !== undefined) {
          r.dw0 = ev;
          return 0;
        }
        this.#aers.push(r);
        return undefined;
      }
      case AdminOpcode.Abort: {
        const cdw10 = dv.getUint32(SqeOff.cdw10, true);
        const sqid = cdw10 & 0xffff;
        const cid = cdw10 >>> 16;
        r.dw0 = 1; // bit 0 set: command not aborted
        if (sqid === 0) {
          const i = this.#aers.findIndex((a) => a.cid === cid);
          if (i >= 0) {
            const [a] = this.#aers.splice(i, 1);
            a.qp.complete(a, st(Sct.Generic, GenericStatus.AbortedByRequest, false));
            r.dw0 = 0;
          }
        } else {
          const target = this.qpairs.get(sqid);
          // An I/O queue on another reactor: reported as not aborted (dw0 bit 0), as the spec allows.
          if (!target)
            return this.subsystem.table !== null && sqid >= 1 && sqid <= this.ioQueueLimit
              ? 0
              : st(Sct.Generic, GenericStatus.InvalidField);
          if (target.tryAbort(cid)) r.dw0 = 0;
        }
        return 0;
      }
      default:
        return S_INVALID_OPCODE;
    }
  }

  #fabrics(qp: TcpQpair, r: Request): number {
    const dv = r.sqeDv;
    const fctype = dv.getUint8(4);
    switch (fctype) {
      case FabricsType.PropertyGet: {
        const size = (dv.getUint8(PropertyOff.attrib) & 7) === 1 ? 8 : 4;
        const ofst = dv.getUint32(PropertyOff.ofst, true);
        if (propertySize(ofst) !== size) return S_INVALID_FIELD;
        const [lo, hi] = this.#getProperty(ofst);
        r.dw0 = lo;
        r.dw1 = hi;
        return 0;
      }
      case FabricsType.PropertySet: {
        const size = (dv.getUint8(PropertyOff.attrib) & 7) === 1 ? 8 : 4;
        const ofst = dv.getUint32(PropertyOff.ofst, true);
        if (propertySize(ofst) !== size) return S_INVALID_FIELD;
        return this.#setProperty(qp, ofst, dv.getUint32(PropertyOff.value, true));
      }
      case FabricsType.Disconnect:
        qp.closeAfterFlush();
        return 0;
      default:
        return S_INVALID_OPCODE;
    }
  }

  #getProperty(ofst: number): [number, number] {
    switch (ofst) {
      case Reg.CAP: {
        const { lo, hi } = encodeCap({
          maxQueueEntries: this.host.options.max_queue_depth,
          timeout: 30,
          mpsmin: 0,
          mpsmax: 0,
        });
        return [lo, hi];
      }
      case Reg.VS:
        return [NVME_VERSION_1_3, 0];
      case Reg.CC:
        return [this.cc, 0];
      case Reg.CSTS:
        return [this.csts, 0];
      default:
        return [0, 0];
    }
  }

  #setProperty(qp: TcpQpair, ofst: number, v: number): number {
    if (ofst !== Reg.CC) return S_INVALID_FIELD;
    const was = this.cc;
    if (v & CC.EN && (CC.iosqes(v) !== 6 || CC.iocqes(v) !== 4)) return S_INVALID_FIELD;
    this.cc = v >>> 0;
    if (CC.shn(v) !== 0) {
      this.csts = (this.csts & ~(3 << 2)) | CSTS.SHST_COMPLETE;
    }
    if (v & CC.EN && !(was & CC.EN)) {
      this.csts = (this.csts | CSTS.RDY) & ~(3 << 2);
      this.host.controllerReady?.(this, true);
    } else if (!(v & CC.EN) && was & CC.EN) {
      // Controller reset: I/O queues are deleted; the admin queue stays connected.
      this.csts &= ~CSTS.RDY;
      this.host.controllerReady?.(this, false);
      for (const [qid, q] of [...this.qpairs]) if (qid !== 0 && q !== qp) q.close();
      for (const a of this.#aers.splice(0))
        a.qp.complete(a, st(Sct.Generic, GenericStatus.AbortedSqDeletion, false));
    }
    return 0;
  }

  /** Copy `src` into the request's data buffer as the command's data (truncated to the transfer). */
  #reply(r: Request, src: Uint8Array, len = src.length): number {
    const n = Math.min(len, r.dataLen);
    r.buf.set(src.subarray(0, n));
    r.buf.fill(0, n, r.dataLen);
    r.c2hLen = r.dataLen;
    return 0;
  }

  #identify(r: Request): number {
    const dv = r.sqeDv;
    const cdw10 = dv.getUint32(SqeOff.cdw10, true);
    const cns = cdw10 & 0xff;
    const csi = dv.getUint32(SqeOff.cdw11, true) >>> 24;
    const nsid = r.nsid;
    const out = this.#scratch;
    const nsMap = this.subsystem.namespaces;
    if (r.dataLen === 0) return st(Sct.Generic, GenericStatus.DataSglLengthInvalid);
    if (this.isDiscovery && cns !== Cns.Controller) return S_INVALID_FIELD;
    switch (cns) {
      case Cns.Controller:
        this.#identifyController(out);
        return this.#reply(r, out);
      case Cns.Namespace: {
        if (nsid === 0 || nsid === 0xffffffff || nsid > this.subsystem.maxNamespaces) return S_INVALID_NS;
        const ns = nsMap.get(nsid);
        if (!ns) {
          out.fill(0);
          return this.#reply(r, out);
        }
        encodeIdentifyNamespace(
          {
            nsze: ns.backend.numBlocks,
            ncap: ns.backend.numBlocks,
            nuse: ns.backend.numBlocks,
            nsfeat: 0x1, // thin provisioning: deallocate is supported
            blockSize: ns.backend.blockSize,
            nmic: 1, // may be attached to several controllers
            dlfeat: 0x09, // deallocated blocks read as zeroes; Write Zeroes can deallocate
            nguid: ns.nguid,
            eui64: ns.eui64,
          },
          out,
        );
        return this.#reply(r, out);
      }
      case Cns.ActiveNamespaceList:
      case Cns.IoCommandSetActiveNamespaceList:
        if (nsid >= 0xfffffffe || (cns === Cns.IoCommandSetActiveNamespaceList && csi !== 0))
          return S_INVALID_FIELD;
        encodeNamespaceList([...nsMap.keys()], nsid, out);
        return this.#reply(r, out);
      case Cns.NamespaceDescriptorList: {
        const ns = nsMap.get(nsid);
        if (!ns) return S_INVALID_NS;
        encodeNamespaceDescriptors({ eui64: ns.eui64, nguid: ns.nguid, uuid: ns.uuid, csi: 0 }, out);
        return this.#reply(r, out);
      }
      case Cns.IoCommandSetNamespace:
        if (csi !== 0) return S_INVALID_FIELD;
        if (!nsMap.has(nsid)) return S_INVALID_NS;
        out.fill(0);
        return this.#reply(r, out);
      case Cns.IoCommandSetController:
        if (csi !== 0) return S_INVALID_FIELD;
        out.fill(0);
        return this.#reply(r, out);
      case Cns.IoCommandSet:
        out.fill(0);
        out[0] = 1; // combination 0: the NVM command set only
        return this.#reply(r, out);
      default:
        return S_INVALID_FIELD;
    }
  }

  #identifyController(out: Uint8Array): void {
    const o = this.host.options;
    const disc = this.isDiscovery;
    encodeIdentifyController(
      {
        vid: 0,
        ssvid: 0,
        serialNumber: this.subsystem.serialNumber,
        modelNumber: this.subsystem.modelNumber,
        firmwareRevision: FIRMWARE_REVISION,
        ieee: 0,
        cmic: disc ? 0 : 0x2,
        mdts: Math.log2(o.max_io_size / 4096),
        cntlid: this.cntlid,
        version: NVME_VERSION_1_3,
        oaes: disc ? AsyncEvent.ConfigDiscoveryLogChange : AsyncEvent.ConfigNamespaceAttribute,
        ctratt: 1,
        cntrltype: disc ? CntrlType.Discovery : CntrlType.Io,
        oacs: 0,
        abortLimit: ABORT_LIMIT,
        aerLimit: AER_LIMIT,
        frmw: 0x3,
        lpa: 0x4,
        errorLogEntries: ERROR_LOG_ENTRIES,
        kas: 1,
        maxcmd: o.max_queue_depth,
        nn: disc ? 0 : this.subsystem.maxNamespaces,
        oncs: disc ? 0 : Oncs.Compare | Oncs.Dsm | Oncs.WriteZeroes,
        fuses: disc ? 0 : 1,
        vwc: disc ? 0 : 0x4 | (this.#hasWriteCache() ? 1 : 0),
        acwu: 0,
        sgls: 0x100001,
        subnqn: this.subsystem.nqn,
        ioccsz: (64 + o.in_capsule_data_size) / 16,
        iorcsz: 1,
        icdoff: 0,
        msdbd: 1,
      },
      out,
    );
  }

  #getLogPage(r: Request): number {
    const dv = r.sqeDv;
    const f = getLogPageFields(
      dv.getUint32(SqeOff.cdw10, true),
      dv.getUint32(SqeOff.cdw11, true),
      dv.getUint32(SqeOff.cdw12, true),
      dv.getUint32(SqeOff.cdw13, true),
    );
    if (f.offset % 4 !== 0 || f.length > r.dataLen) return S_INVALID_FIELD;
    let page: Uint8Array;
    if (this.isDiscovery) {
      if (f.lid !== LogPage.Discovery) return st(Sct.CommandSpecific, CommandSpecificStatus.InvalidLogPage);
      page = this.host.discoveryLog(this.hostnqn);
      if (!f.rae) this.#discoveryNoticeMasked = false;
    } else {
      switch (f.lid) {
        case LogPage.Error:
          page = this.#errorLog();
          break;
        case LogPage.Health:
          page = new Uint8Array(HEALTH_LOG_SIZE);
          this.health.hostReadCommands = this.#stat(StatField.ReadCommands);
          this.health.hostWriteCommands = this.#stat(StatField.WriteCommands);
          this.health.dataUnitsRead = Math.ceil(this.#stat(StatField.BytesRead) / 512000);
          this.health.dataUnitsWritten = Math.ceil(this.#stat(StatField.BytesWritten) / 512000);
          encodeHealthLog(
            {
              criticalWarning: 0,
              temperature: 310,
              availableSpare: 100,
              availableSpareThreshold: 10,
              percentageUsed: 0,
              ...this.health,
              powerCycles: 1,
              powerOnHours: Math.floor((Date.now() - this.created) / 3_600_000),
              unsafeShutdowns: 0,
              mediaErrors: 0,
              errorLogEntries: this.#errorCount,
            },
            page,
          );
          break;
        case LogPage.FirmwareSlot:
          page = new Uint8Array(FIRMWARE_LOG_SIZE);
          encodeFirmwareSlotLog(FIRMWARE_REVISION, page);
          break;
        case LogPage.ChangedNamespaceList:
          page = new Uint8Array(CHANGED_NS_LOG_SIZE);
          encodeChangedNamespaceLog(
            [...this.#changedNs].sort((a, b) => a - b),
            page,
          );
          if (!f.rae) {
            this.#changedNs.clear();
            this.#nsNoticeMasked = false;
          }
          break;
        default:
          return st(Sct.CommandSpecific, CommandSpecificStatus.InvalidLogPage);
      }
    }
    if (f.offset > page.length) return S_INVALID_FIELD;
    const n = Math.min(f.length, page.length - f.offset);
    r.buf.set(page.subarray(f.offset, f.offset + n));
    r.buf.fill(0, n, r.dataLen);
    r.c2hLen = r.dataLen;
    return 0;
  }

  #errorLog(): Uint8Array {
    const n = Math.min(this.#errorCount, ERROR_LOG_ENTRIES);
    const page = new Uint8Array(ERROR_LOG_ENTRIES * ERROR_LOG_ENTRY_SIZE);
    for (let k = 0; k < n; k++) {
      const i = (this.#errorCount - 1 - k) % ERROR_LOG_ENTRIES;
      page.set(
        this.#errors.subarray(i * ERROR_LOG_ENTRY_SIZE, (i + 1) * ERROR_LOG_ENTRY_SIZE),
        k * ERROR_LOG_ENTRY_SIZE,
      );
    }
    return page;
  }

  #getFeatures(r: Request): number {
    const fid = r.sqeDv.getUint32(SqeOff.cdw10, true) & 0xff;
    switch (fid) {
      case Feature.NumberOfQueues: {
        if (this.isDiscovery) return S_INVALID_FIELD;
        const n = this.ioQueueLimit - 1;
        r.dw0 = (n | (n << 16)) >>> 0;
        return 0;
      }
      case Feature.KeepAliveTimer:
        r.dw0 = this.kato;
        return 0;
      case Feature.AsyncEventConfig:
      case Feature.VolatileWriteCache:
      case Feature.Arbitration:
      case Feature.PowerManagement:
      case Feature.TemperatureThreshold:
      case Feature.ErrorRecovery:
      case Feature.InterruptCoalescing:
        if (this.isDiscovery && fid !== Feature.AsyncEventConfig) return S_INVALID_FIELD;
        r.dw0 = this.features.get(fid)!;
        return 0;
      default:
        return S_INVALID_FIELD;
    }
  }

  #setFeatures(r: Request): number {
    const dv = r.sqeDv;
    const cdw10 = dv.getUint32(SqeOff.cdw10, true);
    const fid = cdw10 & 0xff;
    const v = dv.getUint32(SqeOff.cdw11, true);
    if (cdw10 >>> 31) return st(Sct.CommandSpecific, CommandSpecificStatus.FeatureIdNotSaveable);
    switch (fid) {
      case Feature.NumberOfQueues: {
        if (this.isDiscovery) return S_INVALID_FIELD;
        if ((v & 0xffff) === 0xffff || v >>> 16 === 0xffff) return S_INVALID_FIELD;
        const n = this.ioQueueLimit - 1;
        r.dw0 = (n | (n << 16)) >>> 0;
        return 0;
      }
      case Feature.KeepAliveTimer:
        this.setKato(v);
        return 0;
      case Feature.AsyncEventConfig:
        this.features.set(fid, v >>> 0);
        return 0;
      case Feature.VolatileWriteCache:
        if (this.isDiscovery || !this.#hasWriteCache()) return S_INVALID_FIELD;
        this.features.set(fid, v & 1);
        return 0;
      case Feature.Arbitration:
      case Feature.PowerManagement:
      case Feature.TemperatureThreshold:
      case Feature.ErrorRecovery:
      case Feature.InterruptCoalescing:
        if (this.isDiscovery) return S_INVALID_FIELD;
        this.features.set(fid, v >>> 0);
        return 0;
      default:
        return S_INVALID_FIELD;
    }
  }
}
