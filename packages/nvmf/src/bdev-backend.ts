// A namespace served from a bdev (@storkit/bdev): the NamespaceBackend calls map one to one onto
// spdk_bdev-style calls on a descriptor and an I/O channel of the calling reactor thread. The
// bdev's completion (status, arg) is bridged to the backend's (ctx, status) through one function
// per distinct `done`, made once, so the I/O path allocates nothing.

import {
  type BdevChannel,
  type BdevDesc,
  bdevCompareAndWritev,
  bdevComparev,
  bdevFlush,
  bdevReadv,
  bdevUnmap,
  bdevWritev,
  bdevWriteZeroes,
  ENOMEM,
  type IoCb,
  IoStatus,
} from '@storkit/bdev';
import type { IoChannel } from '@storkit/reactor';

import { type BackendDone, BackendStatus, type NamespaceBackend } from './backend.js';

function mapStatus(s: IoStatus): BackendStatus {
  switch (s) {
    case IoStatus.SUCCESS:
      return BackendStatus.Success;
    case IoStatus.MISCOMPARE:
      return BackendStatus.Miscompare;
    case IoStatus.ABORTED:
      return BackendStatus.Aborted;
    case IoStatus.NOMEM:
      return BackendStatus.NoMem;
    default:
      return BackendStatus.Failed;
  }
}

export class BdevBackend implements NamespaceBackend {
  readonly #desc: BdevDesc;
  readonly #ch: IoChannel<BdevChannel>;
  readonly #bridges = new Map<BackendDone<never>, IoCb<never>>();

  /** `desc` and `ch` belong to the thread that will submit (the qpair's reactor thread). */
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

  #cb<C>(done: BackendDone<C>): IoCb<C> {
    let b = this.#bridges.get(done as BackendDone<never>) as IoCb<C> | undefined;
    if (!b) {
      b = (status: IoStatus, ctx: C) => done(ctx, mapStatus(status));
      this.#bridges.set(done as BackendDone<never>, b as IoCb<never>);
    }
    return b;
  }

  // Submit results: 0 = submitted. ENOMEM = nothing submitted, the channel's bdev_io pool is empty:
  // retry on a later turn. A throw (bad range, unsupported type) fails the I/O, still asynchronously.

  read<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevReadv(this.#desc, this.#ch, iovs, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.read(iovs, off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  write<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevWritev(this.#desc, this.#ch, iovs, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.write(iovs, off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  flush<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevFlush(this.#desc, this.#ch, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.flush(off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  writeZeroes<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevWriteZeroes(this.#desc, this.#ch, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.writeZeroes(off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  unmap<C>(off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevUnmap(this.#desc, this.#ch, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.unmap(off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  compare<C>(iovs: readonly Uint8Array[], off: number, n: number, done: BackendDone<C>, ctx: C): void {
    try {
      if (bdevComparev(this.#desc, this.#ch, iovs, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.compare(iovs, off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }

  compareAndWrite<C>(
    cmp: readonly Uint8Array[],
    wr: readonly Uint8Array[],
    off: number,
    n: number,
    done: BackendDone<C>,
    ctx: C,
  ): void {
    try {
      if (bdevCompareAndWritev(this.#desc, this.#ch, cmp, wr, off, n, this.#cb(done), ctx) === ENOMEM)
        setImmediate(() => this.compareAndWrite(cmp, wr, off, n, done, ctx));
    } catch {
      setImmediate(done, ctx, BackendStatus.Failed);
    }
  }
}
