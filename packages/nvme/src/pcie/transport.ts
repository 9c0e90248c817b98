// NVMe over PCIe as an NvmeTransport (host/transport.ts): the controller is a PCI function
// opened through @storkit/native (VFIO, uio, or a device model); registers are BAR0; the admin
// queue and each I/O queue pair live in DMA memory the device reaches through the IOMMU. The
// controller's owner thread creates I/O queues (Create I/O CQ/SQ) when it grants a qpair; the
// qpair's owner attaches the same queue memory and BAR and polls it.
//
// The admin queue is polled by the link: back to back while a command other than an
// Asynchronous Event Request is outstanding, every 10 ms otherwise. The 10 ms tick also watches
// for the device going away (the kernel's request, CSTS reading all-ones) and for CSTS.CFS.
//
// The Controller Memory Buffer (CMBLOC/CMBSZ, NVMe 1.4 CMBMSC), as SPDK uses it: I/O submission
// queues there when asked (`pcie.cmbSqs`, SPDK's use_cmb_sqs) and what is left for data buffers
// (`mapCmb`, SPDK's spdk_nvme_ctrlr_map_cmb). The controller reaches its own buffer at an IO
// address like any other memory: through VFIO the BAR is mapped into the IOMMU and that IOVA is
// the Controller Base Address the controller is told (CMBMSC.CBA, then CMSE), so no DMA buffer can
// ever overlap it; through uio it is the BAR's bus address. An NVMe 1.2/1.3 CMB (no CAP.CMBS) is
// recognised only at its bus address, which an IOMMU does not give the device: used with uio only.

import type { Codes } from '@storkit/errors';
import {
  attachPciDevice,
  DmaRegion,
  type IoMap,
  type MappedRegion,
  MmioRegion,
  openPciDevice,
  PCI_CLASS_NVME,
  type PciDevice,
} from '@storkit/native';
import {
  AdminOpcode,
  type Capabilities,
  CC,
  CMBMSC,
  CMBSTS,
  type CmbInfo,
  CSTS,
  decodeCmb,
  encodeAqa,
  Feature,
  type IdentifyController,
  NvmeStatusError,
  Oacs,
  Reg,
  statusSc,
  statusSct,
} from '@storkit/nvme-spec';

import type { CommandSpec, Completion } from '../host/qpair.js';
import { HostQpairError } from '../host/qpair.js';
import type {
  ControllerLink,
  IoQpairGrant,
  IoQpairOptions,
  LinkOptions,
  NvmeTransport,
} from '../host/transport.js';
import type { PcieTransportId, TransportId } from '../host/trid.js';
import { ioAt, PAGE, SglSupport, sglSupportOf } from './data-pointer.js';
import {
  CtrlState,
  type PcieDeviceAccess,
  PcieQpair,
  type PcieQpairGrant,
  type PcieQpairSetup,
  type ShadowDoorbells,
} from './qpair.js';
import { pcieMaxTransfer, queueLayout } from './queue-memory.js';

/** PCIe-only controller options (ControllerOptions.pcie). */
export interface PcieOptions {
  /** Use the shadow doorbell buffer when the controller offers it (default true). */
  shadowDoorbells?: boolean;
  /** Use SGLs for I/O when the controller supports them (default true; false: PRPs always). */
  sgl?: boolean;
  /** Ring SQ doorbells once per poll rather than per command (default true). */
  delayDoorbell?: boolean;
  /**
   * Put I/O submission queues in the Controller Memory Buffer when it may hold them (CMBSZ.SQS)
   * and has room (default false, as SPDK's use_cmb_sqs); `PcieQpair.sqInCmb` says where each went.
   */
  cmbSqs?: boolean;
}

/** The Controller Memory Buffer as this driver uses it. */
interface CmbState {
  info: CmbInfo;
  /** The BAR holding it, and the IO address of that BAR's first byte. */
  bar: MmioRegion;
  barIo: number;
  /** The whole BAR as IO pages (data pointers to CMB buffers are built from it). */
  map: IoMap;
  /** Submission queues in the CMB: qid -> [offset in the CMB, bytes]. */
  sqs: Map<number, [number, number]>;
  /** Offset in the CMB where the data area handed out by mapCmb starts; null while none is. */
  dataFrom: number | null;
}

