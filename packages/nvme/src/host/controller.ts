// An NVMe controller, whatever the transport (host/transport.ts; NVMe/TCP in ../tcp): the admin
// queue, controller enable through registers, identify, features, log pages, keep alive,
// asynchronous events, I/O qpair grants and creation, command timeouts (abort, then reset) and
// controller reset with reconnect. Admin work returns promises; I/O goes through HostQpair's
// polled, allocation-free path.

import { randomUUID } from 'node:crypto';

import {
  AdminOpcode,
  type Capabilities,
  CC,
  Cns,
  DISCOVERY_ENTRY_SIZE,
  DISCOVERY_HEADER_SIZE,
  DISCOVERY_NQN,
  type DiscoveryEntry,
  decodeCap,
  decodeDiscoveryEntry,
  decodeDiscoveryLogHeader,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNamespaceDescriptors,
  decodeNamespaceList,
  Feature,
  getLogPageCdws,
  IDENTIFY_SIZE,
  type IdentifyController,
  type IdentifyNamespace,
  LogPage,
  type NamespaceDescriptors,
  NvmeStatusError,
  Reg,
  statusSc,
  statusSct,
  uuidToBytes,
  versionString,
} from '@storkit/nvme-spec';
import { SockHost } from '@storkit/reactor';

import { NvmeLinkError, pcieTransport } from '../pcie/transport.js';
import { tcpTransport } from '../tcp/transport.js';
import type { CommandSpec, HostQpair } from './qpair.js';
import {
  type ControllerLink,
  getTransport,
  type IoQpairGrant,
  type IoQpairOptions,
  type NvmeTransport,
  type PcieOptions,
  registerTransport,
} from './transport.js';
import { parseTransportId, type TransportId } from './trid.js';

registerTransport(tcpTransport);
registerTransport(pcieTransport);

export interface ControllerOptions {
  hostnqn?: string;
  /** Host identifier (UUID text); random per process by default. */
  hostid?: string;
  hdgst?: boolean;
  ddgst?: boolean;
  /** Keep alive timeout in ms (0 = none). Default 10000 (0 for discovery controllers). */
  kato?: number;
  adminDepth?: number;
  /** Per-command timeout in ms for every queue (0 = none); expiry aborts, a failed abort resets. */
  timeoutMs?: number;
  /**
   * When a queue's connection is lost, reset (reconnect) the controller after this many ms, and
   * keep retrying at this interval (SPDK bdev_nvme's reconnect_delay_sec). Default: no reconnect.
   */
  reconnectDelayMs?: number;
  /** Give up reconnecting after this many ms without success (ctrlr_loss_timeout_sec). Default 30000. */
  ctrlrLossTimeoutMs?: number;
  /** PCIe transport choices (shadow doorbells, SGLs, doorbell batching). */
  pcie?: PcieOptions;
  /** TCP: bind every connection to this source address / port (SPDK's hostaddr, hostsvcid). */
  localAddress?: string;
  localPort?: number;
  /** TCP: SO_PRIORITY of every connection (SPDK's transport ID priority). */
  priority?: number;
}

export interface AdminResult {
  status: number;
  dw0: number;
  dw1: number;
}

const DEFAULT_HOSTID = randomUUID();
const defaultHostnqn = (hostid: string) => `nqn.2014-08.org.nvmexpress:uuid:${hostid}`;

