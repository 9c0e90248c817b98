// The consumer's I/O functions (spdk_bdev_readv_blocks and friends).
//
// Contract, for every function here:
// - A synchronous throw (BdevError: EINVAL bad range/buffers, EPERM read-only descriptor, ENOTSUP
//   type not supported) means nothing was submitted and the callback never runs.
// - A return of ENOMEM (-12) means no bdev_io was free on this channel: nothing was submitted, the
//   callback never runs; use queueIoWait to be called when one is back.
// - A return of 0 means the callback `cb(status, cbArg)` runs exactly once, on this thread, never
//   inside the call. Buffers belong to the bdev layer until then.
// Offsets and counts are in blocks. cb should be a module-level function and cbArg your context:
// the steady-state path allocates nothing.
import type { IoChannel } from '@storkit/reactor';
import type { BdevIo } from './bdev-io.js';
import type { BdevChannel } from './channel.js';
import { abortStart } from './control.js';
import type { BdevDesc } from './desc.js';
import { BdevError } from './errors.js';
import { sampleNow, submitIo } from './io-path.js';
import type { IoWaitEntry } from './io-wait.js';
import { resetStart } from './reset.js';
import { ENOMEM, type IoCb, IoType, type NvmeCompletion } from './types.js';

function check(desc: BdevDesc, type: IoType, offset: number, num: number, write: boolean): void {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} is closed`);
  if (write && !desc.write) throw new BdevError('EPERM', `descriptor of ${desc.bdev.name} is read-only`);
  const b = desc.bdev;
  if (
    !b.supported[type] &&
    !(type === IoType.COMPARE && b.supported[IoType.READ]) &&
    type !== IoType.COMPARE_AND_WRITE
  ) {
    throw new BdevError('ENOTSUP', `bdev ${b.name} does not support this I/O type (${type})`);
  }
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(num) ||
    offset < 0 ||
    num < 1 ||
    offset + num > b.numBlocks
  ) {
    throw new BdevError('EINVAL', `blocks ${offset}+${num} outside bdev ${b.name} (${b.numBlocks} blocks)`);
  }
}

function checkIovs(desc: BdevDesc, iovs: readonly Uint8Array[], num: number): void {
  let n = 0;
  for (let i = 0; i < iovs.length; i++) n += iovs[i].length;
  if (n !== num * desc.bdev.blockSize) {
    throw new BdevError('EINVAL', `buffers hold ${n} bytes, ${num} blocks need ${num * desc.bdev.blockSize}`);
  }
}

function take(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  type: IoType,
  offset: number,
  num: number,
): BdevIo | null {
  const bch = ch.ctx;
  if (bch.bdev !== desc.bdev) throw new BdevError('EINVAL', `channel is not a channel of ${desc.bdev.name}`);
  const io = bch.getIo();
  if (io === null) return null;
  io.type = type;
  io.desc = desc;
  io.offsetBlocks = offset;
  io.numBlocks = num;
  return io;
}

function go<A>(io: BdevIo, cb: IoCb<A>, cbArg: A): number {
  io.cb = cb as IoCb<unknown>;
  io.cbArg = cbArg;
  submitIo(io);
  return 0;
}

function rw<A>(
  type: IoType,
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  iovs: readonly Uint8Array[] | null,
  buf: Uint8Array | null,
  offset: number,
  num: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  check(desc, type, offset, num, type === IoType.WRITE);
  if (iovs !== null) checkIovs(desc, iovs, num);
  else if (buf === null || buf.length !== num * desc.bdev.blockSize) {
    throw new BdevError(
      'EINVAL',
      `buffer of ${buf?.length} bytes for ${num} blocks of ${desc.bdev.blockSize}`,
    );
  }
  const io = take(desc, ch, type, offset, num);
  if (io === null) return ENOMEM;
  if (iovs !== null) io.iovs = iovs;
  else {
    io.iov1[0] = buf as Uint8Array;
    io.iovs = io.iov1;
  }
  return go(io, cb, cbArg);
}

/** Read blocks into a scatter list (spdk_bdev_readv_blocks). */
export function bdevReadv<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  iovs: readonly Uint8Array[],
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return rw(IoType.READ, desc, ch, iovs, null, offsetBlocks, numBlocks, cb, cbArg);
}

/** Read blocks into one buffer (spdk_bdev_read_blocks). */
export function bdevRead<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  buf: Uint8Array,
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return rw(IoType.READ, desc, ch, null, buf, offsetBlocks, numBlocks, cb, cbArg);
}

/** Write blocks from a scatter list (spdk_bdev_writev_blocks). */
export function bdevWritev<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  iovs: readonly Uint8Array[],
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return rw(IoType.WRITE, desc, ch, iovs, null, offsetBlocks, numBlocks, cb, cbArg);
}

/** Write blocks from one buffer (spdk_bdev_write_blocks). */
export function bdevWrite<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  buf: Uint8Array,
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return rw(IoType.WRITE, desc, ch, null, buf, offsetBlocks, numBlocks, cb, cbArg);
}

/** Compare blocks with a scatter list: MISCOMPARE when they differ (spdk_bdev_comparev_blocks). */
export function bdevComparev<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  iovs: readonly Uint8Array[],
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return rw(IoType.COMPARE, desc, ch, iovs, null, offsetBlocks, numBlocks, cb, cbArg);
}

/**
 * Compare with `cmpIovs` and, only if equal, write `writeIovs`, atomically with respect to every
 * other writer of these blocks on every channel and reactor (spdk_bdev_comparev_and_writev_blocks).
 * MISCOMPARE: nothing was written.
 */
export function bdevCompareAndWritev<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  cmpIovs: readonly Uint8Array[],
  writeIovs: readonly Uint8Array[],
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  check(desc, IoType.COMPARE_AND_WRITE, offsetBlocks, numBlocks, true);
  if (!desc.bdev.supported[IoType.WRITE] || !desc.bdev.supported[IoType.READ]) {
    throw new BdevError('ENOTSUP', `bdev ${desc.bdev.name} cannot compare-and-write`);
  }
  checkIovs(desc, cmpIovs, numBlocks);
  checkIovs(desc, writeIovs, numBlocks);
  const io = take(desc, ch, IoType.COMPARE_AND_WRITE, offsetBlocks, numBlocks);
  if (io === null) return ENOMEM;
  io.cmpIovs = cmpIovs;
  io.iovs = writeIovs;
  return go(io, cb, cbArg);
}

function noData<A>(
  type: IoType,
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  offset: number,
  num: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  check(desc, type, offset, num, type !== IoType.FLUSH);
  const io = take(desc, ch, type, offset, num);
  if (io === null) return ENOMEM;
  return go(io, cb, cbArg);
}

/** Zero blocks (spdk_bdev_write_zeroes_blocks). */
export function bdevWriteZeroes<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return noData(IoType.WRITE_ZEROES, desc, ch, offsetBlocks, numBlocks, cb, cbArg);
}

/** Deallocate blocks (spdk_bdev_unmap_blocks). */
export function bdevUnmap<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return noData(IoType.UNMAP, desc, ch, offsetBlocks, numBlocks, cb, cbArg);
}

/** Make written blocks durable (spdk_bdev_flush_blocks). */
export function bdevFlush<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  offsetBlocks: number,
  numBlocks: number,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return noData(IoType.FLUSH, desc, ch, offsetBlocks, numBlocks, cb, cbArg);
}

/**
 * Reset the bdev (spdk_bdev_reset): every channel on every reactor is frozen, I/O the bdev layer
 * holds back is aborted, the module resets, then channels thaw and `cb` runs.
 */
export function bdevReset<A>(desc: BdevDesc, ch: IoChannel<BdevChannel>, cb: IoCb<A>, cbArg: A): number {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} is closed`);
  const io = take(desc, ch, IoType.RESET, 0, 0);
  if (io === null) return ENOMEM;
  io.cb = cb as IoCb<unknown>;
  io.cbArg = cbArg;
  sampleNow(ch.ctx);
  io.submitTick = ch.ctx.shared.now;
  resetStart(io);
  return 0;
}

