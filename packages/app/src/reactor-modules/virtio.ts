// Imported by every reactor worker of the target app: the virtio bdev module (SPDK's bdev_virtio
// with trtype "user", dev_type "blk"): bdev <name> over storkit's virtio-user initiator
// (VirtioUserBlk) connected to a vhost-user-blk socket (storkit's own, qemu-storage-daemon, ...).
//
// One connection per bdev, owned by ONE reactor: vhost-user backends serve one frontend at a
// time, so one connection per reactor cannot work. The bdev exists on every reactor under the same
// name. On the owner, a bdev_io goes straight to the initiator's rings (completions reaped by its
// poller). On any other reactor, it is forwarded to the owner by named handler: its data travels
// through a staging slot of that reactor in the initiator's shared memory (a memfd the backend
// maps too), which the other reactor views through the region's handle; the owner submits the
// slot as a single buffer (zero copy to the backend) and sends the status back to the submitting
// thread, which copies read data out and completes the bdev_io there.

import { type Bdev, bdevGetByName, type IoCb, IoStatus, IoType } from '@storkit/bdev';
import { type BdevIo, bdevIoComplete, bdevRegister, bdevUnregister } from '@storkit/bdev/module';
import { registerConfigMethod } from '@storkit/bdev/perf';
import { codeOf } from '@storkit/errors';
import { DmaRegion, NativeError } from '@storkit/native';
import {
  codec,
  defineControl,
  defineHandler,
  defineSubsystem,
  getIoChannel,
  getThread,
  type IoChannel,
  ioDeviceRegister,
  reactorCount,
  reactorIndex,
  send,
  type Thread,
} from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';
import { VirtioUserBlk } from '@storkit/vhost';

import {
  type VirtioAttachParams,
  type VirtioInfo,
  virtioAttach,
  virtioDetach,
  virtioJoin,
} from '../controls/virtio.js';

const virtioModule = { name: 'virtio_blk' };
const channelKey = { name: 'bdev_virtio' };
let channelRegistered = false;

function channel(): IoChannel<unknown> {
  if (!channelRegistered) {
    ioDeviceRegister(channelKey, { name: 'bdev_virtio', create: () => null });
    channelRegistered = true;
  }
  return getIoChannel(channelKey);
}

type Info = VirtioInfo;

interface Owned {
  info: Info;
  dev: VirtioUserBlk;
  bdev: Bdev;
  /** Forwarded I/O: a completion context per (reactor, thread slot), made once. */
  fwds: Fwd[][];
}

/** Where a forwarded I/O's status goes back to: the backend callback's context. */
interface Fwd {
  id: number;
  from: number;
  tid: number;
  slot: number;
}

interface Remote {
  info: Info;
  region: DmaRegion;
  /** This reactor's staging slots: views into the initiator's memory. */
  stage: Uint8Array[];
  free: number[];
  pending: (BdevIo | null)[];
}

const owned = new Map<number, Owned>();
/** Bdevs of devices owned elsewhere, with what forwarding to the owner needs. */
const remotes = new Map<number, { remote: Remote; bdev: Bdev }>();

const SUPPORTED = (i: Info) => (t: IoType) =>
  t === IoType.READ ||
  (t === IoType.WRITE && !i.readOnly) ||
  (t === IoType.FLUSH && i.writeCache) ||
  (t === IoType.UNMAP && i.unmap && !i.readOnly) ||
  (t === IoType.WRITE_ZEROES && i.unmap && !i.readOnly) ||
  t === IoType.RESET;

/**
 * Submit one I/O to the initiator (owner side); `cb(status, ctx)` gets the initiator's status, in
 * the bdev layer's numbers (NOMEM when its rings are full: the bdev layer retries).
 */
