// The nvme bdev module (SPDK's bdev_nvme): a controller's namespaces as bdevs `<name>n<nsid>`, so
// any target can re-export them. The controller (admin queue, keep alive) lives on the reactor that
// attached it; every thread that opens a channel gets its own I/O qpair of that controller (one per
// reactor in the app), polled by a poller on that thread: the channel asks the attaching reactor
// for a grant (host/transport.ts: a queue ID, and whatever only the admin queue can set up) and
// opens the qpair from it. NVMe/TCP qpairs join their thread's native socket group, served by
// its poller. Other reactors register the same bdevs from the attaching reactor's replay
// (namespace geometry), without a controller of their own.
//
// Losing the connection (SPDK's bdev_nvme reset path): a channel whose qpair fails queues its I/O
// (those in flight come back as ABORTED - SQ DELETION and are retried, up to RETRY_COUNT times),
// asks the attaching reactor to reset the controller, which reconnects the admin queue (a new
// controller ID), then tells every reactor; each channel reconnects its own qpair with the new ID
// and resubmits. ctrlr_loss_timeout_sec, reconnect_delay_sec and fast_io_fail_timeout_sec keep
// SPDK's meanings.
//
// PCIe controllers (trtype PCIe, traddr a PCI address) attach the same way: their qpairs are queue
// memory every reactor maps. A PCIe controller that goes away (hot remove) fails its I/O and
// detaches itself on every reactor, so its bdevs are unregistered (SPDK's remove callback).
import { type AccelChannel, accelGetIoChannel, accelStarted } from '@storkit/accel';
import {
  type Bdev,
  BdevError,
  type BdevIo,
  type BdevModule,
  bdevGetByName,
  bdevIoComplete,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  IoStatus,
  IoType,
} from '@storkit/bdev/module';
import { registerConfigMethod } from '@storkit/bdev/perf';
import {
  AdminOpcode,
  bytesToUuid,
  GenericStatus,
  type IdentifyNamespace,
  MediaStatus,
  makeStatus,
  type NamespaceDescriptors,
  Oncs,
  Sct,
} from '@storkit/nvme-spec';
import {
  codec,
  defineHandler,
  getIoChannel,
  getThread,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  reactorCount,
  reactorIndex,
  reactorThread,
  registerPoller,
  SockHost,
  send,
  type Thread,
} from '@storkit/reactor';
import { NvmeController } from '../host/controller.js';
import type { CommandSpec, Completion, HostQpair } from '../host/qpair.js';
import { getTransport, type IoQpairGrant } from '../host/transport.js';
import { parseTransportId, type TransportId, type TrType } from '../host/trid.js';

/**
 * A namespace's UUID as SPDK's bdev_nvme takes it (its Namespace Identification Descriptor of type
 * UUID); without one SPDK leaves the bdev's UUID unset, which storkit's bdevs cannot be, so a
 * namespace with an NGUID (16 bytes too) takes that; '' when it has neither (the bdev layer
 * then makes one up).
 */
export function namespaceUuid(id: IdentifyNamespace, desc: NamespaceDescriptors): string {
  if (desc.uuid?.some((b) => b !== 0)) return bytesToUuid(desc.uuid);
  const nguid = desc.nguid ?? id.nguid;
  if (nguid?.some((b) => b !== 0)) return bytesToUuid(nguid);
  return '';
}

export const nvmeModule: BdevModule = { name: 'nvme' };
bdevModuleRegister(nvmeModule);

/** bdev_nvme_attach_controller params (SPDK names; TCP and PCIe). */
export interface NvmeAttachParams {
  name: string;
  trtype: string;
  traddr: string;
  adrfam?: string;
  trsvcid?: string;
  subnqn?: string;
  hostnqn?: string;
  hdgst?: boolean;
  ddgst?: boolean;
  /** Keep trying to reconnect this long after the connection is lost (-1 = forever, 0 = one reset). */
  ctrlr_loss_timeout_sec?: number;
  /** Between reconnect attempts. */
  reconnect_delay_sec?: number;
  /** Fail queued and new I/O once the controller has been unreachable this long (0 = never). */
  fast_io_fail_timeout_sec?: number;
  /** TCP: the source address and port of every connection (bound before connecting). */
  hostaddr?: string;
  hostsvcid?: string;
  /** TCP: SO_PRIORITY of every connection, as SPDK takes it (a decimal string). */
  priority?: string;
}

/** What the attaching reactor hands the others so they register the same bdevs. */
export interface NvmeAttachReplay {
  params: NvmeAttachParams;
  /** The transport (from params.trtype, spelled as registered). */
  trtype: TrType;
  /** The controller ID (as of the last reset). */
  cntlid: number;
  hostnqn: string;
  /** Entries of each channel's I/O qpair. */
  depth: number;
  maxTransfer: number;
  /** Identify Controller fields bdev_get_bdevs shows (SPDK's driver_specific.nvme[].ctrlr_data). */
  ctrlrData: {
    vid: number;
    modelNumber: string;
    serialNumber: string;
    firmwareRevision: string;
    subnqn: string;
    oacs: number;
    cmic: number;
  };
  /** The controller's NVMe version (VS), e.g. '1.3'. */
  version: string;
  /**
   * Active namespaces. `uuid` is the namespace's own (its UUID descriptor, as SPDK's bdev_nvme
   * takes it; else its NGUID's 16 bytes), '' when it has neither; `nmic` its sharing capabilities,
   * `noiob` its optimal I/O boundary (blocks, 0: none).
   */
  namespaces: {
    nsid: number;
    blockSize: number;
    numBlocks: number;
    uuid: string;
    nmic: number;
    noiob: number;
  }[];
  /** Identify Controller ONCS, FUSES and VWC: which I/O types the bdevs take. */
  oncs: number;
  fuses: number;
  vwc: number;
  /** The reactor holding the controller (its admin queue), -1 outside reactor workers. */
  owner: number;
}