/**
 * Abort the outstanding I/O of this channel submitted with cbArg `target` (spdk_bdev_abort).
 * Aborted I/O completes with ABORTED; `cb` gets SUCCESS when all were aborted, FAILED when none
 * matched or one could not be aborted.
 */
export function bdevAbort<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  target: unknown,
  cb: IoCb<A>,
  cbArg: A,
): number {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} is closed`);
  const io = take(desc, ch, IoType.ABORT, 0, 0);
  if (io === null) return ENOMEM;
  io.cb = cb as IoCb<unknown>;
  io.cbArg = cbArg;
  sampleNow(ch.ctx);
  io.submitTick = ch.ctx.shared.now;
  abortStart(io, target);
  return 0;
}

function nvmePassthru<A>(
  type: IoType,
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  cmd: Uint8Array,
  buf: Uint8Array | null,
  cpl: NvmeCompletion,
  cb: IoCb<A>,
  cbArg: A,
): number {
  if (desc.closed) throw new BdevError('EINVAL', `descriptor of ${desc.bdev.name} is closed`);
  if (!desc.write) throw new BdevError('EPERM', `descriptor of ${desc.bdev.name} is read-only`);
  if (!desc.bdev.supported[type])
    throw new BdevError('ENOTSUP', `bdev ${desc.bdev.name} does not pass NVMe commands through (${type})`);
  if (cmd.length !== 64) throw new BdevError('EINVAL', `an NVMe command is 64 bytes, not ${cmd.length}`);
  const io = take(desc, ch, type, 0, 0);
  if (io === null) return ENOMEM;
  io.nvmeCmd = cmd;
  io.nvmeCpl = cpl;
  if (buf !== null) {
    io.iov1[0] = buf;
    io.iovs = io.iov1;
  }
  return go(io, cb, cbArg);
}

/**
 * Send an NVMe admin command to the controller behind the bdev (spdk_bdev_nvme_admin_passthru).
 * `cmd` is a 64-byte SQE (its CID is the driver's to set); data moves in `buf`, in the direction
 * the opcode's low bits give. `cpl` receives the completion's DW0 and status before `cb` runs;
 * `cb` gets SUCCESS when that status is 0, else FAILED. Needs a descriptor open for writing.
 */
export function bdevNvmeAdminPassthru<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  cmd: Uint8Array,
  buf: Uint8Array | null,
  cpl: NvmeCompletion,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return nvmePassthru(IoType.NVME_ADMIN, desc, ch, cmd, buf, cpl, cb, cbArg);
}

/** Send an NVMe I/O command to the bdev's namespace (spdk_bdev_nvme_io_passthru; NSID is set for you). */
export function bdevNvmeIoPassthru<A>(
  desc: BdevDesc,
  ch: IoChannel<BdevChannel>,
  cmd: Uint8Array,
  buf: Uint8Array | null,
  cpl: NvmeCompletion,
  cb: IoCb<A>,
  cbArg: A,
): number {
  return nvmePassthru(IoType.NVME_IO, desc, ch, cmd, buf, cpl, cb, cbArg);
}

/**
 * Be called back when a bdev_io is free again on this channel (spdk_bdev_queue_io_wait), after a
 * submit returned ENOMEM. `entry` is yours, reusable once its callback ran. Throws EINVAL when the
 * entry is already queued or the pool has free bdev_ios (retry now instead).
 */
export function queueIoWait(ch: IoChannel<BdevChannel>, entry: IoWaitEntry): void {
  const bch = ch.ctx;
  if (entry.queued) throw new BdevError('EINVAL', 'io wait entry is already queued');
  if (bch.freeCount > 0) throw new BdevError('EINVAL', 'bdev_ios are free on this channel: retry now');
  bch.ioWait.push(entry);
}
