import type { Thread } from '@storkit/reactor';
import type { Bdev, BdevModule } from './bdev.js';
import type { BdevIo } from './bdev-io.js';
import type { BdevEvent } from './types.js';

/** Told about hot remove and resize, on the thread that opened the descriptor. */
export type BdevEventCb<C = unknown> = (type: BdevEvent, bdev: Bdev, ctx: C) => void;

/** Called for each I/O outstanding longer than the descriptor's timeout (hang detection). */
export type BdevTimeoutCb<C = unknown> = (ctx: C, io: BdevIo) => void;

/** An open handle on a bdev (spdk_bdev_desc), owned by the thread that opened it. */
export class BdevDesc {
  readonly bdev: Bdev;
  readonly thread: Thread;
  /** @internal */ write: boolean;
  /** @internal */ readonly eventCb: BdevEventCb<unknown>;
  /** @internal */ readonly eventCtx: unknown;
  /** @internal */ closed = false;
  /** @internal */ claimModule: BdevModule | null = null;
  /** @internal 0 = no timeout */ timeoutTicks = 0;
  /** @internal */ timeoutCb: BdevTimeoutCb<unknown> | null = null;
  /** @internal */ timeoutCtx: unknown = undefined;

  /** @internal use bdevOpenExt */
  constructor(bdev: Bdev, thread: Thread, write: boolean, eventCb: BdevEventCb<unknown>, eventCtx: unknown) {
    this.bdev = bdev;
    this.thread = thread;
    this.write = write;
    this.eventCb = eventCb;
    this.eventCtx = eventCtx;
  }

  get writable(): boolean {
    return this.write;
  }
  get isClosed(): boolean {
    return this.closed;
  }
}