const QUEUE_DEPTH = 128;
const S_MISCOMPARE = makeStatus(Sct.Media, MediaStatus.CompareFailure);

/** Times an I/O is resubmitted after its qpair went away (SPDK's bdev_retry_count default). */
const RETRY_COUNT = 3;
/** A channel that cannot connect this many times after successful controller resets gives up. */
const MAX_CONNECT_FAILURES = 3;
const S_SQ_DELETED = makeStatus(Sct.Generic, GenericStatus.AbortedSqDeletion);
const S_ABORTED_BY_REQUEST = makeStatus(Sct.Generic, GenericStatus.AbortedByRequest);
const S_INVALID_FIELD = makeStatus(Sct.Generic, GenericStatus.InvalidField, true);

enum Ch {
  Connecting,
  Ready,
  /** The qpair is gone; I/O queues until the controller is reset and the qpair reconnected. */
  Resetting,
  /** Given up (controller loss timeout, fast I/O fail, or destroyed): I/O fails at once. */
  Failed,
}

interface ChannelCtx {
  /** The I/O qpair (null until the first one connected). */
  qp: HostQpair | null;
  /** What `qp` was opened from, to give back to the controller when it closes. */
  grant: IoQpairGrant | null;
  thread: Thread;
  poller: Poller;
  state: Ch;
  destroyed: boolean;
  connectFailures: number;
  /** I/O waiting for the qpair (connecting or reconnecting). */
  pending: BdevIo[];
  /** The thread's accel channel, when the framework runs: the qpairs' data digests go through it. */
  accel: IoChannel<AccelChannel> | null;
}

/** Per pooled bdev_io: where it was submitted and how often it was retried. */
interface IoCtx {
  ch: ChannelCtx | null;
  retries: number;
}

enum CtrlrState {
  Enabled,
  Resetting,
  Failed,
}
const STATE_NAMES = ['enabled', 'resetting', 'failed'];

class NvmeCtrlr {
  readonly name: string;
  readonly replay: NvmeAttachReplay;
  readonly controller: NvmeController | null;
  readonly bdevs: Bdev[] = [];
  readonly device: object;
  readonly channels = new Set<ChannelCtx>();
  state = CtrlrState.Enabled;
  /** Controller resets done (attaching reactor only). */
  resets = 0;
  closed = false;
  #lostSince = 0;
  #resetting = false;
  #timer: NodeJS.Timeout | undefined;
  #fastFailTimer: NodeJS.Timeout | undefined;
  /** bdev RESETs waiting for the controller to be back (each with the thread to complete it on). */
  readonly #resetIos: { io: BdevIo; thread: Thread }[] = [];

  constructor(replay: NvmeAttachReplay, controller: NvmeController | null) {
    this.name = replay.params.name;
    this.replay = replay;
    this.controller = controller;
    this.device = { nvme: this.name };
    ioDeviceRegister(this.device, {
      name: `nvme_${this.name}`,
      create: () => this.#createChannel(),
      destroy: (ch) => this.#destroyChannel(ch.ctx as ChannelCtx),
    });
  }