export class NvmeController {
  readonly trid: TransportId;
  readonly hostnqn: string;
  readonly hostid: Uint8Array;
  readonly transport: NvmeTransport;
  readonly #opts: ControllerOptions;
  #link: ControllerLink | null = null;
  cntlid = 0;
  cdata!: IdentifyController;
  /** Queue entries the controller supports (CAP.MQES + 1). */
  maxQueueEntries = 0;
  /** Controller Capabilities (CAP), decoded. */
  cap!: Capabilities;
  version = '';
  /** I/O qpairs this controller opened on its own thread (reconnected in place by a reset). */
  readonly ioQpairs = new Set<HostQpair>();
  readonly #grants = new Map<HostQpair, IoQpairGrant>();
  /** Queue IDs granted and not yet released. */
  readonly #qids = new Set<number>();
  /** Grants whose queues are being torn down (their queue IDs still taken). */
  readonly #releasing = new WeakSet<IoQpairGrant>();
  /** The socket group of native I/O qpairs given none (polled by their processCompletions). */
  #sockHost: SockHost | null = null;
  #kaTimer: NodeJS.Timeout | undefined;
  #aerHandlers: ((dw0: number) => void)[] = [];
  #closed = false;
  #resetting: Promise<void> | null = null;
  /** Resets done so far (timeouts, failures, or explicit). */
  resets = 0;
  readonly events: { aer: number; timeouts: number; aborts: number } = { aer: 0, timeouts: 0, aborts: 0 };

  private constructor(trid: TransportId, o: ControllerOptions) {
    const t = getTransport(trid.trtype);
    if (t === undefined) throw new Error(`no NVMe transport for trtype ${trid.trtype} in this build`);
    this.transport = t;
    this.trid = trid;
    this.#opts = o;
    const hostid = o.hostid ?? DEFAULT_HOSTID;
    this.hostid = uuidToBytes(hostid);
    this.hostnqn = o.hostnqn ?? trid.hostnqn ?? defaultHostnqn(hostid);
  }

  /** PCIe: the function's vendor and device IDs; undefined on fabrics. */
  get pciId(): { vendor: number; device: number } | undefined {
    return this.#link?.pciId;
  }

  /** The admin queue (of the current link: a reset replaces it). */
  get admin(): HostQpair {
    if (this.#link === null) throw new Error('controller not connected');
    return this.#link.admin;
  }

  get isDiscovery(): boolean {
    return this.trid.subnqn === DISCOVERY_NQN;
  }

  // Keep alive is a fabrics affair: a PCIe controller needs none unless asked.
  get #kato(): number {
    return this.#opts.kato ?? (this.isDiscovery || this.trid.trtype === 'PCIe' ? 0 : 10000);
  }

  #removeHandlers: ((err: Error) => void)[] = [];
  /** Set once the controller's device went away (PCIe hot remove): it stays failed. */
  removed: Error | null = null;

  /** Called once if the controller's device is removed (its I/O has failed by then). */
  onRemove(h: (err: Error) => void): void {
    this.#removeHandlers.push(h);
  }

  #lostSince = 0;
  #reconnectTimer: NodeJS.Timeout | undefined;

