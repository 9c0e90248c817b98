// Shared plumbing for virtual bdevs (split, passthru, delay, error, raid): open and claim a base
// bdev, keep per-thread channels to the bases in the vbdev's own io_device, and forward an I/O to
// a base with the vbdev's bdev_io as the callback argument (no allocation per I/O).
import { getIoChannel, type IoChannel, ioDeviceRegister, ioDeviceUnregister } from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import type { BdevChannel } from '../channel.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import {
  bdevAbort,
  bdevComparev,
  bdevFlush,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWritev,
  bdevWriteZeroes,
} from '../io.js';
import { bdevIoComplete } from '../io-path.js';
import { bdevClose, bdevGetByName, bdevGetIoChannel, bdevModuleClaimBdev, bdevOpenExt } from '../registry.js';
import { BdevEvent, ENOMEM, type IoCb, IoStatus, IoType } from '../types.js';

/** Open `name` read-write and take the module's exclusive claim; `onRemove` runs on hot remove. */
export function openBase(
  name: string,
  module: BdevModule,
  onRemove: (bdev: Bdev) => void,
  onResize?: (bdev: Bdev) => void,
): BdevDesc {
  const b = bdevGetByName(name);
  if (b === undefined) throw new BdevError('ENODEV', `base bdev ${name} does not exist`);
  const desc = bdevOpenExt(name, false, (type, bdev) => {
    if (type === BdevEvent.REMOVE) onRemove(bdev);
    else if (type === BdevEvent.RESIZE) onResize?.(bdev);
  });
  try {
    bdevModuleClaimBdev(b, desc, module);
  } catch (e) {
    bdevClose(desc);
    throw e;
  }
  return desc;
}

/**
 * Whether `e` is openBase's refusal because another module holds the base (its claim, EPERM as in
 * SPDK): an examine hook then leaves its vbdev pending, and lets any other error surface.
 */
export function isClaimed(e: unknown): boolean {
  return e instanceof BdevError && e.code === 'EPERM';
}

/** Per-thread channels to the base bdevs: `chans[i]` for base i (null after that base left). */
export interface BaseChannels {
  chans: (IoChannel<BdevChannel> | null)[];
}

/**
 * Register the vbdev's io_device: each thread's context holds a channel to every base that is
 * there when the channel is made. Returns a getIoChannel for the fn table.
 */
export function registerVbdevDevice(
  key: object,
  name: string,
  bases: () => readonly (BdevDesc | null)[],
): () => IoChannel<unknown> {
  ioDeviceRegister<BaseChannels>(key, {
    name,
    create: () => ({ chans: bases().map((d) => (d === null ? null : bdevGetIoChannel(d))) }),
    destroy: (ch) => {
      for (const c of ch.ctx.chans) c?.put();
    },
  });
  return () => getIoChannel(key);
}

/** Unregister the vbdev's io_device and close its base descriptors; then `done`. */
export function releaseVbdev(key: object, descs: readonly (BdevDesc | null)[], done: () => void): void {
  ioDeviceUnregister(key, () => {
    for (const d of descs) if (d !== null && !d.isClosed) bdevClose(d);
    done();
  });
}

/**
 * Submit `io`'s operation to a base at `offset` (blocks) with `cb(status, cbArg)`. Returns 0, or
 * ENOMEM when the base channel has no free bdev_io (complete the vbdev I/O with NOMEM to retry).
 */
export function submitToBase<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  io: BdevIo,
  offset: number,
  num: number,
  iovs: readonly Uint8Array[],
  cb: IoCb<A>,
  arg: A,
): number {
  switch (io.type) {
    case IoType.READ:
      return bdevReadv(desc, ch, iovs, offset, num, cb, arg);
    case IoType.WRITE:
      return bdevWritev(desc, ch, iovs, offset, num, cb, arg);
    case IoType.COMPARE:
      return bdevComparev(desc, ch, iovs, offset, num, cb, arg);
    case IoType.WRITE_ZEROES:
      return bdevWriteZeroes(desc, ch, offset, num, cb, arg);
    case IoType.UNMAP:
      return bdevUnmap(desc, ch, offset, num, cb, arg);
    case IoType.FLUSH:
      return bdevFlush(desc, ch, offset, num, cb, arg);
    case IoType.RESET:
      return bdevReset(desc, ch, cb, arg);
    case IoType.ABORT:
      return bdevAbort(desc, ch, io.abortTarget, cb, arg);
    default:
      throw new BdevError('ENOTSUP', `I/O type ${io.type} cannot be forwarded`);
  }
}

/** Completion for a one-to-one forwarded I/O: the base's status becomes the vbdev I/O's. */
export function forwardDone(status: IoStatus, io: BdevIo): void {
  bdevIoComplete(io, status);
}

/** Forward `io` to one base, shifted by `delta` blocks; NOMEM from the base is passed up. */
export function forward(desc: BdevDesc, ch: IoChannel<BdevChannel>, io: BdevIo, delta: number): void {
  if (
    submitToBase(desc, ch, io, io.offsetBlocks + delta, io.numBlocks, io.iovs, forwardDone, io) === ENOMEM
  ) {
    bdevIoComplete(io, IoStatus.NOMEM);
  }
}

/** I/O types a vbdev forwards when its base supports them. */
export function baseSupports(base: Bdev, t: IoType): boolean {
  if (t === IoType.ABORT) return base.ioTypeSupported(IoType.ABORT);
  // NVMe passthru reaches a controller only from the bdev that owns it; vbdevs do not forward it.
  if (t === IoType.NVME_ADMIN || t === IoType.NVME_IO) return false;
  return base.ioTypeSupported(t);
}