function submitTo<C>(
  dev: VirtioUserBlk,
  type: number,
  iov: readonly Uint8Array[],
  lba: number,
  n: number,
  cb: IoCb<C>,
  ctx: C,
): void {
  if (type === IoType.READ) dev.readv(iov, lba, n, cb, ctx);
  else if (type === IoType.WRITE) dev.writev(iov, lba, n, cb, ctx);
  else if (type === IoType.UNMAP) dev.unmap(lba, n, cb, ctx);
  else if (type === IoType.WRITE_ZEROES) dev.writeZeroes(lba, n, cb, ctx);
  else if (type === IoType.FLUSH) dev.flush(lba, n, cb, ctx);
  else dev.reset(cb, ctx);
}

/** The initiator finished a bdev_io of the owner's own reactor. */
function ownDone(s: IoStatus, io: BdevIo): void {
  bdevIoComplete(io, s);
}

/** The initiator finished a forwarded I/O: its status goes back to the submitting thread. */
function forwardedDone(s: IoStatus, f: Fwd): void {
  doneOut.id = f.id;
  doneOut.tid = f.tid;
  doneOut.slot = f.slot;
  doneOut.status = s;
  send({ id: f.tid, reactor: f.from }, doneH, doneOut);
}

// ---- forwarding between reactors -------------------------------------------------------------

const IoMsg = codec.struct('virtio.io', {
  id: 'i32',
  from: 'i32',
  tid: 'i32',
  slot: 'i32',
  type: 'i32',
  lba: 'f64',
  count: 'i32',
});
const DoneMsg = codec.struct('virtio.done', { id: 'i32', tid: 'i32', slot: 'i32', status: 'i32' });

/** Payloads are encoded at send (other workers only), so one object each is reused. */
const ioOut = { id: 0, from: 0, tid: 0, slot: 0, type: 0, lba: 0, count: 0 };
const doneOut = { id: 0, tid: 0, slot: 0, status: 0 };
const one: Uint8Array[] = [new Uint8Array(0)];

/** On the owner: a forwarded I/O on its staging slot. */
const ioH = defineHandler('virtio.io', IoMsg, (m) => {
  const o = owned.get(m.id);
  if (o === undefined) return;
  const i = o.info;
  let fwds = o.fwds[m.from];
  if (fwds === undefined) fwds = o.fwds[m.from] = [];
  const key = m.tid * i.slots + m.slot;
  let f = fwds[key];
  if (f === undefined) f = fwds[key] = { id: i.id, from: m.from, tid: m.tid, slot: m.slot };
  const off = (m.from * i.slots + m.slot) * i.maxTransfer;
  // Only reads and writes carry data (unmap / write zeroes counts may exceed a slot).
  const data = m.type === IoType.READ || m.type === IoType.WRITE;
  try {
    one[0] = o.dev.sharedBuffer(off, data ? m.count * i.blockSize : 0);
  } catch (e) {
    // A slot outside the staging area: a bug of the sender. Fail that I/O, and say so.
    o.bdev.submitErrors.record(e);
    forwardedDone(IoStatus.FAILED, f);
    return;
  }
  submitTo(o.dev, m.type, one, m.lba, m.count, forwardedDone, f);
});

/** On the submitting reactor: the owner's status for a slot. */
const doneH = defineHandler('virtio.done', DoneMsg, (m) => {
  const r = remotes.get(m.id)?.remote;
  const io = r?.pending[m.slot];
  if (r === undefined || io === undefined || io === null) return;
  r.pending[m.slot] = null;
  if (m.status === IoStatus.SUCCESS && io.type === IoType.READ) {
    const s = r.stage[m.slot];
    let off = 0;
    for (const v of io.iovs) {
      v.set(s.subarray(off, off + v.length));
      off += v.length;
    }
  }
  r.free.push(m.slot);
  bdevIoComplete(io, m.status as IoStatus);
});