  #createChannel(): ChannelCtx {
    const thread = getThread()!;
    const ctx: ChannelCtx = {
      qp: null,
      grant: null,
      thread,
      poller: null as unknown as Poller,
      state: Ch.Connecting,
      destroyed: false,
      connectFailures: 0,
      pending: [],
      accel: accelStarted() ? accelGetIoChannel() : null,
    };
    threadSockHost(thread, +1);
    ctx.poller = registerPoller(
      () => (ctx.qp !== null && ctx.qp.processCompletions() > 0 ? POLLER_BUSY : POLLER_IDLE),
      0,
      'bdev_nvme_poll',
    );
    this.channels.add(ctx);
    if (this.state === CtrlrState.Failed) ctx.state = Ch.Failed;
    else if (this.state === CtrlrState.Resetting) ctx.state = Ch.Resetting;
    else this.#connectChannel(ctx);
    return ctx;
  }

  /** Get a grant from the attaching reactor and open the channel's qpair; runs on the channel's thread. */
  #connectChannel(ctx: ChannelCtx): void {
    ctx.state = Ch.Connecting;
    const transport = getTransport(this.replay.trtype)!;
    let grant: IoQpairGrant | null = null;
    this.#grant()
      .then((g) => {
        grant = g;
        return onThread(ctx.thread, () =>
          transport.openIoQpair(g, {
            sockHost: threadSockHost(ctx.thread, 0),
            crc32c: ctx.accel?.ctx.crc32cRange,
          }),
        );
      })
      .then(
        (qp) => ctx.thread.sendMsg(() => this.#connected(ctx, qp, grant)),
        () => ctx.thread.sendMsg(() => this.#connected(ctx, null, grant)),
      );
  }

  /** A grant for one more I/O qpair, from the controller (asked for by message on other reactors). */
  #grant(): Promise<IoQpairGrant> {
    if (this.controller !== null) return this.controller.grantIoQpair({ depth: this.replay.depth });
    return askOwner(this.replay.owner, this.name);
  }

  /** Give a closed qpair's grant back to the controller. */
  #release(grant: IoQpairGrant | null): void {
    if (grant === null) return;
    if (this.controller !== null) void this.controller.releaseIoQpair(grant).catch(() => {});
    else if (this.replay.owner >= 0)
      send(reactorThread(this.replay.owner), releaseMsg, { name: this.name, grant });
  }

  /** Close the channel's qpair (its commands complete, aborted, into `pending`) and release it. */
  #dropQpair(ctx: ChannelCtx): void {
    const qp = ctx.qp;
    if (qp === null) return;
    qp.close();
    qp.processCompletions();
    this.#release(ctx.grant);
    ctx.grant = null;
  }

  #connected(ctx: ChannelCtx, qp: HostQpair | null, grant: IoQpairGrant | null): void {
    if (ctx.destroyed || ctx.state !== Ch.Connecting) {
      qp?.close();
      this.#release(grant);
      return;
    }
    if (qp === null) {
      this.#release(grant);
      ctx.connectFailures++;
      this.#qpairLost(ctx, ctx.qp);
      return;
    }
    this.#dropQpair(ctx);
    ctx.qp = qp;
    ctx.grant = grant;
    qp.onFailure = () => ctx.thread.sendMsg(() => this.#qpairLost(ctx, qp));
    ctx.connectFailures = 0;
    ctx.state = Ch.Ready;
    const q = ctx.pending.splice(0);
    for (const io of q) submit(ctx, io);
  }

  /** The channel's qpair failed or could not connect: queue I/O and have the controller reset. */
  #qpairLost(ctx: ChannelCtx, qp: HostQpair | null): void {
    if (ctx.destroyed || ctx.qp !== qp || ctx.state === Ch.Failed || ctx.state === Ch.Resetting) return;
    if (ctx.connectFailures >= MAX_CONNECT_FAILURES) {
      this.#failChannel(ctx);
      return;
    }
    ctx.state = Ch.Resetting;
    // Requests still in flight complete (SQ deletion) into `pending` through the poller.
    qp?.close();
    if (this.replay.owner < 0 || this.controller !== null) this.ownerReset();
    else send(reactorThread(this.replay.owner), resetRequest, this.name);
  }

  #failChannel(ctx: ChannelCtx): void {
    ctx.state = Ch.Failed;
    this.#dropQpair(ctx);
    for (const io of ctx.pending.splice(0)) bdevIoComplete(io, IoStatus.FAILED);
  }

  /** Resubmit an I/O whose qpair went away, or fail it when out of retries or given up. */
  retry(ctx: ChannelCtx, io: BdevIo): void {
    const ic = io.driverCtx as IoCtx;
    if (ctx.state === Ch.Failed || ctx.destroyed || ic.retries >= RETRY_COUNT) {
      bdevIoComplete(io, IoStatus.FAILED);
      return;
    }
    ic.retries++;
    if (ctx.state === Ch.Ready && ctx.qp !== null && !ctx.qp.failed) submit(ctx, io);
    else ctx.pending.push(io);
  }

  // ---- the attaching reactor: controller reset and reconnect ----

  /** Reset the controller (coalesced), retrying every reconnect_delay_sec until the loss timeout. */
  ownerReset(): void {
    const c = this.controller;
    if (c === null || this.closed || this.#resetting || this.state === CtrlrState.Failed) return;
    this.#resetting = true;
    if (this.#lostSince === 0) {
      this.#lostSince = Date.now();
      const ff = this.replay.params.fast_io_fail_timeout_sec ?? 0;
      if (ff > 0) {
        this.#fastFailTimer = setTimeout(() => this.#broadcast(CtrlrState.Failed, 0, true), ff * 1000);
        this.#fastFailTimer.unref();
      }
    }
    this.#broadcast(CtrlrState.Resetting, 0);
    this.resets++;
    c.reset().then(
      () => {
        this.#resetting = false;
        this.#lostSince = 0;
        clearTimeout(this.#fastFailTimer);
        if (!this.closed) this.#broadcast(CtrlrState.Enabled, c.cntlid);
      },
      () => {
        this.#resetting = false;
        if (this.closed) return;
        const p = this.replay.params;
        const loss = (p.ctrlr_loss_timeout_sec ?? 0) * 1000;
        const delay = (p.reconnect_delay_sec ?? 0) * 1000;
        if (loss !== 0 && delay > 0 && (loss < 0 || Date.now() - this.#lostSince + delay < loss)) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.ownerReset();
          }, delay);
          this.#timer.unref();
        } else {
          clearTimeout(this.#fastFailTimer);
          this.#broadcast(CtrlrState.Failed, 0);
        }
      },
    );
  }

  /** bdev RESET (the bdev layer froze every channel): reset the controller, complete when it is back. */
  #reset(ctx: ChannelCtx, io: BdevIo): void {
    if (this.state === CtrlrState.Failed || this.closed) {
      bdevIoComplete(io, IoStatus.FAILED);
      return;
    }
    this.#resetIos.push({ io, thread: ctx.thread });
    if (this.replay.owner < 0 || this.controller !== null) this.ownerReset();
    else send(reactorThread(this.replay.owner), resetRequest, this.name);
  }

  #finishResets(status: IoStatus): void {
    for (const { io, thread } of this.#resetIos.splice(0)) thread.sendMsg(() => bdevIoComplete(io, status));
  }

  /** bdev ABORT: an NVMe Abort of the target I/O's command, on the controller's admin queue. */
  #abort(ctx: ChannelCtx, io: BdevIo): void {
    const target = io.abortTarget!;
    const qp = (target.driverCtx as IoCtx).ch?.qp ?? null;
    const cid = qp?.cidOf?.(target) ?? -1;
    if (qp === null || cid < 0) {
      bdevIoComplete(io, IoStatus.FAILED);
      return;
    }
    const cmd = new Uint8Array(64);
    cmd[0] = AdminOpcode.Abort;
    new DataView(cmd.buffer).setUint32(40, (qp.qid | (cid << 16)) >>> 0, true);
    this.#adminCall(cmd, null).then(
      // DW0 bit 0 clear: the command was aborted (it completes on its queue as aborted by request).
      (r) =>
        ctx.thread.sendMsg(() =>
          bdevIoComplete(io, r.status === 0 && (r.dw0 & 1) === 0 ? IoStatus.SUCCESS : IoStatus.FAILED),
        ),
      () => ctx.thread.sendMsg(() => bdevIoComplete(io, IoStatus.FAILED)),
    );
  }

  /** bdev NVME_ADMIN: the command on the controller's admin queue (the attaching reactor's). */
  #adminPassthru(ctx: ChannelCtx, io: BdevIo): void {
    const buf = io.iovs[0] ?? null;
    if (passthruSpec(io.nvmeCmd, buf, null) === null) {
      finishPassthru(io, S_INVALID_FIELD, 0);
      return;
    }
    this.#adminCall(io.nvmeCmd, buf).then(
      (r) => ctx.thread.sendMsg(() => finishPassthru(io, r.status, r.dw0)),
      () => ctx.thread.sendMsg(() => finishPassthru(io, S_SQ_DELETED, 0)),
    );
  }

  /** An admin command on the controller: here when it lives here, else by message to its reactor. */
  #adminCall(cmd: Uint8Array, buf: Uint8Array | null): Promise<{ status: number; dw0: number }> {
    if (this.controller !== null) return this.controller.adminRaw(passthruSpec(cmd, buf, null)!);
    return askOwnerAdmin(this.replay.owner, this.name, cmd, buf);
  }

  stopTimers(): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#fastFailTimer);
  }

  /** Tell every reactor (this one included) the controller's new state. */
  #broadcast(state: CtrlrState, cntlid: number, fastFail = false): void {
    const m = { name: this.name, state, cntlid, fastFail, epoch: this.controller?.resets ?? 0 };
    const n = workerReactors();
    if (n === 0 || this.replay.owner < 0) {
      ctrlrState(m);
      return;
    }
    for (let i = 0; i < n; i++) send(reactorThread(i), stateMsg, m);
  }

  /** A state change from the attaching reactor, applied to this isolate's channels. */
  applyState(state: CtrlrState, cntlid: number, fastFail: boolean, epoch: number): void {
    if (fastFail) {
      // Keep reconnecting, but stop holding I/O (SPDK's fast_io_fail_timeout_sec).
      for (const ctx of this.channels) ctx.thread.sendMsg(() => this.#failChannel(ctx));
      this.state = CtrlrState.Failed;
      this.#finishResets(IoStatus.FAILED);
      return;
    }
    this.state = state;
    if (state === CtrlrState.Resetting) return;
    if (state === CtrlrState.Enabled) this.replay.cntlid = cntlid;
    this.#finishResets(state === CtrlrState.Enabled ? IoStatus.SUCCESS : IoStatus.FAILED);
    for (const ctx of this.channels)
      ctx.thread.sendMsg(() => {
        if (ctx.destroyed) return;
        if (state === CtrlrState.Failed) {
          this.#failChannel(ctx);
          return;
        }
        const current = ctx.grant !== null && ctx.grant.epoch >= epoch;
        if (ctx.state === Ch.Ready && ctx.qp !== null && !ctx.qp.failed && current) return;
        // A qpair of the old association: quietly away (its commands come back for a retry).
        if (ctx.qp !== null) ctx.qp.onFailure = null;
        // The old qpair's grant died with the reset: only close it.
        ctx.qp?.close();
        ctx.qp?.processCompletions();
        ctx.grant = null;
        this.#connectChannel(ctx);
      });
  }

  #destroyChannel(ctx: ChannelCtx): void {
    ctx.destroyed = true;
    this.channels.delete(ctx);
    ctx.poller.unregister();
    this.#dropQpair(ctx);
    threadSockHost(ctx.thread, -1);
    ctx.accel?.put();
    ctx.accel = null;
    ctx.state = Ch.Failed;
    for (const io of ctx.pending.splice(0)) bdevIoComplete(io, IoStatus.FAILED);
  }

  /** bdev_get_bdevs' driver_specific, in SPDK's bdev_nvme shape. */
  #infoJson(ns: NvmeAttachReplay['namespaces'][number]): Record<string, unknown> {
    const r = this.replay;
    const d = r.ctrlrData;
    return {
      nvme: [
        {
          trid: tridOf(r.params),
          ctrlr_data: {
            cntlid: r.cntlid,
            vendor_id: `0x${d.vid.toString(16).padStart(4, '0')}`,
            model_number: d.modelNumber,
            serial_number: d.serialNumber,
            firmware_revision: d.firmwareRevision,
            subnqn: d.subnqn,
            oacs: {
              security: d.oacs & 1,
              format: (d.oacs >> 1) & 1,
              firmware: (d.oacs >> 2) & 1,
              ns_manage: (d.oacs >> 3) & 1,
            },
            multi_ctrlr: (d.cmic & 2) !== 0,
            ana_reporting: (d.cmic & 8) !== 0,
          },
          vs: { nvme_version: r.version },
          ns_data: { id: ns.nsid, can_share: (ns.nmic & 1) !== 0 },
        },
      ],
      mp_policy: 'active_passive',
    };
  }

  channel(): IoChannel<unknown> {
    return getIoChannel(this.device);
  }

  register(ns: NvmeAttachReplay['namespaces'][number]): Bdev {
    const nsid = ns.nsid;
    const bdev = bdevRegister({
      name: `${this.name}n${nsid}`,
      uuid: ns.uuid || undefined,
      productName: 'NVMe disk',
      blockSize: ns.blockSize,
      numBlocks: ns.numBlocks,
      writeCache: (this.replay.vwc & 1) !== 0,
      optimalIoBoundary: ns.noiob,
      splitOnOptimalIoBoundary: ns.noiob > 0,
      maxRwBlocks: Math.floor(this.replay.maxTransfer / ns.blockSize),
      maxSegments: 1,
      module: nvmeModule,
      ctx: { ctrlr: this, nsid } satisfies NsCtx,
      fn: {
        submitRequest: (ch, io) => {
          const ctx = ch.ctx as ChannelCtx;
          const ic = io.driverCtx as IoCtx;
          ic.ch = ctx;
          ic.retries = 0;
          if (io.type === IoType.RESET) return this.#reset(ctx, io);
          if (io.type === IoType.ABORT) return this.#abort(ctx, io);
          if (io.type === IoType.NVME_ADMIN) return this.#adminPassthru(ctx, io);
          if (ctx.state === Ch.Ready) submit(ctx, io);
          else if (ctx.state === Ch.Failed) bdevIoComplete(io, IoStatus.FAILED);
          else ctx.pending.push(io);
        },
        createIoCtx: (): IoCtx => ({ ch: null, retries: 0 }),
        ioTypeSupported: (t) => supported(this.replay, t),
        getIoChannel: () => this.channel(),
        destruct: (done) => done(),
        dumpInfoJson: () => this.#infoJson(ns),
      },
    });
    this.bdevs.push(bdev);
    return bdev;
  }
}