const TWO32 = 0x1_0000_0000;
const ADMIN_TICK_MS = 10;
/** Admin commands carry at most this much data (identify, log pages). */
const ADMIN_MAX_TRANSFER = 128 * 1024;

/** The admin queue: kicks its link's poller whenever a command is submitted. */
class AdminQpair extends PcieQpair {
  kick: (() => void) | null = null;
  /** Commands other than AERs outstanding: the poller spins while there are any. */
  pending = 0;

  override submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean {
    if (c.opcode === AdminOpcode.AsyncEventRequest) return super.submit(c, cb, ctx);
    const ok = super.submit(
      c,
      (x: C, status, dw0, dw1) => {
        this.pending--;
        cb(x, status, dw0, dw1);
      },
      ctx,
    );
    if (ok) {
      this.pending++;
      this.kick?.();
    }
    return ok;
  }
}

class PcieLink implements ControllerLink {
  readonly admin: AdminQpair;
  cntlid = 0;
  readonly #dev: PciDevice;
  readonly #o: LinkOptions & { pcie?: PcieOptions };
  readonly #queues: DmaRegion;
  /** Controller state words (a native shared region: grants carry its handle, any worker attaches it). */
  #state: MmioRegion;
  #words: Int32Array;
  #dstrd = 0;
  #cap: Capabilities | null = null;
  #shadow: DmaRegion | null = null;
  #shadowOn = false;
  #ioQueuesAllowed = 0;
  #configured = false;
  readonly #grants = new Map<number, DmaRegion>();
  #tick: NodeJS.Timeout | undefined;
  #cmb: CmbState | null = null;
  /** Why there is no CMB to use ('' until looked for). */
  #cmbWhyNot = '';
  #spinning = false;
  #closed = false;
  onRemoved: ((err: Error) => void) | null = null;

  constructor(dev: PciDevice, o: LinkOptions & { pcie?: PcieOptions }) {
    this.#dev = dev;
    this.#o = o;
    dev.enableBusMaster();
    const bar = dev.bar(0);
    const capHi = bar.read32(Reg.CAP + 4);
    this.#dstrd = capHi & 0xf;
    this.#state = MmioRegion.createShared(4096);
    this.#words = new Int32Array(this.#state.buffer, 0, CtrlState.WORDS);
    const depth = Math.max(2, Math.min(o.adminDepth, 4095));
    const layout = queueLayout(depth, ADMIN_MAX_TRANSFER);
    this.#queues = DmaRegion.create(layout.bytes, { hugepages: dev.kind === 'uio' ? 'require' : 'auto' });
    this.admin = new AdminQpair(
      this.#setup(0, depth, this.#queues, layout, SglSupport.None, ADMIN_MAX_TRANSFER, false, null),
    );
    this.admin.kick = () => this.#spin();
    this.#tick = setInterval(() => this.#watch(), ADMIN_TICK_MS);
    this.#tick.unref();
  }

