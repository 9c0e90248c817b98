// The nvme bdev module (SPDK's bdev_nvme): a remote NVMe/TCP controller's namespaces as bdevs
// `<name>n<nsid>`, so any target can re-export them. The controller (admin queue, keep alive) lives
// on the reactor that attached it; every thread that opens a channel gets its own I/O qpair of that
// controller (one per reactor in the app), polled by a poller on that thread. Other reactors
// register the same bdevs from the attaching reactor's replay (controller ID, host identity,
// namespace geometry), without a controller of their own.
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
import {
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
  registerPoller,
  type Thread,
} from '@storkit/reactor';

import { NvmeController } from '../host/controller.js';
import { type Completion, HostQpair } from '../host/qpair.js';
import { MediaStatus, makeStatus, Sct } from '../spec/index.js';

export const nvmeModule: BdevModule = { name: 'nvme' };
bdevModuleRegister(nvmeModule);

/** bdev_nvme_attach_controller params (SPDK names; TCP only). */
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
}

/** What the attaching reactor hands the others so they register the same bdevs. */
export interface NvmeAttachReplay {
  params: NvmeAttachParams;
  cntlid: number;
  hostnqn: string;
  /** 16 bytes as hex. */
  hostid: string;
  depth: number;
  maxTransfer: number;
  inCapsuleData: number;
  namespaces: { nsid: number; blockSize: number; numBlocks: number; uuid: string }[];
}

const QUEUE_DEPTH = 128;
const S_MISCOMPARE = makeStatus(Sct.Media, MediaStatus.CompareFailure);

interface ChannelCtx {
  qp: HostQpair;
  thread: Thread;
  poller: Poller;
  ready: boolean;
  failed: boolean;
  /** I/O submitted while the qpair connects (channel creation is synchronous, connecting is not). */
  pending: BdevIo[];
}

class NvmeCtrlr {
  readonly name: string;
  readonly replay: NvmeAttachReplay;
  readonly controller: NvmeController | null;
  readonly bdevs: Bdev[] = [];
  readonly device: object;
  #qidSeq = 0;

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

  /**
   * A queue ID no other thread of any reactor uses: in reactor workers (one isolate each) reactor
   * index + reactor count * this isolate's sequence; in one isolate (the test harness) the sequence.
   */
  #nextQid(): number {
    let n = 0;
    try {
      n = reactorCount();
    } catch {
      // Not in a reactor worker: every thread shares this isolate's sequence.
    }
    return n === 0 ? 1 + this.#qidSeq++ : 1 + reactorIndex() + n * this.#qidSeq++;
  }

  #createChannel(): ChannelCtx {
    const r = this.replay;
    const p = r.params;
    const qp = new HostQpair({
      traddr: p.traddr,
      trsvcid: String(p.trsvcid ?? '4420'),
      qid: this.#nextQid(),
      depth: r.depth,
      hdgst: p.hdgst ?? false,
      ddgst: p.ddgst ?? false,
      maxTransfer: r.maxTransfer,
      inCapsuleData: r.inCapsuleData,
    });
    const thread = getThread()!;
    const ctx: ChannelCtx = {
      qp,
      thread,
      poller: registerPoller(
        () => (qp.processCompletions() > 0 ? POLLER_BUSY : POLLER_IDLE),
        0,
        'bdev_nvme_poll',
      ),
      ready: false,
      failed: false,
      pending: [],
    };
    const hostid = Uint8Array.from(Buffer.from(r.hostid, 'hex'));
    qp.open()
      .then(() => qp.connect(p.subnqn ?? '', r.hostnqn, hostid, r.cntlid, 0))
      .then(
        () => thread.sendMsg(() => this.#connected(ctx, true)),
        () => thread.sendMsg(() => this.#connected(ctx, false)),
      );
    return ctx;
  }

  #connected(ctx: ChannelCtx, ok: boolean): void {
    ctx.ready = ok;
    ctx.failed = !ok;
    for (const io of ctx.pending.splice(0)) submit(ctx, io);
  }

  #destroyChannel(ctx: ChannelCtx): void {
    ctx.poller.unregister();
    ctx.qp.close();
    ctx.failed = true;
    for (const io of ctx.pending.splice(0)) bdevIoComplete(io, IoStatus.FAILED);
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
      maxRwBlocks: Math.floor(this.replay.maxTransfer / ns.blockSize),
      maxSegments: 1,
      module: nvmeModule,
      ctxt: nsid,
      fn: {
        submitRequest: (ch, io) => {
          const ctx = ch.ctx as ChannelCtx;
          if (ctx.ready) submit(ctx, io);
          else if (ctx.failed) bdevIoComplete(io, IoStatus.FAILED);
          else ctx.pending.push(io);
        },
        ioTypeSupported: (t) => SUPPORTED.has(t),
        getIoChannel: () => this.channel(),
        destruct: (done) => done(),
        dumpInfoJson: () => ({
          nvme: [
            {
              trid: tridOf(this.replay.params),
              ctrlr_data: { cntlid: this.replay.cntlid },
              ns_data: { id: nsid },
            },
          ],
        }),
      },
    });
    this.bdevs.push(bdev);
    return bdev;
  }
}