/** What the controller said it does (ONCS, FUSES), as SPDK's bdev_nvme_io_type_supported. */
function supported(r: NvmeAttachReplay, t: IoType): boolean {
  switch (t) {
    case IoType.READ:
    case IoType.WRITE:
    case IoType.FLUSH:
    case IoType.RESET:
    case IoType.ABORT:
    case IoType.NVME_ADMIN:
    case IoType.NVME_IO:
      return true;
    case IoType.COMPARE:
      return (r.oncs & Oncs.Compare) !== 0;
    case IoType.COMPARE_AND_WRITE:
      return (r.oncs & Oncs.Compare) !== 0 && (r.fuses & 1) !== 0;
    case IoType.WRITE_ZEROES:
      return (r.oncs & Oncs.WriteZeroes) !== 0;
    case IoType.UNMAP:
      return (r.oncs & Oncs.Dsm) !== 0;
    default:
      return false;
  }
}

const done: Completion<BdevIo> = (io, status) => {
  if (status === S_SQ_DELETED) {
    // The qpair went away with the command in flight: nothing was acknowledged, so send it again.
    const ic = io.driverCtx as IoCtx;
    if (ic.ch !== null) {
      (io.bdev.ctx as NsCtx).ctrlr.retry(ic.ch, io);
      return;
    }
  }
  bdevIoComplete(
    io,
    status === 0
      ? IoStatus.SUCCESS
      : status === S_MISCOMPARE
        ? IoStatus.MISCOMPARE
        : (status & 0x7ff) === S_ABORTED_BY_REQUEST
          ? IoStatus.ABORTED
          : IoStatus.FAILED,
  );
};