  #setup(
    qid: number,
    depth: number,
    queues: DmaRegion,
    layout: ReturnType<typeof queueLayout>,
    sgl: SglSupport,
    maxTransfer: number,
    delayDoorbell: boolean,
    shadow: ShadowDoorbells | null,
  ): PcieQpairSetup {
    return {
      qid,
      depth,
      device: this.#dev,
      queues,
      layout,
      dstrd: this.#dstrd,
      shadow,
      state: this.#words,
      epoch: this.#words[CtrlState.EPOCH],
      sgl,
      maxTransfer,
      timeoutMs: qid === 0 ? this.#o.timeoutMs : 0,
      delayDoorbell,
      hugepages: this.#dev.kind === 'uio' ? 'require' : 'auto',
      cmbOf: (r) => (this.#cmb !== null && r.handle === this.#cmb.bar.handle ? this.#cmb.map : null),
    };
  }

  // Poll the admin queue back to back while a command is waiting for its answer.
  #spin(): void {
    if (this.#spinning) return;
    this.#spinning = true;
    const loop = (): void => {
      if (this.#closed || this.admin.pending <= 0 || !this.admin.connected) {
        this.#spinning = false;
        return;
      }
      this.admin.processCompletions();
      setImmediate(loop);
    };
    setImmediate(loop);
  }

  #watch(): void {
    if (this.#closed) return;
    if (this.admin.connected) this.admin.processCompletions();
    let csts = 0;
    let gone = false;
    try {
      gone = this.#dev.removed();
      csts = this.#dev.bar(0).read32(Reg.CSTS);
    } catch {
      gone = true;
    }
    if (gone || csts === 0xffffffff) {
      this.#removed(new HostQpairError('ENOTCONN', `${this.#dev.address}: the controller was removed`));
    } else if ((csts & CSTS.CFS) !== 0 && this.admin.connected) {
      this.#fail(new HostQpairError('EPROTO', `${this.#dev.address}: controller fatal status (CSTS.CFS)`));
    }
  }

  /** Mark every qpair of this controller dead (the epoch moves on) and fail the admin queue. */
  #fail(err: Error): void {
    Atomics.add(this.#words, CtrlState.EPOCH, 1);
    this.admin.failNow(err);
  }

  #removed(err: Error): void {
    if (Atomics.load(this.#words, CtrlState.FAILED) !== 0) return;
    Atomics.store(this.#words, CtrlState.FAILED, 1);
    this.#fail(err);
    this.onRemoved?.(err);
  }

  get address(): string {
    return this.#dev.address;
  }

  get pciId(): { vendor: number; device: number } {
    return { vendor: this.#dev.vendor, device: this.#dev.device };
  }

  async getRegister(ofst: number, size: 4 | 8): Promise<[number, number]> {
    const bar = this.#dev.bar(0);
    return [bar.read32(ofst), size === 8 ? bar.read32(ofst + 4) : 0];
  }

  async setRegister(ofst: number, value: number): Promise<void> {
    this.#dev.bar(0).write32(ofst, value >>> 0);
    if (ofst === Reg.CC && CC.shn(value) !== 0) await this.#waitShutdown();
  }

  // Shutdown notification: wait for CSTS.SHST = complete (at most CAP.TO, bounded).
  async #waitShutdown(): Promise<void> {
    const bar = this.#dev.bar(0);
    const deadline = Date.now() + Math.min(Math.max(this.#cap?.timeout ?? 10, 1) * 500, 10_000);
    while (Date.now() < deadline) {
      const csts = bar.read32(Reg.CSTS);
      if (csts === 0xffffffff || (csts & 0xc) === CSTS.SHST_COMPLETE) return;
      await sleep(1);
    }
  }

  async #waitReady(ready: boolean, cap: Capabilities): Promise<void> {
    const bar = this.#dev.bar(0);
    const deadline = Date.now() + Math.max(cap.timeout, 1) * 500;
    for (;;) {
      const csts = bar.read32(Reg.CSTS);
      if (csts === 0xffffffff)
        throw new NvmeLinkError(
          'ENODEV',
          `${this.#dev.address}: the controller is gone (CSTS reads all-ones)`,
        );
      if (ready && (csts & CSTS.CFS) !== 0)
        throw new NvmeLinkError('EIO', `${this.#dev.address}: controller fatal status while enabling`);
      if (((csts & CSTS.RDY) !== 0) === ready) return;
      if (Date.now() > deadline) {
        throw new NvmeLinkError(
          'ETIMEDOUT',
          `${this.#dev.address}: CSTS.RDY did not become ${ready ? 1 : 0} within CAP.TO (${cap.timeout * 500} ms)`,
        );
      }
      await sleep(1);
    }
  }

  /** Disable, program the admin queue, enable, wait for ready (NVMe Base 2.0 §3.5.1). */
  async enable(cap: Capabilities): Promise<void> {
    this.#cap = cap;
    if ((cap.css & 1) === 0)
      throw new NvmeLinkError('ENOTSUP', `${this.#dev.address} does not support the NVM command set`);
    if (cap.mpsmin > 0)
      throw new NvmeLinkError('ENOTSUP', `${this.#dev.address} needs pages of ${4096 << cap.mpsmin} bytes`);
    const bar = this.#dev.bar(0);
    if ((bar.read32(Reg.CC) & CC.EN) !== 0) {
      bar.write32(Reg.CC, bar.read32(Reg.CC) & ~CC.EN);
    }
    await this.#waitReady(false, cap);
    const depth = this.admin.depth;
    if (depth + 1 > cap.maxQueueEntries) throw new NvmeLinkError('EINVAL', `admin queue of ${depth} > MQES`);
    const L = this.admin.setup.layout;
    this.admin.reopen(
      this.#setup(0, depth, this.#queues, L, SglSupport.None, ADMIN_MAX_TRANSFER, false, null),
    );
    const map = this.#dev.dmaMap(this.#queues);
    bar.write32(Reg.AQA, encodeAqa(L.entries, L.entries));
    write64(bar, Reg.ASQ, ioAt(map, L.sqOffset));
    write64(bar, Reg.ACQ, ioAt(map, L.cqOffset));
    // NVM command set, 4 KiB pages, round robin, 64-byte SQEs and 16-byte CQEs.
    bar.write32(Reg.CC, CC.enabled);
    await this.#waitReady(true, cap);
    this.#configured = false;
    this.#cmbProgram();
  }

  /**
   * Find the Controller Memory Buffer and tell the controller where it is (once; null with the
   * reason in #cmbWhyNot when there is none to use).
   */
  #cmbProbe(): CmbState | null {
    if (this.#cmb !== null || this.#cmbWhyNot !== '') return this.#cmb;
    const cap = this.#cap as Capabilities;
    const bar0 = this.#dev.bar(0);
    // NVMe 1.4: CMBLOC and CMBSZ read zero until CRE is set.
    if (cap.cmbs) bar0.write32(Reg.CMBMSC, CMBMSC.CRE);
    const info = decodeCmb(bar0.read32(Reg.CMBLOC), bar0.read32(Reg.CMBSZ));
    const none = (why: string): null => {
      this.#cmbWhyNot = why;
      if (cap.cmbs) bar0.write32(Reg.CMBMSC, 0);
      return null;
    };
    if (info.size === 0) return none('the controller has no memory buffer (CMBSZ.SZ is 0)');
    if (info.bir === 1 || info.bir > 5) return none(`CMBLOC.BIR ${info.bir} names no memory BAR`);
    if (this.#dev.barIoAddress === undefined)
      return none(`a ${this.#dev.kind} device cannot reach its own BAR by an IO address`);
    if (!cap.cmbs && this.#dev.kind === 'vfio')
      return none('an NVMe 1.3 memory buffer is recognised only at its bus address, which the IOMMU hides');
    let bar: MmioRegion;
    let barIo: number;
    try {
      bar = this.#dev.bar(info.bir);
      if (info.offset + info.size > bar.size)
        return none(`CMBLOC/CMBSZ reach past the end of BAR${info.bir} (${bar.size} bytes)`);
      barIo = this.#dev.barIoAddress(info.bir);
    } catch (e) {
      return none(`BAR${info.bir}: ${(e as Error).message}`);
    }
    const n = Math.ceil(bar.size / PAGE);
    const pages = new Float64Array(n);
    for (let i = 0; i < n; i++) pages[i] = barIo + i * PAGE;
    this.#cmb = {
      info,
      bar,
      barIo,
      map: {
        space: this.#dev.kind === 'vfio' ? 'iova' : 'physical',
        pageSize: PAGE,
        pages,
        contiguous: true,
      },
      sqs: new Map(),
      dataFrom: null,
    };
    this.#cmbProgram();
    if (cap.cmbs && (bar0.read32(Reg.CMBSTS) & CMBSTS.CBAI) !== 0) {
      this.#cmb = null;
      return none(
        `the controller refused base address 0x${(barIo + info.offset).toString(16)} (CMBSTS.CBAI)`,
      );
    }
    return this.#cmb;
  }

  /** NVMe 1.4: the CMB's IO address as CMBMSC.CBA, with CRE and CMSE (again after a reset). */
  #cmbProgram(): void {
    const c = this.#cmb;
    if (c === null || !this.#cap?.cmbs) return;
    const cba = c.barIo + c.info.offset;
    const lo = ((cba % TWO32) | CMBMSC.CRE | CMBMSC.CMSE) >>> 0;
    const hi = Math.floor(cba / TWO32);
    const bar0 = this.#dev.bar(0);
    // The high dword first, then all 64 bits in one write: QEMU 7.2 takes CBA from the value of
    // the write that sets CMSE, so a 32-bit write of the low dword would lose CBA's high bits.
    bar0.write32(Reg.CMBMSC + 4, hi);
    bar0.write64(Reg.CMBMSC, (BigInt(hi) << 32n) | BigInt(lo));
  }

  /** The IO address of the CMB's first byte (what Create I/O SQ and data pointers carry). */
  #cmbIo(c: CmbState): number {
    return c.barIo + c.info.offset;
  }

  /**
   * SPDK's spdk_nvme_ctrlr_map_cmb: the part of the CMB no submission queue holds, for data
   * buffers (read and write data must both be allowed there). Commands whose buffer lies in it
   * point the controller at its own memory; nothing is copied. Once mapped, no further
   * submission queue goes to the CMB.
   */
  mapCmb(): Uint8Array {
    const c = this.#cmbProbe();
    if (c === null)
      throw new NvmeLinkError(
        'ENOTSUP',
        `${this.#dev.address}: no controller memory buffer: ${this.#cmbWhyNot}`,
      );
    if (!c.info.rds || !c.info.wds)
      throw new NvmeLinkError(
        'ENOTSUP',
        `${this.#dev.address}: the controller memory buffer may not hold read and write data (CMBSZ.RDS/WDS)`,
      );
    if (c.dataFrom === null) {
      let end = 0;
      for (const [off, len] of c.sqs.values()) end = Math.max(end, off + len);
      c.dataFrom = end;
    }
    if (c.dataFrom >= c.info.size)
      throw new NvmeLinkError(
        'ENOSPC',
        `${this.#dev.address}: submission queues fill the controller memory buffer`,
      );
    const at = c.info.offset + c.dataFrom;
    return c.bar.bytes.subarray(at, c.info.offset + c.info.size);
  }

  /** Give the data area back (SPDK's spdk_nvme_ctrlr_unmap_cmb); submission queues may go there again. */
  unmapCmb(): void {
    if (this.#cmb !== null) this.#cmb.dataFrom = null;
  }

  /** Room for `bytes` of submission queue in the CMB (page aligned, first fit), or -1. */
  #cmbSqAlloc(qid: number, bytes: number): number {
    const c = this.#cmbProbe();
    if (c === null || !c.info.sqs || c.dataFrom !== null) return -1;
    const taken = [...c.sqs.values()].sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [off, len] of taken) {
      if (at + bytes <= off) break;
      at = Math.max(at, off + len);
    }
    if (at + bytes > c.info.size) return -1;
    c.sqs.set(qid, [at, bytes]);
    return at;
  }

  #command(spec: CommandSpec, what: string): Promise<[number, number]> {
    return new Promise((resolve, reject) => {
      const ok = this.admin.submit(
        spec,
        (_c, status, dw0, dw1) => {
          if (status === 0) resolve([dw0, dw1]);
          else
            reject(
              new NvmeStatusError(
                status,
                `${what} failed: sct ${statusSct(status)} sc 0x${statusSc(status).toString(16)}`,
              ),
            );
        },
        undefined,
      );
      if (!ok) reject(this.admin.failed ?? new Error('admin queue full'));
    });
  }

  // Once per enable: how many I/O queues we may create, and the shadow doorbells if offered.
  async #configure(cdata: IdentifyController): Promise<void> {
    if (this.#configured) return;
    const [dw0] = await this.#command(
      { opcode: AdminOpcode.SetFeatures, cdw10: Feature.NumberOfQueues, cdw11: 0xfffefffe },
      'Set Features Number of Queues',
    );
    this.#ioQueuesAllowed = Math.min((dw0 & 0xffff) + 1, (dw0 >>> 16) + 1);
    this.#shadowOn = false;
    if ((this.#o.pcie?.shadowDoorbells ?? true) && ((cdata.oacs ?? 0) & Oacs.DoorbellBufferConfig) !== 0) {
      this.#shadow ??= DmaRegion.create(2 * PAGE, {
        hugepages: this.#dev.kind === 'uio' ? 'require' : 'auto',
      });
      this.#shadow.bytes.fill(0, 0, 2 * PAGE);
      const map = this.#dev.dmaMap(this.#shadow);
      const db = ioAt(map, 0);
      const ei = ioAt(map, PAGE);
      await this.#command(
        {
          opcode: AdminOpcode.DoorbellBufferConfig,
          fill: (dv, s) => {
            put64(dv, s + 24, db);
            put64(dv, s + 32, ei);
          },
        },
        'Doorbell Buffer Config',
      );
      this.#shadowOn = true;
    }
    this.#configured = true;
  }

  /** Whether I/O queues use the shadow doorbell buffer. */
  get shadowDoorbells(): boolean {
    return this.#shadowOn;
  }

  async grantIoQpair(base: Omit<IoQpairGrant, 'trtype'>, cdata: IdentifyController): Promise<IoQpairGrant> {
    await this.#configure(cdata);
    if (base.qid > this.#ioQueuesAllowed) {
      throw new NvmeLinkError(
        'ENOSPC',
        `${this.#dev.address} allows ${this.#ioQueuesAllowed} I/O queues, qid ${base.qid} asked for`,
      );
    }
    const cap = this.#cap as Capabilities;
    const depth = Math.max(1, Math.min(base.depth, cap.maxQueueEntries - 1));
    const maxTransfer = pcieMaxTransfer(base.maxTransfer);
    const layout = queueLayout(depth, maxTransfer);
    if (this.#shadowOn && this.#shadow !== null) {
      // A queue ID used before (a channel closed, another opened) still has its old tail, head
      // and EventIdx in the shadow buffer: a new queue starts at 0, and a controller reading the
      // old tail would run stale entries of the new, empty SQ. No queue of this ID exists now.
      const words = new Uint32Array(this.#shadow.bytes.buffer, this.#shadow.bytes.byteOffset, (2 * PAGE) / 4);
      const stride = 1 << this.#dstrd;
      for (const page of [0, PAGE / 4]) {
        Atomics.store(words, page + 2 * base.qid * stride, 0); // SQ tail / its EventIdx
        Atomics.store(words, page + (2 * base.qid + 1) * stride, 0); // CQ head / its EventIdx
      }
    }
    const sqBytes = layout.cqOffset - layout.sqOffset;
    const sqCmb = (this.#o.pcie?.cmbSqs ?? false) ? this.#cmbSqAlloc(base.qid, sqBytes) : -1;
    const queues = DmaRegion.create(layout.bytes, {
      hugepages: this.#dev.kind === 'uio' ? 'require' : 'auto',
    });
    try {
      const map: IoMap = this.#dev.dmaMap(queues);
      const sqIo =
        sqCmb >= 0 && this.#cmb !== null ? this.#cmbIo(this.#cmb) + sqCmb : ioAt(map, layout.sqOffset);
      const qsize = ((layout.entries - 1) << 16) >>> 0;
      await this.#command(
        {
          opcode: AdminOpcode.CreateIoCq,
          cdw10: (base.qid | qsize) >>> 0,
          cdw11: 1,
          fill: prp1(ioAt(map, layout.cqOffset)),
        },
        `Create I/O CQ ${base.qid}`,
      );
      try {
        await this.#command(
          {
            opcode: AdminOpcode.CreateIoSq,
            cdw10: (base.qid | qsize) >>> 0,
            cdw11: (1 | (base.qid << 16)) >>> 0,
            fill: prp1(sqIo),
          },
          `Create I/O SQ ${base.qid}`,
        );
      } catch (e) {
        await this.#command({ opcode: AdminOpcode.DeleteIoCq, cdw10: base.qid }, 'Delete I/O CQ').catch(
          () => {},
        );
        throw e;
      }
    } catch (e) {
      queues.close();
      this.#cmb?.sqs.delete(base.qid);
      throw e;
    }
    this.#grants.set(base.qid, queues);
    const cmb = this.#cmb;
    const sgl = (this.#o.pcie?.sgl ?? true) ? sglSupportOf(cdata.sgls) : SglSupport.None;
    const g: PcieQpairGrant = {
      ...base,
      depth,
      maxTransfer,
      trtype: 'PCIe',
      address: this.#dev.address,
      device: this.#dev.share(),
      queues: queues.handle,
      layout,
      dstrd: this.#dstrd,
      shadow:
        this.#shadowOn && this.#shadow !== null
          ? { region: this.#shadow.handle, dbOffset: 0, eiOffset: PAGE }
          : null,
      state: this.#state.handle,
      sgl,
      delayDoorbell: this.#o.pcie?.delayDoorbell ?? true,
      cmb: cmb !== null ? { bir: cmb.info.bir, barIo: cmb.barIo } : null,
      sqCmbOffset: sqCmb >= 0 && cmb !== null ? cmb.info.offset + sqCmb : null,
    };
    return g;
  }

  async revokeIoQpair(grant: IoQpairGrant): Promise<void> {
    const queues = this.#grants.get(grant.qid);
    if (queues === undefined) return;
    this.#grants.delete(grant.qid);
    this.#cmb?.sqs.delete(grant.qid);
    try {
      if (this.admin.connected) {
        await this.#command(
          { opcode: AdminOpcode.DeleteIoSq, cdw10: grant.qid },
          `Delete I/O SQ ${grant.qid}`,
        );
        await this.#command(
          { opcode: AdminOpcode.DeleteIoCq, cdw10: grant.qid },
          `Delete I/O CQ ${grant.qid}`,
        );
      }
    } finally {
      queues.close();
    }
  }

  /**
   * Reset in place: disable the controller (its queues are gone), move the epoch on so every
   * qpair of the old one fails its commands, and keep the device open for `enable`.
   */
  async reset(): Promise<void> {
    Atomics.add(this.#words, CtrlState.EPOCH, 1);
    this.admin.failNow(new HostQpairError('ENOTCONN', 'controller reset'));
    for (const q of this.#grants.values()) q.close();
    this.#grants.clear();
    this.#cmb?.sqs.clear();
    this.#configured = false;
    // Fresh state words for the new epoch: old qpairs keep watching the old ones (their views
    // keep the memory), which say dead.
    this.#state.close();
    this.#state = MmioRegion.createShared(4096);
    this.#words = new Int32Array(this.#state.buffer, 0, CtrlState.WORDS);
    const bar = this.#dev.bar(0);
    if (this.#cap !== null && bar.read32(Reg.CSTS) !== 0xffffffff) {
      bar.write32(Reg.CC, bar.read32(Reg.CC) & ~CC.EN);
      await this.#waitReady(false, this.#cap);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#tick);
    // The CMB's address was ours (an IOVA of this process): the controller forgets it.
    if (this.#cmb !== null && this.#cap?.cmbs && Atomics.load(this.#words, CtrlState.FAILED) === 0) {
      try {
        this.#dev.bar(0).write64(Reg.CMBMSC, 0n);
      } catch {}
    }
    Atomics.add(this.#words, CtrlState.EPOCH, 1);
    Atomics.store(this.#words, CtrlState.FAILED, 1);
    this.#state.close();
    this.admin.close();
    for (const q of this.#grants.values()) q.close();
    this.#grants.clear();
    this.#queues.close();
    this.#shadow?.close();
    this.#dev.close();
  }
}

/** A PCIe link error: no controller there or it does not answer (ENODEV, ETIMEDOUT, EIO), a feature it lacks (ENOTSUP), a bad parameter (EINVAL, ENOSPC). */
export type NvmeLinkErrorCode = Codes<'ENODEV' | 'ETIMEDOUT' | 'EIO' | 'ENOTSUP' | 'EINVAL' | 'ENOSPC'>;

export class NvmeLinkError extends Error {
  override name = 'NvmeLinkError';
  readonly code: NvmeLinkErrorCode;
  constructor(code: NvmeLinkErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function put64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x1_0000_0000), true);
}

function write64(bar: { write32(o: number, v: number): void }, off: number, v: number): void {
  bar.write32(off, v >>> 0);
  bar.write32(off + 4, Math.floor(v / 0x1_0000_0000));
}

const prp1 =
  (io: number) =>
  (dv: DataView, s: number): void =>
    put64(dv, s + 24, io);

/** Build a qpair's setup from a grant, in the thread that will own the qpair. */
function setupFromGrant(g: PcieQpairGrant): PcieQpairSetup {
  const access = attachPciDevice(g.device);
  const queues = DmaRegion.attach(g.queues);
  const shadowRegion = g.shadow !== null ? DmaRegion.attach(g.shadow.region) : null;
  const state = MmioRegion.attach(g.state);
  const device: PcieDeviceAccess = { bar: (i) => access.bar(i), dmaMap: (r) => access.dmaMap(r) };
  // The CMB as this thread sees it: the same BAR (attached here), the same IO addresses.
  let cmbBar: MmioRegion | null = null;
  let cmbMap: IoMap | null = null;
  if (g.cmb !== null) {
    cmbBar = access.bar(g.cmb.bir);
    const n = Math.ceil(cmbBar.size / PAGE);
    const pages = new Float64Array(n);
    for (let i = 0; i < n; i++) pages[i] = g.cmb.barIo + i * PAGE;
    cmbMap = {
      space: g.device.kind === 'vfio' ? 'iova' : 'physical',
      pageSize: PAGE,
      pages,
      contiguous: true,
    };
  }
  const setup: PcieQpairSetup = {
    qid: g.qid,
    depth: g.depth,
    device,
    queues,
    layout: g.layout,
    dstrd: g.dstrd,
    shadow:
      shadowRegion !== null && g.shadow !== null
        ? { region: shadowRegion, dbOffset: g.shadow.dbOffset, eiOffset: g.shadow.eiOffset }
        : null,
    state: new Int32Array(state.buffer, 0, CtrlState.WORDS),
    epoch: g.epoch,
    sgl: g.sgl,
    maxTransfer: g.maxTransfer,
    timeoutMs: g.timeoutMs,
    delayDoorbell: g.delayDoorbell,
    hugepages: g.device.kind === 'uio' ? 'require' : 'auto',
    sqCmb: g.sqCmbOffset !== null && cmbBar !== null ? { bar: cmbBar, offset: g.sqCmbOffset } : null,
    // By handle: on the controller's thread the caller's buffers are views of the link's own BAR mapping.
    cmbOf: (r: MappedRegion) => (cmbBar !== null && r.handle === cmbBar.handle ? cmbMap : null),
  };
  // The grant's epoch is the controller's reset count; the state words count from their own
  // start: what the qpair checks is that the words have not moved since it attached.
  setup.epoch = setup.state[CtrlState.EPOCH];
  setup.release = (): void => {
    state.close();
    queues.close();
    shadowRegion?.close();
    access.close();
  };
  return setup;
}

export const pcieTransport: NvmeTransport = {
  trtype: 'PCIe',

  async connect(trid: TransportId, o: LinkOptions): Promise<ControllerLink> {
    if (trid.trtype !== 'PCIe') throw new RangeError(`not a PCIe transport ID: ${trid.trtype}`);
    const t = trid as PcieTransportId;
    const dev = openPciDevice(t.traddr, { classCode: PCI_CLASS_NVME, what: 'an NVMe controller' });
    try {
      return new PcieLink(dev, o);
    } catch (e) {
      dev.close();
      throw e;
    }
  },

  async openIoQpair(grant: IoQpairGrant, _o: IoQpairOptions): Promise<PcieQpair> {
    const g = grant as PcieQpairGrant;
    const qp = new PcieQpair(setupFromGrant(g));
    qp.setupFrom = (ng) => setupFromGrant(ng as PcieQpairGrant);
    return qp;
  },
};
