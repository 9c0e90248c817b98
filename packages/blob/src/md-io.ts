// Metadata I/O on the metadata thread: whole 4 KiB pages (or page runs) through the base bdev.
import {
  type BdevChannel,
  type BdevDesc,
  bdevRead,
  bdevUnmap,
  bdevWrite,
  bdevWriteZeroes,
  ENOMEM,
  IoStatus,
  IoType,
  IoWaitEntry,
  queueIoWait,
} from '@storkit/bdev';
import type { IoChannel } from '@storkit/reactor';
import { BlobError } from './errors.js';
import { PAGE_SIZE } from './format/layout.js';

export type Done = (err: BlobError | null) => void;
export type DoneWith<T> = (err: BlobError | null, value: T) => void;

interface Op {
  kind: IoType;
  lba: number;
  n: number;
  buf: Uint8Array | null;
  done: Done;
  what: string;
  wait: IoWaitEntry | null;
}

/** The metadata thread's I/O to the base device, in pages (or blocks, for cluster clears). */
export class MdIo {
  readonly desc: BdevDesc;
  readonly ch: IoChannel<BdevChannel>;
  readonly blockSize: number;
  readonly pageBlocks: number;
  /** I/O in flight: unload waits for none. */
  inflight = 0;

  constructor(desc: BdevDesc, ch: IoChannel<BdevChannel>) {
    this.desc = desc;
    this.ch = ch;
    this.blockSize = desc.bdev.blockSize;
    this.pageBlocks = PAGE_SIZE / this.blockSize;
  }

  get numBlocks(): number {
    return this.desc.bdev.numBlocks;
  }

  get canUnmap(): boolean {
    return this.desc.bdev.ioTypeSupported(IoType.UNMAP);
  }

  get canWriteZeroes(): boolean {
    return this.desc.bdev.ioTypeSupported(IoType.WRITE_ZEROES);
  }

  /** Read `count` pages from page `page` of the device. */
  readPages(page: number, count: number, done: DoneWith<Uint8Array>): void {
    const buf = new Uint8Array(count * PAGE_SIZE);
    this.#go(
      IoType.READ,
      page * this.pageBlocks,
      count * this.pageBlocks,
      buf,
      (err) => done(err, buf),
      `read of pages ${page}+${count}`,
    );
  }

  /** Write `buf` (whole pages) at page `page`. */
  writePages(page: number, buf: Uint8Array, done: Done): void {
    const count = buf.length / PAGE_SIZE;
    this.#go(
      IoType.WRITE,
      page * this.pageBlocks,
      count * this.pageBlocks,
      buf,
      done,
      `write of pages ${page}+${count}`,
    );
  }

  /** Zero pages (write zeroes when the device can, else a write of a zero buffer). */
  zeroPages(page: number, count: number, done: Done): void {
    this.zeroBlocks(page * this.pageBlocks, count * this.pageBlocks, done);
  }

  zeroBlocks(lba: number, n: number, done: Done): void {
    if (this.canWriteZeroes)
      this.#go(IoType.WRITE_ZEROES, lba, n, null, done, `write zeroes of blocks ${lba}+${n}`);
    else
      this.#go(IoType.WRITE, lba, n, new Uint8Array(n * this.blockSize), done, `zeroing blocks ${lba}+${n}`);
  }

  /** Unmap blocks when the device can (else nothing: the clear method is best effort, as SPDK's). */
  unmapBlocks(lba: number, n: number, done: Done): void {
    if (!this.canUnmap || n === 0) {
      queueMicrotaskOnThread(this, done);
      return;
    }
    this.#go(IoType.UNMAP, lba, n, null, done, `unmap of blocks ${lba}+${n}`);
  }

  #go(kind: IoType, lba: number, n: number, buf: Uint8Array | null, done: Done, what: string): void {
    const op: Op = { kind, lba, n, buf, done, what, wait: null };
    this.inflight++;
    this.#submit(op);
  }

  #submit(op: Op): void {
    const cb = (status: IoStatus) => {
      this.inflight--;
      op.done(
        status === IoStatus.SUCCESS
          ? null
          : new BlobError('EIO', `metadata ${op.what} failed (status ${status})`),
      );
    };
    let rc: number;
    try {
      switch (op.kind) {
        case IoType.READ:
          rc = bdevRead(this.desc, this.ch, op.buf as Uint8Array, op.lba, op.n, cb, undefined);
          break;
        case IoType.WRITE:
          rc = bdevWrite(this.desc, this.ch, op.buf as Uint8Array, op.lba, op.n, cb, undefined);
          break;
        case IoType.UNMAP:
          rc = bdevUnmap(this.desc, this.ch, op.lba, op.n, cb, undefined);
          break;
        default:
          rc = bdevWriteZeroes(this.desc, this.ch, op.lba, op.n, cb, undefined);
          break;
      }
    } catch (e) {
      this.inflight--;
      const err = e as Error;
      this.ch.thread.sendMsg(() => op.done(new BlobError('EIO', `metadata ${op.what}: ${err.message}`)));
      return;
    }
    if (rc === ENOMEM) {
      op.wait ??= new IoWaitEntry(() => this.#submit(op));
      queueIoWait(this.ch, op.wait);
    }
  }
}

function queueMicrotaskOnThread(io: MdIo, done: Done): void {
  io.ch.thread.sendMsg(() => done(null));
}

/** Run `ops` in parallel; `done` gets the first error once all have finished. */
export function all(ops: ((d: Done) => void)[], done: Done, thread: { sendMsg(f: () => void): void }): void {
  if (ops.length === 0) {
    thread.sendMsg(() => done(null));
    return;
  }
  let left = ops.length;
  let first: BlobError | null = null;
  for (const op of ops) {
    op((err) => {
      if (err !== null && first === null) first = err;
      if (--left === 0) done(first);
    });
  }
}