/** An NVMe passthru's completion: the CQE into the caller's NvmeCompletion, then the bdev status. */
const nvmeDone: Completion<BdevIo> = (io, status, dw0) => {
  if (status === S_SQ_DELETED) {
    const ic = io.driverCtx as IoCtx;
    if (ic.ch !== null) {
      (io.bdev.ctx as NsCtx).ctrlr.retry(ic.ch, io);
      return;
    }
  }
  finishPassthru(io, status, dw0);
};

function finishPassthru(io: BdevIo, status: number, dw0: number): void {
  const cpl = io.nvmeCpl!;
  cpl.status = status;
  cpl.cdw0 = dw0 >>> 0;
  bdevIoComplete(io, status === 0 ? IoStatus.SUCCESS : IoStatus.FAILED);
}

/**
 * A passthru SQE as fields for HostQpair.submit: the opcode's low bits give the data direction
 * (1: to the controller, 2: from it); the data pointer is the transport's, and the NSID the
 * namespace's for I/O commands (as SPDK's bdev_nvme_io_passthru).
 */
function passthruSpec(cmd: Uint8Array, buf: Uint8Array | null, nsid: number | null): CommandSpec | null {
  const dv = new DataView(cmd.buffer, cmd.byteOffset, 64);
  const opcode = cmd[0];
  const xfer = opcode & 3;
  if (buf !== null && buf.length > 0 && xfer !== 1 && xfer !== 2) return null;
  return {
    opcode,
    fuse: cmd[1] & 3,
    nsid: nsid ?? dv.getUint32(4, true),
    cdw10: dv.getUint32(40, true),
    cdw11: dv.getUint32(44, true),
    cdw12: dv.getUint32(48, true),
    cdw13: dv.getUint32(52, true),
    cdw14: dv.getUint32(56, true),
    cdw15: dv.getUint32(60, true),
    ...(buf !== null && buf.length > 0 ? { buf, dir: xfer as 1 | 2 } : {}),
    fill: (d, s) => {
      d.setUint32(s + 8, dv.getUint32(8, true), true);
      d.setUint32(s + 12, dv.getUint32(12, true), true);
    },
  };
}

/** One bdev_io onto the channel's qpair (the bdev layer split it to one iovec and MDTS). */
function submit(ctx: ChannelCtx, io: BdevIo): void {
  const qp = ctx.qp!;
  const nsid = (io.bdev.ctx as NsCtx).nsid;
  const lba = io.offsetBlocks;
  const n = io.numBlocks;
  let ok: boolean;
  switch (io.type) {
    case IoType.READ:
      ok = qp.read(nsid, lba, n, io.iovs[0], done, io);
      break;
    case IoType.WRITE:
      ok = qp.write(nsid, lba, n, io.iovs[0], done, io);
      break;
    case IoType.COMPARE:
      ok = qp.compare(nsid, lba, n, io.iovs[0], done, io);
      break;
    case IoType.COMPARE_AND_WRITE:
      ok = qp.compareAndWrite(nsid, lba, n, io.cmpIovs[0], io.iovs[0], done, io);
      break;
    case IoType.WRITE_ZEROES:
      ok = qp.writeZeroes(nsid, lba, n, done, io);
      break;
    case IoType.UNMAP:
      ok = qp.deallocate(nsid, [[lba, n]], done, io);
      break;
    case IoType.FLUSH:
      ok = qp.flush(nsid, done, io);
      break;
    case IoType.NVME_IO: {
      const spec = passthruSpec(io.nvmeCmd, io.iovs[0] ?? null, nsid);
      if (spec === null) {
        finishPassthru(io, S_INVALID_FIELD, 0);
        return;
      }
      ok = qp.submit(spec, nvmeDone, io);
      break;
    }
    default:
      bdevIoComplete(io, IoStatus.FAILED);
      return;
  }
  if (ok) return;
  // The connection is gone: hold it for the reconnect. Queue full: NOMEM makes the bdev layer
  // retry after a completion.
  if (qp.failed) (io.bdev.ctx as NsCtx).ctrlr.retry(ctx, io);
  else bdevIoComplete(io, IoStatus.NOMEM);
}

