// The queue pair contract every transport keeps (NVMe/TCP today, PCIe next): what the controller,
// the nvme bdev module and nvme-perf use, whatever carries the commands. SPDK's polled model: the
// owner of a qpair (one thread) submits and calls `processCompletions`, which runs callbacks.
//
// Contract of the submit methods: they return false (and never call back) when every slot is in
// use or the qpair is not connected (retry after processCompletions, or after a reconnect);
// otherwise the callback runs exactly once, from a later processCompletions (or with
// ABORTED - SQ DELETION when the qpair fails or closes). They never complete inside the call.

import type { Codes } from '@storkit/errors';
import { GenericStatus, makeStatus, Sct } from '@storkit/nvme-spec';

import type { IoQpairGrant } from './transport.js';

/** Completion callback: status is the 15-bit CQE status field (0 = success). */
export type Completion<C> = (ctx: C, status: number, dw0: number, dw1: number) => void;

/** Fields of a command for `HostQpair.submit` (admin commands, fabrics, rare I/O). */
export interface CommandSpec {
  opcode: number;
  nsid?: number;
  /** Fabrics command type (fabrics transports only). */
  fctype?: number;
  fuse?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
  buf?: Uint8Array;
  /** 1: host to controller (write), 2: controller to host (read, the default with a buffer). */
  dir?: 1 | 2;
  /** Write further SQE fields (offset `s` is the SQE start). */
  fill?: (dv: DataView, s: number) => void;
  /** Allowed before the queue is connected (Fabrics Connect itself). */
  beforeConnect?: boolean;
  /** In-capsule data this command may carry (NVMe/TCP; default the queue's). */
  inCapsuleLimit?: number;
}

/** Counters every transport keeps. */
export interface QpairStats {
  submitted: number;
  completed: number;
}

/**
 * One submission/completion queue pair of a controller, owned by one thread. Buffers passed to
 * submit methods must stay untouched until the callback runs (zero copy where the transport can).
 */
export interface HostQpair {
  /** Queue ID (0 = the admin queue). */
  readonly qid: number;
  /** Entries; at most `depth` commands are outstanding. */
  readonly depth: number;
  readonly connected: boolean;
  /** Why the qpair failed (or was closed); null while usable. */
  readonly failed: Error | null;
  /** Commands submitted and not yet completed (by callback). */
  readonly outstanding: number;
  /**
   * Completions arrive through the event loop (node:net sockets): an owner that polls in a loop
   * must yield to it between polls. False when `processCompletions` itself reads the transport.
   */
  readonly needsEventLoop: boolean;
  readonly stats: QpairStats;
  /** Called once per timed out command (the controller aborts it, then resets). */
  onTimeout: ((qp: HostQpair, cid: number, opcode: number) => void) | null;
  /** Called when the qpair fails under its owner (connection lost, controller gone). */
  onFailure: ((qp: HostQpair, err: Error) => void) | null;

  /** Read `nlb` blocks at `lba` of `nsid` into `buf` (exactly nlb * block size bytes). */
  read<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean;
  write<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean;
  compare<C>(nsid: number, lba: number, nlb: number, buf: Uint8Array, cb: Completion<C>, ctx: C): boolean;
  writeZeroes<C>(nsid: number, lba: number, nlb: number, cb: Completion<C>, ctx: C): boolean;
  flush<C>(nsid: number, cb: Completion<C>, ctx: C): boolean;
  /** Dataset Management with Deallocate over `ranges` of [lba, blocks]. */
  deallocate<C>(
    nsid: number,
    ranges: readonly (readonly [number, number])[],
    cb: Completion<C>,
    ctx: C,
  ): boolean;
  /**
   * Fused Compare and Write: writes `data` only if the blocks equal `expect`. One callback, with the
   * compare's status when it failed (Media/CompareFailure) and the write's otherwise.
   */
  compareAndWrite<C>(
    nsid: number,
    lba: number,
    nlb: number,
    expect: Uint8Array,
    data: Uint8Array,
    cb: Completion<C>,
    ctx: C,
  ): boolean;
  /** A command described by fields. */
  submit<C>(c: CommandSpec, cb: Completion<C>, ctx: C): boolean;
  /**
   * The CID of the outstanding command submitted with `ctx` (for an Abort), or -1. Not for the I/O
   * path. Optional: without it, bdev aborts of this transport's commands fail (are not attempted).
   */
  cidOf?(ctx: unknown): number;
  /** Run up to `max` completion callbacks (0 = all ready). Returns how many ran. Owner thread only. */
  processCompletions(max?: number): number;
  /** Close the qpair; outstanding commands complete with ABORTED - SQ DELETION. */
  close(): void;
  /** Leave gracefully (fabrics: Disconnect, waited for at most a second), then close. */
  disconnect(): Promise<void>;
  /**
   * I/O qpairs: connect again in place from a fresh grant (after a controller reset), keeping the
   * object, its owner and its depth. Rejects like the first connect.
   */
  reconnect(grant: IoQpairGrant): Promise<void>;
}

/**
 * Why a qpair failed: its connection could not be made (ECONNREFUSED, ETIMEDOUT when the transport
 * never answered), it is closed or gone (ENOTCONN), or the controller broke the protocol (EPROTO).
 */
export type QpairErrorCode = Codes<'ECONNREFUSED' | 'ETIMEDOUT' | 'ENOTCONN' | 'EPROTO'>;

export class HostQpairError extends Error {
  override name = 'HostQpairError';
  readonly code: QpairErrorCode;
  constructor(code: QpairErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Status a command gets when its qpair goes away under it (SPDK: aborted - SQ deletion). */
export const STATUS_ABORTED_SQ_DELETION = makeStatus(Sct.Generic, GenericStatus.AbortedSqDeletion);
/** Status of a command whose data failed a transport check on receipt (a data digest). */
export const STATUS_TRANSPORT_ERROR = makeStatus(Sct.Generic, GenericStatus.TransientTransportError);
