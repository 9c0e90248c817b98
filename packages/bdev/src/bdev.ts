import { ContainedErrors } from '@storkit/block';
import type { IoChannel } from '@storkit/reactor';
import type { BdevIo } from './bdev-io.js';
import type { BdevDesc } from './desc.js';
import type { QosState } from './qos.js';
import type { RangeLock } from './range-lock.js';
import { IoStat } from './stats.js';
import { IoType } from './types.js';

/**
 * What a bdev module implements for each of its bdevs (spdk_bdev_fn_table). Every method runs on
 * the thread that calls into the bdev layer; `submitRequest` on the channel's thread.
 */
export interface BdevFnTable {
  /**
   * Start an I/O. Finish it with `bdevIoComplete(io, status)` exactly once, now or later (the
   * bdev layer defers a completion that happens inside this call). Status NOMEM makes the bdev
   * layer retry the I/O when another I/O of the channel completes.
   */
  submitRequest(ch: IoChannel<unknown>, io: BdevIo): void;
  ioTypeSupported(type: IoType): boolean;
  /** The module's channel for this bdev on the current thread (getIoChannel(module io_device)). */
  getIoChannel(): IoChannel<unknown>;
  /** Release the bdev's resources after unregistration; call `done` once (may be later). */
  destruct(done: () => void): void;
  /** A per-bdev_io context, made once per pooled bdev_io (SPDK's get_ctx_size). */
  createIoCtx?(): unknown;
  /** Module-specific info for bdev_get_bdevs (`driver_specific`). */
  dumpInfoJson?(): Record<string, unknown>;
}

/** A bdev module (spdk_bdev_module): a name plus an optional examine hook. */
export interface BdevModule {
  readonly name: string;
  /**
   * Called (deferred, on the registering thread) for every newly registered bdev, so virtual
   * bdev modules can claim it and stack on it (examine_config). Synchronous.
   */
  examine?(bdev: Bdev): void;
  /**
   * Called after `examine` for every newly registered bdev, for modules that must read it to know
   * whether it is theirs (SPDK's examine_disk: an lvstore's super block). Call `done` once, now or
   * later, on this thread; bdevWaitForExamine waits for every examine in progress.
   */
  examineDisk?(bdev: Bdev, done: () => void): void;
}

/** Geometry and identity a module gives at registration (spdk_bdev fields). */
export interface BdevInit {
  name: string;
  aliases?: string[];
  /** RFC 4122 text; generated when absent (give it when replaying on other reactors). */
  uuid?: string;
  productName: string;
  blockSize: number;
  numBlocks: number;
  /** Volatile write cache (flush matters). */
  writeCache?: boolean;
  /** Optimal I/O boundary in blocks (0 = none). */
  optimalIoBoundary?: number;
  /** Split I/O that crosses the optimal boundary. */
  splitOnOptimalIoBoundary?: boolean;
  /** Largest read/write the module takes, in blocks (0 = no limit). */
  maxRwBlocks?: number;
  /** Most iovecs per I/O the module takes (0 = no limit). */
  maxSegments?: number;
  /** Largest iovec in bytes (0 = no limit; a multiple of the block size). */
  maxSegmentSize?: number;
  module: BdevModule;
  fn: BdevFnTable;
  /**
   * Module-private context (SPDK's bdev->ctxt). One name for one idea: an object's `ctx` is its
   * owner's (bdev.ctx, a channel's ctx); only the per-I/O one keeps SPDK's name, io.driverCtx.
   */
  ctx?: unknown;
}

export const BdevState = { READY: 0, REMOVING: 1, REMOVED: 2 } as const;
export type BdevState = (typeof BdevState)[keyof typeof BdevState];

/** A block device (spdk_bdev). One object per isolate (per reactor worker) under one name. */
export class Bdev {
  readonly name: string;
  readonly aliases = new Set<string>();
  readonly uuid: string;
  readonly productName: string;
  readonly blockSize: number;
  numBlocks: number;
  readonly writeCache: boolean;
  readonly optimalIoBoundary: number;
  readonly splitOnOptimalIoBoundary: boolean;
  readonly maxRwBlocks: number;
  readonly maxSegments: number;
  readonly maxSegmentSize: number;
  readonly module: BdevModule;
  readonly fn: BdevFnTable;
  /** The module's own context, as given to bdevRegister. */
  readonly ctx: unknown;
  /** @internal */ state: BdevState = BdevState.READY;
  /** @internal */ readonly descs = new Set<BdevDesc>();
  /** @internal the module holding the exclusive write claim */ claimModule: BdevModule | null = null;
  /** @internal */ claimDesc: BdevDesc | null = null;
  /** @internal stats of channels already destroyed */ readonly retiredStat = new IoStat();
  /** @internal */ qos: QosState | null = null;
  /** @internal */ histogramEnabled = false;
  /** @internal channels destroyed with I/O still in flight */ zombies = 0;
  /** @internal */ onDrained: (() => void) | null = null;
  /** @internal range locks seen in this isolate (copied into channels created while held) */
  readonly locks: RangeLock[] = [];
  /** @internal */ readonly supported: boolean[] = [];
  /** Exceptions the module's submitRequest threw: each failed its I/O (a module bug if ever set). */
  readonly submitErrors: ContainedErrors;

  /** @internal use bdevRegister */
  constructor(init: BdevInit, uuid: string) {
    this.name = init.name;
    this.uuid = uuid;
    this.productName = init.productName;
    this.blockSize = init.blockSize;
    this.numBlocks = init.numBlocks;
    this.writeCache = init.writeCache ?? false;
    this.optimalIoBoundary = init.optimalIoBoundary ?? 0;
    this.splitOnOptimalIoBoundary = init.splitOnOptimalIoBoundary ?? false;
    this.maxRwBlocks = init.maxRwBlocks ?? 0;
    this.maxSegments = init.maxSegments ?? 0;
    this.maxSegmentSize = init.maxSegmentSize ?? 0;
    this.module = init.module;
    this.fn = init.fn;
    this.ctx = init.ctx;
    this.submitErrors = new ContainedErrors(`bdev ${init.name} (${init.module.name}) submit`);
    for (const a of init.aliases ?? []) this.aliases.add(a);
    for (let t = 0; t <= IoType.NVME_IO; t++)
      this.supported.push(t > 0 && init.fn.ioTypeSupported(t as IoType));
  }

  /** The io_device name of this bdev: the same in every worker. */
  get ioDeviceName(): string {
    return `bdev/${this.name}`;
  }

  ioTypeSupported(t: IoType): boolean {
    return this.supported[t] === true;
  }

  /** Whether a module holds the exclusive write claim (and which). */
  get claimedBy(): string | null {
    return this.claimModule?.name ?? null;
  }

  get isRemoving(): boolean {
    return this.state !== BdevState.READY;
  }
}
