// The block backend contract (@storkit/block) over a bdev: a descriptor plus an I/O channel of the
// thread that submits (the thread a qpair, connection or controller lives on). The one adapter
// every target uses (NVMe-oF namespaces, iSCSI and vhost-scsi LUNs, vhost-blk).
//
// The contract's callback is the bdev layer's own (status, ctx), so a target's callback and
// context go to the bdev layer unchanged: no bridge, no closure, no allocation per I/O.
//
// ENOMEM (the channel's bdev_io pool is empty): the I/O waits in this backend's FIFO and the
// backend waits on the bdev layer's queueIoWait; when a bdev_io comes back, held I/O is
// resubmitted oldest first, and I/O arriving meanwhile queues behind it, so order is kept. The
// held records are pooled: the ENOMEM path allocates nothing once it has seen its depth.
//
// An exception from the bdev layer (a bad range, an unsupported type, a closed descriptor: the
// target checked these, so it is a bug) fails that I/O, later, and is counted, kept and logged
// (`errors`), never swallowed.
import {
  type BlockBackend,
  ContainedErrors,
  DeferredCompletions,
  type IoCb,
  type IoVec,
  type Lba,
} from '@storkit/block';
import type { IoChannel } from '@storkit/reactor';
import type { BdevChannel } from './channel.js';
import type { BdevDesc } from './desc.js';
import {
  bdevCompareAndWritev,
  bdevComparev,
  bdevFlush,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWritev,
  bdevWriteZeroes,
  queueIoWait,
} from './io.js';
import { IoWaitEntry } from './io-wait.js';
import { bdevClose } from './registry.js';
import { ENOMEM, IoStatus, IoType } from './types.js';