  // A queue's connection failed: reconnect the controller if asked to, retrying until the loss timeout.
  #lost(): void {
    const delay = this.#opts.reconnectDelayMs;
    if (delay === undefined || this.#closed || this.#reconnectTimer || this.removed !== null) return;
    this.#lostSince ||= Date.now();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.reset().then(
        () => {
          this.#lostSince = 0;
        },
        () => {
          if (Date.now() - this.#lostSince < (this.#opts.ctrlrLossTimeoutMs ?? 30000)) this.#lost();
          else this.lostReason = 'controller loss timeout';
        },
      );
    }, delay);
    this.#reconnectTimer.unref();
  }

  /** Set when reconnecting gave up. */
  lostReason = '';

  /** Connect to the controller named by `trid` (SPDK syntax), enable it and identify it. */
  static async connect(trid: string | TransportId, o: ControllerOptions = {}): Promise<NvmeController> {
    const c = new NvmeController(typeof trid === 'string' ? parseTransportId(trid) : trid, o);
    try {
      await c.#bringUp();
    } catch (e) {
      // A refused Connect (unknown subsystem, host not allowed) or a failed enable leaves the
      // admin connection open: close it, or the caller's process never exits.
      await c.close().catch(() => {});
      throw e;
    }
    return c;
  }

  async #bringUp(): Promise<void> {
    const link = await this.transport.connect(this.trid, {
      hostnqn: this.hostnqn,
      hostid: this.hostid,
      hdgst: this.#opts.hdgst,
      ddgst: this.#opts.ddgst,
      kato: this.#kato,
      adminDepth: this.#opts.adminDepth ?? 32,
      timeoutMs: this.#opts.timeoutMs ?? 0,
      pcie: this.#opts.pcie,
      localAddress: this.#opts.localAddress,
      localPort: this.#opts.localPort,
      priority: this.#opts.priority,
    });
    this.#link = link;
    link.onRemoved = (err) => this.#gone(err);
    await this.#initLink(link);
  }

  #gone(err: Error): void {
    if (this.removed !== null) return;
    this.removed = err;
    this.lostReason = 'device removed';
    for (const q of this.ioQpairs) (q as { failNow?: (e: Error) => void }).failNow?.(err);
    for (const h of this.#removeHandlers) h(err);
  }

  // A link that is open: its admin queue, registers, enable, identify, features, AERs.
  async #initLink(link: ControllerLink): Promise<void> {
    link.admin.onTimeout = (q, cid, op) => this.#timedOut(q, cid, op);
    link.admin.onFailure = () => this.#lost();
    this.cntlid = link.cntlid;
    const [lo, hi] = await link.getRegister(Reg.CAP, 8);
    const cap = decodeCap(lo, hi);
    this.maxQueueEntries = cap.maxQueueEntries;
    this.cap = cap;
    this.version = versionString((await link.getRegister(Reg.VS, 4))[0]);
    await link.enable(cap);
    this.cdata = await this.identifyController();
    if (this.#kato > 0) {
      this.#kaTimer = setInterval(() => this.#keepAlive(), Math.max(100, this.#kato / 2));
      this.#kaTimer.unref();
    }
    if (!this.isDiscovery) {
      await this.setFeatures(Feature.AsyncEventConfig, asyncEventConfig(this.cdata, this.trid.trtype));
      for (let i = 0; i < Math.min(this.cdata.aerLimit, 4); i++) this.#submitAer();
    }
  }

  #keepAlive(): void {
    this.#link?.admin.submit({ opcode: AdminOpcode.KeepAlive }, () => {}, undefined);
  }

  #submitAer(): void {
    this.admin.submit(
      { opcode: AdminOpcode.AsyncEventRequest },
      (_c, status, dw0) => {
        if (status !== 0 || this.#closed) return;
        this.events.aer++;
        for (const h of this.#aerHandlers) h(dw0);
        this.#submitAer();
      },
      undefined,
    );
  }

  /** Called with each Asynchronous Event's DW0 (type bits 2:0, info 15:8, log page 23:16). */
  onAsyncEvent(h: (dw0: number) => void): void {
    this.#aerHandlers.push(h);
  }

  /** Submit an admin command; resolves with the raw result (never rejects on NVMe status). */
  adminRaw(spec: CommandSpec): Promise<AdminResult> {
    return new Promise((resolve, reject) => {
      const ok = this.admin.submit(spec, (_c, status, dw0, dw1) => resolve({ status, dw0, dw1 }), undefined);
      if (!ok) reject(this.admin.failed ?? new Error('admin queue full'));
    });
  }

  /** Submit an admin command; rejects with NvmeStatusError when it fails. */
  async adminCommand(spec: CommandSpec, what: string): Promise<AdminResult> {
    const r = await this.adminRaw(spec);
    if (r.status !== 0)
      throw new NvmeStatusError(
        r.status,
        `${what} failed: sct ${statusSct(r.status)} sc 0x${statusSc(r.status).toString(16)}`,
      );
    return r;
  }

  /** Read a 4- or 8-byte controller register (a property on fabrics); 8-byte values as [lo, hi]. */
  getRegister(ofst: number, size: 4 | 8): Promise<[number, number]> {
    if (this.#link === null) return Promise.reject(new Error('controller not connected'));
    return this.#link.getRegister(ofst, size);
  }

  /** Write a 4-byte controller register. */
  setRegister(ofst: number, value: number): Promise<void> {
    if (this.#link === null) return Promise.reject(new Error('controller not connected'));
    return this.#link.setRegister(ofst, value);
  }

  async #identify(cns: number, nsid: number, cdw11 = 0): Promise<Uint8Array> {
    const buf = new Uint8Array(IDENTIFY_SIZE);
    await this.adminCommand(
      { opcode: AdminOpcode.Identify, nsid, cdw10: cns, cdw11, buf },
      `Identify CNS ${cns}`,
    );
    return buf;
  }

  async identifyController(): Promise<IdentifyController> {
    return decodeIdentifyController(await this.#identify(Cns.Controller, 0));
  }

  async identifyNamespace(nsid: number): Promise<IdentifyNamespace> {
    return decodeIdentifyNamespace(await this.#identify(Cns.Namespace, nsid));
  }

  async activeNamespaces(): Promise<number[]> {
    return decodeNamespaceList(await this.#identify(Cns.ActiveNamespaceList, 0));
  }

  async namespaceDescriptors(nsid: number): Promise<NamespaceDescriptors> {
    return decodeNamespaceDescriptors(await this.#identify(Cns.NamespaceDescriptorList, nsid));
  }

  /** Read `length` bytes (multiple of 4) of log page `lid` from byte `offset`. */
  async getLogPage(lid: number, length: number, offset = 0, nsid = 0xffffffff): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    const { cdw10, cdw11 } = getLogPageCdws(lid, length);
    await this.adminCommand(
      {
        opcode: AdminOpcode.GetLogPage,
        nsid,
        cdw10,
        cdw11,
        cdw12: offset >>> 0,
        cdw13: Math.floor(offset / 2 ** 32),
        buf,
      },
      `Get Log Page 0x${lid.toString(16)}`,
    );
    return buf;
  }

  async getFeatures(fid: number): Promise<number> {
    return (
      await this.adminCommand(
        { opcode: AdminOpcode.GetFeatures, cdw10: fid },
        `Get Features 0x${fid.toString(16)}`,
      )
    ).dw0;
  }

  async setFeatures(fid: number, value: number): Promise<number> {
    return (
      await this.adminCommand(
        { opcode: AdminOpcode.SetFeatures, cdw10: fid, cdw11: value },
        `Set Features 0x${fid.toString(16)}`,
      )
    ).dw0;
  }

  /**
   * The Controller Memory Buffer for data (PCIe; SPDK's spdk_nvme_ctrlr_map_cmb): bytes of the
   * controller's own memory, usable as I/O buffers of this controller's qpairs (granted after
   * this call, for qpairs on other threads). Reads and writes there move no data over the bus,
   * and host accesses to it are MMIO. Throws ENOTSUP, with the reason, when there is none.
   */
  mapCmb(): Uint8Array {
    if (this.#link?.mapCmb === undefined)
      throw new NvmeLinkError('ENOTSUP', `${this.trid.trtype} controllers have no controller memory buffer`);
    return this.#link.mapCmb();
  }

  /** Stop using the CMB for data (spdk_nvme_ctrlr_unmap_cmb); buffers in it must be idle. */
  unmapCmb(): void {
    this.#link?.unmapCmb?.();
  }

  /** Discovery log entries (on a discovery controller). */
  async discoveryLog(): Promise<DiscoveryEntry[]> {
    const head = decodeDiscoveryLogHeader(await this.getLogPage(LogPage.Discovery, DISCOVERY_HEADER_SIZE));
    if (head.numrec === 0) return [];
    const page = await this.getLogPage(
      LogPage.Discovery,
      DISCOVERY_HEADER_SIZE + head.numrec * DISCOVERY_ENTRY_SIZE,
    );
    const n = Math.min(head.numrec, decodeDiscoveryLogHeader(page).numrec);
    return Array.from({ length: n }, (_, i) =>
      decodeDiscoveryEntry(page, DISCOVERY_HEADER_SIZE + i * DISCOVERY_ENTRY_SIZE),
    );
  }

  /** Abort command `cid` on queue `sqid`; resolves true if the controller aborted it. */
  async abort(sqid: number, cid: number): Promise<boolean> {
    this.events.aborts++;
    const r = await this.adminRaw({ opcode: AdminOpcode.Abort, cdw10: (sqid | (cid << 16)) >>> 0 });
    return r.status === 0 && (r.dw0 & 1) === 0;
  }

  #timedOut(q: HostQpair, cid: number, opcode: number): void {
    this.events.timeouts++;
    // A stuck admin command (or Abort itself) cannot be aborted through the admin queue: reset.
    if (q.qid === 0 || opcode === AdminOpcode.Abort) {
      void this.reset().catch(() => {});
      return;
    }
    void this.abort(q.qid, cid)
      .then(
        (aborted) => {
          if (!aborted) return this.reset();
        },
        () => this.reset(),
      )
      .catch(() => {});
  }

  /**
   * Grant an I/O qpair to be opened on another thread (`transport.openIoQpair(grant, ...)` there):
   * a queue ID no other qpair of this controller holds, and what the transport must set up first.
   * Give it back with `releaseIoQpair` once that qpair is closed. Owner thread only.
   */
  async grantIoQpair(o: { depth?: number; qid?: number } = {}): Promise<IoQpairGrant> {
    if (this.isDiscovery) throw new Error('a discovery controller has no I/O queues');
    if (this.#link === null) throw new Error('controller not connected');
    let qid = o.qid ?? 1;
    if (o.qid === undefined) while (this.#qids.has(qid)) qid++;
    this.#qids.add(qid);
    try {
      return await this.#link.grantIoQpair(
        {
          qid,
          depth: Math.min(o.depth ?? 128, this.maxQueueEntries),
          maxTransfer: this.maxTransferSize,
          timeoutMs: this.#opts.timeoutMs ?? 0,
          epoch: this.resets,
        },
        this.cdata,
      );
    } catch (e) {
      this.#qids.delete(qid);
      throw e;
    }
  }

  /** The qpair of a grant is closed: its queue ID (and whatever the transport made) is free again. */
  async releaseIoQpair(grant: IoQpairGrant): Promise<void> {
    if (grant.epoch !== this.resets || !this.#qids.has(grant.qid) || this.#releasing.has(grant)) return;
    // The queue ID stays taken until the transport has torn its queues down: a grant made in
    // between would create queues of the same ID that the controller still has (PCIe: Create I/O
    // CQ fails while the old CQ's Delete is in flight), and the revoke would free them.
    this.#releasing.add(grant);
    try {
      await this.#link?.revokeIoQpair(grant);
    } finally {
      this.#releasing.delete(grant);
      if (grant.epoch === this.resets) this.#qids.delete(grant.qid);
    }
  }

  /** Create and connect an I/O qpair on this thread (polled with processCompletions). */
  async allocIoQpair(o: IoQpairOptions = {}): Promise<HostQpair> {
    const grant = await this.grantIoQpair({ depth: o.depth });
    const opts = { ...o };
    if (opts.socket === 'native' && opts.sockHost === undefined)
      opts.sockHost = this.#sockHost ??= SockHost.ownerPolled({ name: 'nvme_ctrlr_sock_group' });
    let qp: HostQpair;
    try {
      qp = await this.transport.openIoQpair(grant, opts);
    } catch (e) {
      await this.releaseIoQpair(grant);
      throw e;
    }
    qp.onTimeout = (q, cid, op) => this.#timedOut(q, cid, op);
    qp.onFailure = () => this.#lost();
    this.ioQpairs.add(qp);
    this.#grants.set(qp, grant);
    return qp;
  }

  /** Largest transfer per command in bytes (from MDTS; 1 MiB when unlimited). */
  get maxTransferSize(): number {
    return this.cdata.mdts ? 4096 * 2 ** this.cdata.mdts : 1 << 20;
  }

  /** Disconnect an I/O qpair (fabrics: Disconnect), close it and release its queue. */
  async freeIoQpair(qp: HostQpair): Promise<void> {
    this.ioQpairs.delete(qp);
    await qp.disconnect();
    const g = this.#grants.get(qp);
    this.#grants.delete(qp);
    if (g !== undefined) await this.releaseIoQpair(g).catch(() => {});
  }

  /**
   * Controller reset: drop every queue (outstanding commands complete with Aborted - SQ Deletion),
   * connect a new admin queue and enable the controller again, then reconnect each I/O qpair in place.
   */
  reset(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('controller closed'));
    this.#resetting ??= this.#doReset().finally(() => {
      this.#resetting = null;
    });
    return this.#resetting;
  }

  async #doReset(): Promise<void> {
    this.resets++;
    if (this.#kaTimer) clearInterval(this.#kaTimer);
    for (const q of this.ioQpairs) q.close();
    // Grants die with the link (a new controller ID; PCIe: queues gone with CC.EN = 0).
    this.#qids.clear();
    const link = this.#link;
    if (link?.reset !== undefined && this.removed === null) {
      await link.reset();
      await this.#initLink(link);
    } else {
      link?.close();
      this.#link = null;
      if (this.removed !== null) throw this.removed;
      await this.#bringUp();
    }
    for (const q of this.ioQpairs) {
      const old = this.#grants.get(q)!;
      const g = await this.grantIoQpair({ depth: old.depth, qid: old.qid });
      this.#grants.set(q, g);
      await q.reconnect(g);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#kaTimer) clearInterval(this.#kaTimer);
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    for (const q of [...this.ioQpairs]) q.close();
    this.ioQpairs.clear();
    this.#grants.clear();
    const link = this.#link;
    if (link?.admin.connected) {
      // Shutdown notification; best effort.
      await link.setRegister(Reg.CC, CC.enabled | (CC.SHN_NORMAL << 14)).catch(() => {});
    }
    link?.close();
    this.#sockHost?.close();
    this.#sockHost = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The events to ask for (Set Features 0Bh). Over PCIe, as SPDK's nvme_ctrlr_configure_aer: the
 * SMART / Health critical warnings every controller reports (bits 4:0: spare, temperature,
 * reliability, read-only, volatile memory backup), namespace attribute notices (bit 8), and
 * firmware activation and ANA change notices when OAES offers them. On fabrics only namespace
 * attribute notices, as before and as the Linux host asks: the Linux target refuses critical
 * warning bits (Invalid Field), which SPDK's host ignores by going on without AERs. A SMART /
 * Health event stays masked by the controller until its log page is read (Get Log Page 02h
 * without RAE): that is the AER callback's business, as in SPDK.
 */
export function asyncEventConfig(cdata: IdentifyController, trtype: string): number {
  const NS_ATTRIBUTE = 1 << 8;
  if (trtype !== 'PCIe') return NS_ATTRIBUTE;
  const OAES_FW_ACTIVATION = 1 << 9;
  const OAES_ANA_CHANGE = 1 << 11;
  return (0x1f | NS_ATTRIBUTE | (cdata.oaes & (OAES_FW_ACTIVATION | OAES_ANA_CHANGE))) >>> 0;
}

/** Connect to a discovery controller, read its log, disconnect. */
export async function discover(
  trid: string | TransportId,
  o: ControllerOptions = {},
): Promise<DiscoveryEntry[]> {
  const t = typeof trid === 'string' ? parseTransportId(trid) : trid;
  const c = await NvmeController.connect({ ...t, subnqn: DISCOVERY_NQN }, o);
  try {
    return await c.discoveryLog();
  } finally {
    await c.close();
  }
}