function forward(r: Remote, io: BdevIo): void {
  const slot = r.free.pop();
  if (slot === undefined) {
    bdevIoComplete(io, IoStatus.NOMEM);
    return;
  }
  if (io.type === IoType.WRITE) {
    const s = r.stage[slot];
    let off = 0;
    for (const v of io.iovs) {
      s.set(v, off);
      off += v.length;
    }
  }
  r.pending[slot] = io;
  ioOut.id = r.info.id;
  ioOut.from = reactorIndex();
  ioOut.tid = getThread()?.id ?? 0;
  ioOut.slot = slot;
  ioOut.type = io.type;
  ioOut.lba = io.offsetBlocks;
  ioOut.count = io.numBlocks;
  send({ id: ownerThread(r.info), reactor: r.info.owner }, ioH, ioOut);
}

/** The owner reactor's first thread (where the initiator and its poller live). */
function ownerThread(i: Info): number {
  return i.owner + 1;
}

// ---- control operations ----------------------------------------------------------------------

function register(info: Info, submit: (io: BdevIo) => void, destruct: (done: () => void) => void): Bdev {
  return bdevRegister({
    name: info.name,
    uuid: info.uuid,
    productName: 'VirtioBlk Disk',
    blockSize: info.blockSize,
    numBlocks: info.numBlocks,
    writeCache: info.writeCache,
    maxRwBlocks: info.maxTransfer / info.blockSize,
    module: virtioModule,
    fn: {
      submitRequest: (_ch, io) => submit(io),
      ioTypeSupported: SUPPORTED(info),
      getIoChannel: channel,
      destruct,
      dumpInfoJson: () => ({
        virtio: {
          trtype: 'user',
          traddr: info.traddr,
          dev_type: 'blk',
          vq_count: info.vq_count,
          vq_size: info.vq_size,
          owner_reactor: info.owner,
        },
      }),
    },
  });
}