const SUPPORTED = new Set<IoType>([
  IoType.READ,
  IoType.WRITE,
  IoType.FLUSH,
  IoType.WRITE_ZEROES,
  IoType.UNMAP,
  IoType.COMPARE,
  IoType.COMPARE_AND_WRITE,
]);

const done: Completion<BdevIo> = (io, status) =>
  bdevIoComplete(
    io,
    status === 0 ? IoStatus.SUCCESS : status === S_MISCOMPARE ? IoStatus.MISCOMPARE : IoStatus.FAILED,
  );

/** One bdev_io onto the channel's qpair (the bdev layer split it to one iovec and MDTS). */
function submit(ctx: ChannelCtx, io: BdevIo): void {
  const qp = ctx.qp;
  const nsid = io.bdev.ctxt as number;
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
    default:
      bdevIoComplete(io, IoStatus.FAILED);
      return;
  }
  // Queue full (or the connection is gone): NOMEM makes the bdev layer retry after a completion.
  if (!ok) bdevIoComplete(io, qp.failed ? IoStatus.FAILED : IoStatus.NOMEM);
}

const ctrlrs = new Map<string, NvmeCtrlr>();

/** Run `fn` as `thread` (now if it is current) and resolve with its result. */
function onThread<T>(thread: Thread, fn: () => T): Promise<T> {
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

function tridOf(p: NvmeAttachParams): Record<string, string> {
  return {
    trtype: 'TCP',
    adrfam: p.adrfam ?? 'IPv4',
    traddr: p.traddr,
    trsvcid: String(p.trsvcid ?? '4420'),
    subnqn: p.subnqn ?? '',
  };
}

function check(p: NvmeAttachParams): void {
  if (typeof p?.name !== 'string' || p.name === '')
    throw new BdevError('EINVAL', 'bdev_nvme_attach_controller: name is required');
  if (String(p.trtype).toUpperCase() !== 'TCP')
    throw new BdevError('EINVAL', `bdev_nvme_attach_controller: unsupported trtype '${p.trtype}' (TCP only)`);
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
  const t = tridOf(p);
  const trid = `trtype:TCP adrfam:${t.adrfam} traddr:${t.traddr} trsvcid:${t.trsvcid} subnqn:${t.subnqn}`;
  const c = await NvmeController.connect(trid, { hostnqn: p.hostnqn, hdgst: p.hdgst, ddgst: p.ddgst });
  try {
    const namespaces: NvmeAttachReplay['namespaces'] = [];
    for (const nsid of await c.activeNamespaces()) {
      const id = await c.identifyNamespace(nsid);
      namespaces.push({ nsid, blockSize: id.blockSize, numBlocks: id.nsze, uuid: '' });
    }
    const replay: NvmeAttachReplay = {
      params: { ...p },
      cntlid: c.cntlid,
      hostnqn: c.hostnqn,
      hostid: Buffer.from(c.hostid).toString('hex'),
      depth: Math.min(QUEUE_DEPTH, c.maxQueueEntries),
      maxTransfer: c.maxTransferSize,
      inCapsuleData: Math.max(0, c.cdata.ioccsz * 16 - 64),
      namespaces,
    };
    // Register as the calling thread (the awaits above resumed outside any thread).
    const names = await onThread(thread, () => {
      if (ctrlrs.has(p.name)) throw new BdevError('EEXIST', `nvme controller ${p.name} exists`);
      const ctrlr = new NvmeCtrlr(replay, c);
      ctrlrs.set(p.name, ctrlr);
      for (const ns of namespaces) ns.uuid = ctrlr.register(ns).uuid;
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
          state: 'enabled',
          trid: tridOf(c.replay.params),
          cntlid: c.replay.cntlid,
          host: { nqn: c.replay.hostnqn, addr: '', svcid: '' },
        },
      ],
    }));
}

/** The params a controller was attached with (for save_config). */
export function bdevNvmeAttachedParams(): NvmeAttachParams[] {
  return [...ctrlrs.values()].map((c) => ({ ...c.replay.params }));
}
