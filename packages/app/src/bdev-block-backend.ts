// @storkit/scsi's BlockBackend over a bdev: a descriptor plus an I/O channel of the reactor thread
// that submits (the thread a connection or controller lives on). Shared by the iSCSI target and
// vhost-scsi. The SCSI layer's completion (status, info) is bridged from the bdev's (status, arg)
// by one module-level function with the caller's callback as the arg, so the I/O path allocates
// nothing. A submit that finds the channel's bdev_io pool empty (ENOMEM) waits for a free bdev_io
// (queueIoWait) and is retried then, in order.
import {
  type BdevChannel,
  type BdevDesc,
  IoStatus as BdevStatus,
  bdevClose,
  bdevCompareAndWritev,
  bdevFlush,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWritev,
  bdevWriteZeroes,
  ENOMEM,
  IoType,
  IoWaitEntry,
  queueIoWait,
} from '@storkit/bdev';
import type { IoChannel } from '@storkit/reactor';
import { type BlockBackend, type IoCallback, IoStatus, type IoVec, type Lba } from '@storkit/scsi';

function mapStatus(s: BdevStatus): IoStatus {
  if (s === BdevStatus.SUCCESS) return IoStatus.Success;
  if (s === BdevStatus.MISCOMPARE) return IoStatus.Miscompare;
  return IoStatus.Failed;
}

/** bdev completion → SCSI completion: the SCSI callback travels as the bdev cbArg. */
function bridge(status: BdevStatus, cb: IoCallback): void {
  cb(mapStatus(status), 0);
}

const Kind = { Read: 0, Write: 1, Unmap: 2, Zeroes: 3, Flush: 4, Caw: 5, Reset: 6 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

/** An I/O held back by ENOMEM (only made then: the steady state never gets here). */
interface Held {
  kind: Kind;
  iov: IoVec;
  cmp: IoVec;
  offset: Lba;
  count: Lba;
  cb: IoCallback;
}

const NONE: IoVec = [];

export class BdevBlockBackend implements BlockBackend {
  readonly #desc: BdevDesc;
  readonly #ch: IoChannel<BdevChannel>;
  readonly #held: Held[] = [];
  readonly #wait = new IoWaitEntry(() => this.#retry());
  #closed = false;

  /** `desc` and `ch` belong to the thread that will submit. */
  constructor(desc: BdevDesc, ch: IoChannel<BdevChannel>) {
    this.#desc = desc;
    this.#ch = ch;
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
    return !this.#desc.bdev.ioTypeSupported(IoType.WRITE);
  }

  readv(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    this.#submit(Kind.Read, iov, NONE, offset, count, cb);
  }
  writev(iov: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    this.#submit(Kind.Write, iov, NONE, offset, count, cb);
  }
  unmap(offset: Lba, count: Lba, cb: IoCallback): void {
    this.#submit(Kind.Unmap, NONE, NONE, offset, count, cb);
  }
  writeZeroes(offset: Lba, count: Lba, cb: IoCallback): void {
    this.#submit(Kind.Zeroes, NONE, NONE, offset, count, cb);
  }
  /** Nothing to flush (an empty range, or a bdev without a volatile cache): success, still later. */
  flush(offset: Lba, count: Lba, cb: IoCallback): void {
    if (count === 0 || !this.#desc.bdev.ioTypeSupported(IoType.FLUSH))
      queueMicrotask(() => cb(IoStatus.Success, 0));
    else this.#submit(Kind.Flush, NONE, NONE, offset, count, cb);
  }
  compareAndWritev(compare: IoVec, write: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    this.#submit(Kind.Caw, write, compare, offset, count, (st, info) => {
      if (st !== IoStatus.Miscompare) cb(st, info);
      else this.#miscompareOffset(compare, offset, count, cb);
    });
  }
  reset(cb: IoCallback): void {
    this.#submit(Kind.Reset, NONE, NONE, 0, 0, cb);
  }

  /** Releases the channel and the descriptor (on their thread). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ch.put();
    bdevClose(this.#desc);
  }

  #submit(kind: Kind, iov: IoVec, cmp: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    if (this.#held.length > 0) {
      this.#held.push({ kind, iov, cmp, offset, count, cb });
      return;
    }
    if (this.#try(kind, iov, cmp, offset, count, cb) === ENOMEM) {
      this.#held.push({ kind, iov, cmp, offset, count, cb });
      this.#queueWait();
    }
  }

  /** 0 when submitted (or failed asynchronously), ENOMEM when the channel has no free bdev_io. */
  #try(kind: Kind, iov: IoVec, cmp: IoVec, offset: Lba, count: Lba, cb: IoCallback): number {
    const d = this.#desc;
    const ch = this.#ch;
    try {
      switch (kind) {
        case Kind.Read:
          return bdevReadv(d, ch, iov, offset, count, bridge, cb);
        case Kind.Write:
          return bdevWritev(d, ch, iov, offset, count, bridge, cb);
        case Kind.Unmap:
          return bdevUnmap(d, ch, offset, count, bridge, cb);
        case Kind.Zeroes:
          return bdevWriteZeroes(d, ch, offset, count, bridge, cb);
        case Kind.Flush:
          return bdevFlush(d, ch, offset, count, bridge, cb);
        case Kind.Caw:
          return bdevCompareAndWritev(d, ch, cmp, iov, offset, count, bridge, cb);
        default:
          return bdevReset(d, ch, bridge, cb);
      }
    } catch {
      // Bad range, unsupported type, closed descriptor: the I/O fails, still asynchronously.
      queueMicrotask(() => cb(IoStatus.Failed, 0));
      return 0;
    }
  }

  #queueWait(): void {
    try {
      queueIoWait(this.#ch, this.#wait);
    } catch {
      // A bdev_io came back between the submit and here: retry on the next turn.
      setImmediate(() => this.#retry());
    }
  }

  #retry(): void {
    while (this.#held.length > 0) {
      const h = this.#held[0];
      if (this.#try(h.kind, h.iov, h.cmp, h.offset, h.count, h.cb) === ENOMEM) {
        this.#queueWait();
        return;
      }
      this.#held.shift();
    }
  }

  /** COMPARE AND WRITE miscompared: find the first differing byte for the sense data. */
  #miscompareOffset(compare: IoVec, offset: Lba, count: Lba, cb: IoCallback): void {
    const medium = new Uint8Array(count * this.blockSize);
    this.#submit(Kind.Read, [medium], NONE, offset, count, (st) => {
      if (st !== IoStatus.Success) return cb(IoStatus.Miscompare, 0);
      let pos = 0;
      for (const b of compare) {
        for (let j = 0; j < b.length && pos < medium.length; j++, pos++) {
          if (b[j] !== medium[pos]) return cb(IoStatus.Miscompare, pos);
        }
      }
      cb(IoStatus.Miscompare, 0);
    });
  }
}