const ctrlrs = new Map<string, NvmeCtrlr>();

/** A namespace bdev's context: its controller here and its namespace ID. */
interface NsCtx {
  ctrlr: NvmeCtrlr;
  nsid: number;
}

interface StateMsg {
  name: string;
  state: CtrlrState;
  cntlid: number;
  fastFail: boolean;
  /** The controller's reset count: a qpair granted before it belongs to the old association. */
  epoch: number;
}

function ctrlrState(m: StateMsg): void {
  ctrlrs.get(m.name)?.applyState(m.state, m.cntlid, m.fastFail, m.epoch);
}

/** Each thread's socket group for the I/O qpairs of its channels (served by a poller of that thread). */
const sockHosts = new Map<Thread, { host: SockHost; refs: number }>();

/** `delta` +1: a channel of `thread` needs the group (made on first use: call as that thread); -1: done. */
function threadSockHost(thread: Thread, delta: number): SockHost {
  let e = sockHosts.get(thread);
  if (e === undefined) {
    e = { host: new SockHost({ name: 'bdev_nvme_sock_group' }), refs: 0 };
    sockHosts.set(thread, e);
  }
  e.refs += delta;
  if (e.refs <= 0) {
    sockHosts.delete(thread);
    e.host.close();
  }
  return e.host;
}

interface GrantRequest {
  name: string;
  reactor: number;
  token: number;
}
interface GrantReply {
  token: number;
  grant: IoQpairGrant | null;
  error: string;
}
const waitingGrants = new Map<number, { resolve(g: IoQpairGrant): void; reject(e: Error): void }>();
let nextGrantToken = 1;

/** Ask the attaching reactor's controller for an I/O qpair grant. */
function askOwner(owner: number, name: string): Promise<IoQpairGrant> {
  const token = nextGrantToken++;
  return new Promise((resolve, reject) => {
    waitingGrants.set(token, { resolve, reject });
    send(reactorThread(owner), grantRequest, { name, reactor: reactorIndex(), token });
  });
}

/** On the attaching reactor: grant a channel of another reactor an I/O qpair. */
const grantRequest = defineHandler('bdev_nvme.grant_request', codec.json<GrantRequest>(), (m) => {
  const reply = (grant: IoQpairGrant | null, error: string): void =>
    send(reactorThread(m.reactor), grantReply, { token: m.token, grant, error });
  const c = ctrlrs.get(m.name)?.controller;
  if (!c) {
    reply(null, `no nvme controller ${m.name} on this reactor`);
    return;
  }
  c.grantIoQpair({ depth: ctrlrs.get(m.name)!.replay.depth }).then(
    (g) => reply(g, ''),
    (e: Error) => reply(null, e.message),
  );
});
const grantReply = defineHandler('bdev_nvme.grant', codec.json<GrantReply>(), (m) => {
  const w = waitingGrants.get(m.token);
  waitingGrants.delete(m.token);
  if (m.grant !== null) w?.resolve(m.grant);
  else w?.reject(new BdevError('ENODEV', m.error));
});
/** A channel of another reactor closed the qpair of a grant. */
const releaseMsg = defineHandler(
  'bdev_nvme.grant_release',
  codec.json<{ name: string; grant: IoQpairGrant }>(),
  (m) =>
    void ctrlrs
      .get(m.name)
      ?.controller?.releaseIoQpair(m.grant)
      .catch(() => {}),
);

interface AdminRequest {
  name: string;
  reactor: number;
  token: number;
  /** The 64-byte SQE, base64. */
  cmd: string;
  /** Host-to-controller data, base64 (null: none, or data comes back). */
  data: string | null;
  /** Bytes of data either way. */
  len: number;
}
interface AdminReply {
  token: number;
  status: number;
  dw0: number;
  /** Controller-to-host data, base64. */
  data: string | null;
  error: string;
}
const waitingAdmin = new Map<
  number,
  { buf: Uint8Array | null; resolve(r: { status: number; dw0: number }): void; reject(e: Error): void }
>();
let nextAdminToken = 1;

/** Run an admin command on the attaching reactor's controller; data crosses by copy (admin is rare). */
function askOwnerAdmin(
  owner: number,
  name: string,
  cmd: Uint8Array,
  buf: Uint8Array | null,
): Promise<{ status: number; dw0: number }> {
  const token = nextAdminToken++;
  const toController = (cmd[0] & 3) === 1;
  return new Promise((resolve, reject) => {
    waitingAdmin.set(token, { buf, resolve, reject });
    send(reactorThread(owner), adminRequest, {
      name,
      reactor: reactorIndex(),
      token,
      cmd: Buffer.from(cmd).toString('base64'),
      data: buf !== null && toController ? Buffer.from(buf).toString('base64') : null,
      len: buf?.length ?? 0,
    });
  });
}

