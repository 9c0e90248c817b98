// Reset (spdk_bdev_reset): freeze every channel of the bdev on every reactor (I/O held back by the
// bdev layer is aborted, new I/O is aborted), hand the reset to the module, then unfreeze.
import { defineChannelIterator, forEachChannelGlobal } from '@storkit/reactor';
import type { BdevIo } from './bdev-io.js';
import type { BdevChannel } from './channel.js';
import { completeUser, deferComplete, submitToModule } from './io-path.js';
import { qosWaiting } from './qos.js';
import { IoStatus, IoType } from './types.js';

interface ResetArg {
  bdev: string;
  id: number;
}

let seq = 1;
const pending = new Map<number, BdevIo>();

/** @internal Abort everything the bdev layer holds back on `ch` (not what the module has). */
export function abortQueued(ch: BdevChannel): void {
  for (const q of [ch.qosQueue, ch.nomemQueue, ch.lockedQueue]) {
    let io = q.shift();
    while (io !== null) {
      deferComplete(io, IoStatus.ABORTED);
      io = q.shift();
    }
  }
  if (ch.bdev.qos !== null) qosWaiting(ch.bdev.qos, ch.qosShare, false);
}

const freezeIter = defineChannelIterator<ResetArg>('storkit.bdev.reset_freeze', (it) => {
  const ch = it.ctx as BdevChannel;
  ch.frozen++;
  abortQueued(ch);
  it.continue(0);
});

const unfreezeIter = defineChannelIterator<ResetArg>('storkit.bdev.reset_unfreeze', (it) => {
  const ch = it.ctx as BdevChannel;
  if (ch.frozen > 0) ch.frozen--;
  it.continue(0);
});

/** @internal Start a filled RESET bdev_io. */
export function resetStart(io: BdevIo): void {
  const id = io.ch.thread.reactor * 2 ** 32 + seq++;
  io.lockOwner = id;
  pending.set(id, io);
  forEachChannelGlobal(io.bdev.ioDeviceName, freezeIter, { bdev: io.bdev.name, id }, frozen);
}

function frozen(_status: number, arg: ResetArg): void {
  const io = pending.get(arg.id);
  if (io === undefined) return;
  io.stage = 1;
  if (io.bdev.supported[IoType.RESET]) submitToModule(io);
  else deferComplete(io, IoStatus.SUCCESS);
}

/** @internal The module finished the reset: unfreeze, then complete to the caller. */
export function resetFinish(io: BdevIo, status: IoStatus): void {
  io.stage = 2;
  io.childStatus = status;
  forEachChannelGlobal(
    io.bdev.ioDeviceName,
    unfreezeIter,
    { bdev: io.bdev.name, id: io.lockOwner },
    unfrozen,
  );
}

function unfrozen(_status: number, arg: ResetArg): void {
  const io = pending.get(arg.id);
  if (io === undefined) return;
  pending.delete(arg.id);
  completeUser(io, io.childStatus);
}