function fail(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * On the owner: connect, negotiate and start the queues, register the bdev. The initiator's
 * control requests are awaited across event-loop turns; its completion poller must be registered
 * on this reactor's thread, so that thread stays current until the attach settles.
 */
function attach(p: VirtioAttachParams): Promise<Info> {
  const t = getThread() as Thread;
  if (bdevGetByName(p.name) !== undefined) throw fail('EEXIST', `bdev ${p.name} already exists`);
  const maxTransfer = 128 * 1024;
  const slots = p.vq_size;
  const stageBytes = p.reactors * slots * maxTransfer;
  const sticky = () => {
    setCurrentThread(t);
  };
  return VirtioUserBlk.attach({
    path: p.traddr,
    name: p.name,
    numQueues: p.vq_count,
    queueSize: p.vq_size,
    maxTransfer,
    bufferBytes: stageBytes,
    pump: sticky,
  }).then(
    (dev) => {
      sticky();
      try {
        const mem = dev.frontend.memory;
        const info: Info = {
          id: p.id,
          name: p.name,
          owner: reactorIndex(),
          traddr: p.traddr,
          vq_count: dev.queueCount,
          vq_size: p.vq_size,
          uuid: dev.uuid,
          blockSize: dev.blockSize,
          numBlocks: dev.numBlocks,
          writeCache: dev.writeCache,
          unmap: dev.unmapSupported,
          readOnly: dev.readOnly,
          maxTransfer,
          handle: mem.handle,
          stageOffset: dev.sharedBuffer(0, 0).byteOffset - mem.bytes.byteOffset,
          slots,
        };
        let bdev: Bdev;
        try {
          bdev = register(
            info,
            // An exception here is contained, counted and failed by the bdev layer (submitErrors).
            (io) => submitTo(dev, io.type, io.iovs, io.offsetBlocks, io.numBlocks, ownDone, io),
            (d) => {
              owned.delete(p.id);
              dev.detach();
              d();
            },
          );
        } catch (e) {
          dev.detach();
          throw e;
        }
        owned.set(p.id, { info, dev, bdev, fwds: [] });
        return info;
      } finally {
        setCurrentThread(null);
      }
    },
    (e: Error) => {
      setCurrentThread(null);
      // A native call that failed (no socket there, a refused connection) means no device, as in
      // SPDK; a protocol error keeps its EPROTO, the vhost layer's own errors their codes.
      const code = codeOf(e);
      const native = e.cause instanceof NativeError || e instanceof NativeError;
      throw fail(
        code === undefined || (native && code !== 'EPROTO') ? 'ENODEV' : code,
        `${p.traddr}: ${e.message}`,
      );
    },
  );
}

defineControl(virtioAttach, (p, done) => {
  attach(p).then(
    (info) => done(null, info),
    (e: Error) => done(e),
  );
});

/** On every other reactor: the same bdev, forwarding to the owner. */
function join(info: Info): void {
  if (bdevGetByName(info.name) !== undefined) throw fail('EEXIST', `bdev ${info.name} already exists`);
  const region = DmaRegion.attach(info.handle);
  const base = info.stageOffset + reactorIndex() * info.slots * info.maxTransfer;
  const stage: Uint8Array[] = [];
  const free: number[] = [];
  for (let s = 0; s < info.slots; s++) {
    stage.push(region.bytes.subarray(base + s * info.maxTransfer, base + (s + 1) * info.maxTransfer));
    free.push(info.slots - 1 - s);
  }
  const r: Remote = { info, region, stage, free, pending: new Array(info.slots).fill(null) };
  const bdev = register(
    info,
    (io) => forward(r, io),
    (d) => {
      remotes.delete(info.id);
      // The view goes with the bdev (the owner's memory stays until the owner hangs up).
      if (r.pending.every((x) => x === null)) region.close();
      d();
    },
  );
  remotes.set(info.id, { remote: r, bdev });
}

defineControl(virtioJoin, (info, done) => {
  join(info);
  done(null, true);
});

// bdevperf (storkit bdevperf --json) loads the same method from its config: reactor 0 attaches
// (SPDK's parameters, checked as the RPC checks them), the other reactors join.
let perfIds = 1 << 20;
registerConfigMethod('bdev_virtio_attach_controller', async (q) => {
  const name = q.name;
  const traddr = q.traddr;
  const vqSize = q.vq_size ?? 128;
  const vqCount = q.vq_count ?? 1;
  if (typeof name !== 'string' || name === '') throw fail('EINVAL', 'bdev_virtio_attach_controller: name');
  if (typeof traddr !== 'string' || traddr === '')
    throw fail('EINVAL', 'bdev_virtio_attach_controller: traddr');
  if (String(q.trtype).toLowerCase() !== 'user' || q.dev_type !== 'blk')
    throw fail('ENOTSUP', 'bdev_virtio_attach_controller: only trtype "user", dev_type "blk"');
  if (typeof vqSize !== 'number' || vqSize < 2 || vqSize > 1024 || (vqSize & (vqSize - 1)) !== 0)
    throw fail(
      'EINVAL',
      `bdev_virtio_attach_controller: vq_size ${String(vqSize)} is not a power of two in 2..1024`,
    );
  if (typeof vqCount !== 'number' || !Number.isInteger(vqCount) || vqCount < 1 || vqCount > 16)
    throw fail('EINVAL', `bdev_virtio_attach_controller: vq_count ${String(vqCount)}`);
  const info = await attach({
    id: perfIds++,
    name,
    traddr,
    vq_count: vqCount,
    vq_size: vqSize,
    reactors: reactorCount(),
  });
  return { method: 'storkit_bdev_virtio_join', params: info as unknown as Record<string, unknown> };
});
registerConfigMethod('storkit_bdev_virtio_join', (q) => {
  join(q as unknown as Info);
  return null;
});

/** Unregister this reactor's instance (the owner's destruct hangs up). */
defineControl(virtioDetach, ({ id }, done) => {
  const b = owned.get(id)?.bdev ?? remotes.get(id)?.bdev;
  if (b === undefined) return done(null, false);
  bdevUnregister(b, () => done(null, true));
});

defineSubsystem({
  name: 'bdev_virtio',
  fini(done) {
    for (const o of owned.values()) o.dev.detach();
    owned.clear();
    remotes.clear();
    done();
  },
});