const adminRequest = defineHandler('bdev_nvme.admin', codec.json<AdminRequest>(), (m) => {
  const reply = (r: Omit<AdminReply, 'token'>): void =>
    send(reactorThread(m.reactor), adminReply, { token: m.token, ...r });
  const c = ctrlrs.get(m.name)?.controller;
  const cmd = Uint8Array.from(Buffer.from(m.cmd, 'base64'));
  const buf =
    m.len === 0
      ? null
      : m.data !== null
        ? Uint8Array.from(Buffer.from(m.data, 'base64'))
        : new Uint8Array(m.len);
  const spec = passthruSpec(cmd, buf, null);
  if (!c || spec === null) {
    reply({
      status: 0,
      dw0: 0,
      data: null,
      error: c ? 'bad admin command' : `no nvme controller ${m.name} here`,
    });
    return;
  }
  c.adminRaw(spec).then(
    (r) =>
      reply({
        status: r.status,
        dw0: r.dw0,
        data: buf !== null && (cmd[0] & 3) === 2 ? Buffer.from(buf).toString('base64') : null,
        error: '',
      }),
    (e: Error) => reply({ status: 0, dw0: 0, data: null, error: e.message }),
  );
});
const adminReply = defineHandler('bdev_nvme.admin_done', codec.json<AdminReply>(), (m) => {
  const w = waitingAdmin.get(m.token);
  waitingAdmin.delete(m.token);
  if (w === undefined) return;
  if (m.error !== '') {
    w.reject(new BdevError('EIO', m.error));
    return;
  }
  if (m.data !== null && w.buf !== null) w.buf.set(Buffer.from(m.data, 'base64').subarray(0, w.buf.length));
  w.resolve({ status: m.status, dw0: m.dw0 });
});

/** A channel on another reactor lost its qpair: the attaching reactor resets the controller. */
const resetRequest = defineHandler('bdev_nvme.reset_request', codec.utf8, (name) =>
  ctrlrs.get(name)?.ownerReset(),
);
/** The attaching reactor's controller state for every reactor's channels. */
const stateMsg = defineHandler('bdev_nvme.ctrlr_state', codec.json<StateMsg>(), ctrlrState);

/** Run `fn` as `thread` (now if it is current) and resolve with its result. */
function onThread<T>(thread: Thread, fn: () => T | Promise<T>): Promise<T> {
  if (getThread() === thread) return Promise.resolve().then(fn);
  return new Promise<T>((resolve, reject) =>
    thread.sendMsg(() => {
      try {
        resolve(fn());
      } catch (e) {
        reject(e);
      }
    }),
  );
}

/** The transport ID of attach params, as SPDK shows it (bdev_nvme_get_controllers, driver_specific). */
function tridOf(p: NvmeAttachParams): Record<string, string> {
  const t = parseTransportId(tridString(p));
  if (t.trtype === 'PCIe') return { trtype: t.trtype, traddr: t.traddr };
  return { trtype: t.trtype, adrfam: t.adrfam, traddr: t.traddr, trsvcid: t.trsvcid, subnqn: p.subnqn ?? '' };
}

/** Attach params as an SPDK transport ID string. */
function tridString(p: NvmeAttachParams): string {
  const kv: string[] = [`trtype:${p.trtype}`, `traddr:${p.traddr}`];
  if (p.adrfam !== undefined) kv.push(`adrfam:${p.adrfam}`);
  if (p.trsvcid !== undefined) kv.push(`trsvcid:${p.trsvcid}`);
  if (p.subnqn !== undefined && p.subnqn !== '') kv.push(`subnqn:${p.subnqn}`);
  return kv.join(' ');
}

/** Reactors of the app in a reactor worker; 0 outside one (the test harness: one isolate). */
function workerReactors(): number {
  try {
    return reactorCount();
  } catch {
    return 0;
  }
}

function currentReactor(): number {
  return workerReactors() > 0 ? reactorIndex() : -1;
}

function check(p: NvmeAttachParams): void {
  if (typeof p?.name !== 'string' || p.name === '')
    throw new BdevError('EINVAL', 'bdev_nvme_attach_controller: name is required');
  let trid: TransportId;
  try {
    trid = parseTransportId(tridString(p));
  } catch (e) {
    throw new BdevError('EINVAL', `bdev_nvme_attach_controller: ${(e as Error).message}`);
  }
  if (getTransport(trid.trtype) === undefined)
    throw new BdevError(
      'EINVAL',
      `bdev_nvme_attach_controller: unsupported trtype '${p.trtype}' (no ${trid.trtype} transport)`,
    );
  if (ctrlrs.has(p.name)) throw new BdevError('EEXIST', `nvme controller ${p.name} exists`);
}

/**
 * bdev_nvme_attach_controller on this reactor: connect the controller, register a bdev per active
 * namespace, and give the replay the other reactors register the same bdevs from.
 */