const Kind = { Read: 0, Write: 1, Compare: 2, Caw: 3, Unmap: 4, Zeroes: 5, Flush: 6, Reset: 7 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

/** An I/O held back by ENOMEM; pooled and reused. */
class Held {
  kind: Kind = Kind.Read;
  iov: IoVec = NONE;
  cmp: IoVec = NONE;
  offset = 0;
  count = 0;
  cb: IoCb<unknown> = noop;
  ctx: unknown = undefined;
}

const NONE: IoVec = [];
function noop(): void {}

/** What a BdevBlockBackend has seen besides plain I/O. */
export interface BdevBlockBackendStats {
  /** Submits that found no free bdev_io and waited (queueIoWait). */
  nomemWaits: number;
  /** I/O held now, waiting for a bdev_io. */
  held: number;
  /** I/O that had to wait for a bdev_io, all time (SPDK's pending_bdev_io counts these). */
  heldTotal: number;
}

export class BdevBlockBackend implements BlockBackend {
  readonly #desc: BdevDesc;
  readonly #ch: IoChannel<BdevChannel>;
  readonly #wait = new IoWaitEntry(() => this.#resume());
  readonly #later = new DeferredCompletions();
  // FIFO ring of held I/O; records stay in the ring's slots and are reused.
  #ring: Held[] = [];
  #head = 0;
  #n = 0;
  #closed = false;
  /** Exceptions contained on this backend's I/O path (tests assert none). */
  readonly errors: ContainedErrors;
  readonly stats: BdevBlockBackendStats = { nomemWaits: 0, held: 0, heldTotal: 0 };

  /** `desc` and `ch` belong to the thread that will submit. */
  constructor(desc: BdevDesc, ch: IoChannel<BdevChannel>) {
    this.#desc = desc;
    this.#ch = ch;
    this.errors = new ContainedErrors(`bdev ${desc.bdev.name} backend`);
  }

  get name(): string {
    return this.#desc.bdev.name;
  }
  get blockSize(): number {
    return this.#desc.bdev.blockSize;
  }
  get numBlocks(): number {
    return this.#desc.bdev.numBlocks;
  }
  get uuid(): string {
    return this.#desc.bdev.uuid;
  }
  get writeCache(): boolean {
    return this.#desc.bdev.writeCache;
  }
  /** A bdev that deallocates on UNMAP reads those blocks back as zeroes (SPDK's LBPRZ rule). */
  get unmapSupported(): boolean {
    return this.#desc.bdev.ioTypeSupported(IoType.UNMAP);
  }
  get optimalIoBoundary(): number {
    return this.#desc.bdev.optimalIoBoundary;
  }
  get readOnly(): boolean {
    return !this.#desc.write || !this.#desc.bdev.ioTypeSupported(IoType.WRITE);
  }
  /** The descriptor (for its owner: events, claims). */
  get desc(): BdevDesc {
    return this.#desc;
  }

  readv<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Read, iov, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  writev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Write, iov, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  comparev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Compare, iov, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  compareAndWritev<C>(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Caw, write, compare, offset, count, cb as IoCb<unknown>, ctx);
  }
  unmap<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Unmap, NONE, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  writeZeroes<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Zeroes, NONE, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  /** Nothing to flush (an empty range, or a bdev without a volatile cache): SUCCESS, still later. */
  flush<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    if (count === 0 || !this.#desc.bdev.ioTypeSupported(IoType.FLUSH))
      this.#later.push(cb, ctx, IoStatus.SUCCESS);
    else this.#submit(Kind.Flush, NONE, NONE, offset, count, cb as IoCb<unknown>, ctx);
  }
  reset<C>(cb: IoCb<C>, ctx: C): void {
    this.#submit(Kind.Reset, NONE, NONE, 0, 0, cb as IoCb<unknown>, ctx);
  }

  /** Releases the channel and the descriptor (on their thread). I/O still held fails ABORTED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#n > 0) {
      const h = this.#shift();
      this.#later.push(h.cb, h.ctx, IoStatus.ABORTED);
      h.cb = noop;
      h.ctx = undefined;
    }
    this.#ch.put();
    bdevClose(this.#desc);
  }

  #submit(
    kind: Kind,
    iov: IoVec,
    cmp: IoVec,
    offset: Lba,
    count: Lba,
    cb: IoCb<unknown>,
    ctx: unknown,
  ): void {
    if (this.#n > 0) {
      this.#hold(kind, iov, cmp, offset, count, cb, ctx);
      return;
    }
    if (this.#try(kind, iov, cmp, offset, count, cb, ctx) === ENOMEM) {
      this.#hold(kind, iov, cmp, offset, count, cb, ctx);
      this.#waitForIo();
    }
  }

  /** 0 when submitted (or failed, later), ENOMEM when the channel has no free bdev_io. */
  #try(kind: Kind, iov: IoVec, cmp: IoVec, offset: Lba, count: Lba, cb: IoCb<unknown>, ctx: unknown): number {
    if (this.#closed) {
      this.#later.push(cb, ctx, IoStatus.ABORTED);
      return 0;
    }
    const d = this.#desc;
    const ch = this.#ch;
    try {
      switch (kind) {
        case Kind.Read:
          return bdevReadv(d, ch, iov, offset, count, cb, ctx);
        case Kind.Write:
          return bdevWritev(d, ch, iov, offset, count, cb, ctx);
        case Kind.Compare:
          return bdevComparev(d, ch, iov, offset, count, cb, ctx);
        case Kind.Caw:
          return bdevCompareAndWritev(d, ch, cmp, iov, offset, count, cb, ctx);
        case Kind.Unmap:
          return bdevUnmap(d, ch, offset, count, cb, ctx);
        case Kind.Zeroes:
          return bdevWriteZeroes(d, ch, offset, count, cb, ctx);
        case Kind.Flush:
          return bdevFlush(d, ch, offset, count, cb, ctx);
        default:
          return bdevReset(d, ch, cb, ctx);
      }
    } catch (e) {
      this.errors.record(e);
      this.#later.push(cb, ctx, IoStatus.FAILED);
      return 0;
    }
  }

  #hold(kind: Kind, iov: IoVec, cmp: IoVec, offset: Lba, count: Lba, cb: IoCb<unknown>, ctx: unknown): void {
    if (this.#n === this.#ring.length) this.#grow();
    const h = this.#ring[(this.#head + this.#n) % this.#ring.length];
    this.#n++;
    this.stats.held = this.#n;
    this.stats.heldTotal++;
    h.kind = kind;
    h.iov = iov;
    h.cmp = cmp;
    h.offset = offset;
    h.count = count;
    h.cb = cb;
    h.ctx = ctx;
  }

  #shift(): Held {
    const h = this.#ring[this.#head];
    this.#head = (this.#head + 1) % this.#ring.length;
    this.#n--;
    this.stats.held = this.#n;
    return h;
  }

  #grow(): void {
    const old = this.#ring;
    const ring: Held[] = [];
    for (let i = 0; i < this.#n; i++) ring.push(old[(this.#head + i) % old.length]);
    const size = Math.max(16, old.length * 2);
    while (ring.length < size) ring.push(new Held());
    this.#ring = ring;
    this.#head = 0;
  }

  #waitForIo(): void {
    this.stats.nomemWaits++;
    queueIoWait(this.#ch, this.#wait);
  }

  /** A bdev_io is free again: resubmit held I/O oldest first until the pool runs dry again. */
  #resume(): void {
    while (this.#n > 0) {
      const h = this.#ring[this.#head];
      if (this.#try(h.kind, h.iov, h.cmp, h.offset, h.count, h.cb, h.ctx) === ENOMEM) {
        this.#waitForIo();
        return;
      }
      this.#shift();
      h.iov = NONE;
      h.cmp = NONE;
      h.cb = noop;
      h.ctx = undefined;
    }
  }
}
