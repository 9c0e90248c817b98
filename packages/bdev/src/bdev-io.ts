import type { Bdev } from './bdev.js';
import type { BdevChannel } from './channel.js';
import type { BdevDesc } from './desc.js';
import { IoWaitEntry } from './io-wait.js';
import { type IoCb, IoStatus, IoType, type NvmeCompletion } from './types.js';

const NO_BUF = new Uint8Array(0);
const NO_IOVS: readonly Uint8Array[] = Object.freeze([]);

/** Which bdev-layer queue holds an I/O (one at a time). */
export const Queue = { NONE: 0, NOMEM: 1, QOS: 2, LOCKED: 3, DEFERRED: 4, RESET: 5 } as const;
export type Queue = (typeof Queue)[keyof typeof Queue];

/** What an internal parent I/O is doing with its children. */
export const Role = { NONE: 0, SPLIT: 1, CAW: 2, COMPARE_EMU: 3, ABORT: 4, LOCK: 5 } as const;
export type Role = (typeof Role)[keyof typeof Role];

/**
 * One block I/O (spdk_bdev_io). Pooled per bdev channel and reused: never keep a reference after
 * its callback has run. Modules read the public fields and `driverCtx`; the rest is internal.
 */
export class BdevIo {
  type: IoType = IoType.READ;
  status: IoStatus = IoStatus.PENDING;
  bdev: Bdev;
  /** @internal */ ch: BdevChannel;
  desc: BdevDesc | null = null;
  offsetBlocks = 0;
  numBlocks = 0;
  /** Data buffers (READ, WRITE, COMPARE data; COMPARE_AND_WRITE: the write data). */
  iovs: readonly Uint8Array[] = NO_IOVS;
  /** COMPARE_AND_WRITE: the data to compare with. */
  cmpIovs: readonly Uint8Array[] = NO_IOVS;
  /** ABORT: the I/O to abort. */
  abortTarget: BdevIo | null = null;
  /** NVME_ADMIN, NVME_IO: the 64-byte submission queue entry (the module sets CID, and NSID for I/O). */
  nvmeCmd: Uint8Array = NO_BUF;
  /** NVME_ADMIN, NVME_IO: where the module writes the completion before completing the I/O. */
  nvmeCpl: NvmeCompletion | null = null;
  /** The cbArg given at submission: what abort matches. */
  cbArg: unknown = undefined;
  /** Tick count at submission. */
  submitTick = 0;
  /** The module's per-I/O context (BdevFnTable.createIoCtx), made once per pooled bdev_io. */
  readonly driverCtx: unknown;

  /** @internal */ cb: IoCb<unknown> | null = null;
  /** @internal one-element iovec array owned by this I/O (single-buffer calls) */
  readonly iov1: Uint8Array[] = [NO_BUF];
  /** @internal reused iovec array for split children */ readonly childIovs: Uint8Array[] = [];
  /** @internal the channel queue link (LinkedFifo) */ next: BdevIo | null = null;
  /** @internal which channel queue holds it */ queued: Queue = Queue.NONE;
  /** @internal outstanding list */ oNext: BdevIo | null = null;
  /** @internal */ oPrev: BdevIo | null = null;
  /** @internal */ outstanding = false;
  /** @internal */ inSubmit = false;
  /** @internal */ inModule = false;
  /** @internal passed the range-lock check (counts as a writer in flight) */ pastLock = false;
  /** @internal what to do when popped from the deferred queue */ deferStatus: IoStatus = IoStatus.PENDING;
  /** @internal */ deferToUser = false;
  /** @internal */ parent: BdevIo | null = null;
  /** @internal */ role: Role = Role.NONE;
  /** @internal */ splitOffset = 0;
  /** @internal */ splitRemaining = 0;
  /** @internal */ splitIovIdx = 0;
  /** @internal */ splitIovOff = 0;
  /** @internal */ childOutstanding = 0;
  /** @internal first failure among children */ childStatus: IoStatus = IoStatus.SUCCESS;
  /** @internal */ stage = 0;
  /** @internal the range lock this I/O (or its parent) holds, 0 if none */ lockOwner = 0;
  /** @internal */ timedOut = false;
  /** @internal */ aborted = false;
  /** @internal */ bounce: Uint8Array | null = null;
  /** @internal */ readonly bounceIovs: Uint8Array[] = [];
  /** @internal */ readonly waitEntry: IoWaitEntry;

  /** @internal */
  constructor(bdev: Bdev, ch: BdevChannel, driverCtx: unknown, resume: (io: BdevIo) => void) {
    this.bdev = bdev;
    this.ch = ch;
    this.driverCtx = driverCtx;
    this.waitEntry = new IoWaitEntry(resume as (arg: unknown) => void, this);
  }

  /** Transfer size in bytes. */
  get bytes(): number {
    return this.numBlocks * this.bdev.blockSize;
  }

  /** @internal back to a clean state before returning to the pool */
  clear(): void {
    this.status = IoStatus.PENDING;
    this.desc = null;
    this.iovs = NO_IOVS;
    this.cmpIovs = NO_IOVS;
    this.iov1[0] = NO_BUF;
    if (this.childIovs.length !== 0) this.childIovs.length = 0;
    this.abortTarget = null;
    this.nvmeCmd = NO_BUF;
    this.nvmeCpl = null;
    this.cb = null;
    this.cbArg = undefined;
    this.parent = null;
    this.role = Role.NONE;
    this.childOutstanding = 0;
    this.childStatus = IoStatus.SUCCESS;
    this.stage = 0;
    this.lockOwner = 0;
    this.timedOut = false;
    this.aborted = false;
    this.pastLock = false;
    this.deferToUser = false;
  }
}