export async function bdevNvmeAttachController(
  p: NvmeAttachParams,
): Promise<{ names: string[]; replay: NvmeAttachReplay }> {
  check(p);
  const thread = getThread();
  if (thread === null)
    throw new BdevError('ENOTHREAD', 'bdev_nvme_attach_controller must run on a reactor thread');
  const trid = parseTransportId(tridString(p));
  const c = await NvmeController.connect(trid, {
    hostnqn: p.hostnqn,
    hdgst: p.hdgst,
    ddgst: p.ddgst,
    ...(p.hostaddr ? { localAddress: p.hostaddr } : {}),
    ...(p.hostsvcid ? { localPort: Number(p.hostsvcid) } : {}),
    ...(p.priority ? { priority: Number(p.priority) } : {}),
  });
  try {
    const namespaces: NvmeAttachReplay['namespaces'] = [];
    for (const nsid of await c.activeNamespaces()) {
      const id = await c.identifyNamespace(nsid);
      const desc = await c.namespaceDescriptors(nsid).catch(() => ({}) as NamespaceDescriptors);
      namespaces.push({
        nsid,
        blockSize: id.blockSize,
        numBlocks: id.nsze,
        uuid: namespaceUuid(id, desc),
        nmic: id.nmic,
        noiob: id.noiob ?? 0,
      });
    }
    const replay: NvmeAttachReplay = {
      params: { ...p },
      trtype: trid.trtype,
      cntlid: c.cntlid,
      hostnqn: c.hostnqn,
      depth: Math.min(QUEUE_DEPTH, c.maxQueueEntries),
      owner: currentReactor(),
      maxTransfer: c.maxTransferSize,
      ctrlrData: {
        vid: c.cdata.vid,
        modelNumber: c.cdata.modelNumber,
        serialNumber: c.cdata.serialNumber,
        firmwareRevision: c.cdata.firmwareRevision,
        subnqn: c.cdata.subnqn,
        oacs: c.cdata.oacs ?? 0,
        cmic: c.cdata.cmic,
      },
      version: c.version,
      oncs: c.cdata.oncs,
      fuses: c.cdata.fuses,
      vwc: c.cdata.vwc,
      namespaces,
    };
    // Register as the calling thread (the awaits above resumed outside any thread).
    const names = await onThread(thread, () => {
      if (ctrlrs.has(p.name)) throw new BdevError('EEXIST', `nvme controller ${p.name} exists`);
      const ctrlr = new NvmeCtrlr(replay, c);
      ctrlrs.set(p.name, ctrlr);
      for (const ns of namespaces) ns.uuid = ctrlr.register(ns).uuid;
      // Hot remove: the device is gone; detach on every reactor (this one last, it holds the controller).
      c.onRemove(() => thread.sendMsg(() => removed(p.name, replay.owner)));
      return ctrlr.bdevs.map((b) => b.name);
    });
    return { names, replay };
  } catch (e) {
    await c.close();
    throw e;
  }
}

/** Register an attached controller's bdevs on this reactor (no controller of its own). */
export function bdevNvmeAttachReplica(replay: NvmeAttachReplay): string[] {
  check(replay.params);
  for (const ns of replay.namespaces)
    if (bdevGetByName(`${replay.params.name}n${ns.nsid}`) !== undefined)
      throw new BdevError('EEXIST', `bdev ${replay.params.name}n${ns.nsid} exists`);
  const ctrlr = new NvmeCtrlr(replay, null);
  ctrlrs.set(replay.params.name, ctrlr);
  for (const ns of replay.namespaces) ctrlr.register(ns);
  return ctrlr.bdevs.map((b) => b.name);
}

/** bdev_nvme_detach_controller: unregister its bdevs; `done` once the qpairs and controller are closed. */
export function bdevNvmeDetachController(p: { name: string }, cb: (err: Error | null) => void): void {
  const c = ctrlrs.get(p?.name);
  if (!c) throw new BdevError('ENODEV', `no nvme controller ${p?.name}`);
  ctrlrs.delete(p.name);
  c.closed = true;
  c.stopTimers();
  let left = c.bdevs.length;
  const finish = () =>
    ioDeviceUnregister(c.device, () => {
      if (c.controller) c.controller.close().then(() => cb(null), cb);
      else cb(null);
    });
  if (left === 0) {
    finish();
    return;
  }
  for (const b of c.bdevs)
    bdevUnregister(b, () => {
      if (--left === 0) finish();
    });
}

/** The attaching reactor saw its controller's device removed: detach it everywhere. */
function removed(name: string, owner: number): void {
  const n = workerReactors();
  if (n === 0 || owner < 0) {
    detachRemoved(name);
    return;
  }
  for (let i = 0; i < n; i++) if (i !== owner) send(reactorThread(i), removedMsg, name);
  detachRemoved(name);
}

function detachRemoved(name: string): void {
  if (!ctrlrs.has(name)) return;
  bdevNvmeDetachController({ name }, () => {});
}

const removedMsg = defineHandler('bdev_nvme.removed', codec.utf8, detachRemoved);

/** bdev_nvme_get_controllers, as SPDK shows them. */
export function bdevNvmeGetControllers(p: { name?: string } = {}): object[] {
  if (p.name !== undefined && !ctrlrs.has(p.name))
    throw new BdevError('ENODEV', `no nvme controller ${p.name}`);
  return [...ctrlrs.values()]
    .filter((c) => p.name === undefined || c.name === p.name)
    .map((c) => ({
      name: c.name,
      ctrlrs: [
        {
          state: STATE_NAMES[c.state],
          trid: tridOf(c.replay.params),
          cntlid: c.replay.cntlid,
          host: {
            nqn: c.replay.hostnqn,
            addr: c.replay.params.hostaddr ?? '',
            svcid: c.replay.params.hostsvcid ?? '',
          },
          resets: c.resets,
        },
      ],
    }));
}

/** The params a controller was attached with (for save_config). */
export function bdevNvmeAttachedParams(): NvmeAttachParams[] {
  return [...ctrlrs.values()].map((c) => ({ ...c.replay.params }));
}

// bdevperf (storkit bdevperf --json) loads bdev_nvme_attach_controller from its config like SPDK's
// bdevperf: reactor 0 attaches, the others register the replicas.
registerConfigMethod('bdev_nvme_attach_controller', async (q) => {
  const { replay } = await bdevNvmeAttachController(q as unknown as NvmeAttachParams);
  return { method: 'storkit_bdev_nvme_replica', params: replay as unknown as Record<string, unknown> };
});
registerConfigMethod('storkit_bdev_nvme_replica', (q) => {
  bdevNvmeAttachReplica(q as unknown as NvmeAttachReplay);
  return null;
});
