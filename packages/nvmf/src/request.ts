// A target-side command in flight. Each qpair preallocates max_queue_depth of them; a request keeps
// its SQE copy, its own small buffer for in-capsule data (and for transfers that fit it), and the
// completion fields. Larger transfers borrow a buffer of the reactor's iobuf pool for the life of
// the command, so a connection's memory does not grow with the transfers it has seen. Steady-state
// I/O allocates nothing.

import type { Iobuf, IobufEntry } from '@storkit/block';
import { SQE_SIZE } from '@storkit/nvme-spec';

import type { TcpQpair } from './tcp-qpair.js';

export const ReqState = {
  Free: 0,
  /** Command received, waiting for H2CData (R2T sent). */
  AwaitH2C: 1,
  /** Fused first command waiting for its second. */
  AwaitFused: 2,
  /** Being executed (backend I/O or held AER). */
  Executing: 3,
  /** Waiting for a buffer of the iobuf pool (R2T or execution follows). */
  NeedBuffer: 4,
} as const;
export type ReqState = (typeof ReqState)[keyof typeof ReqState];

// C2HData header, header digest and the largest CPDA padding; data digest plus a CapsuleResp with
// its header digest.
const C2H_HEAD_MAX = 24 + 4 + 128;
const C2H_TAIL_MAX = 4 + 24 + 4;
const noop = (): void => {};

export class Request {
  readonly idx: number;
  readonly sqe = new Uint8Array(SQE_SIZE);
  readonly sqeDv = new DataView(this.sqe.buffer);
  readonly sqe32 = new Int32Array(this.sqe.buffer);
  state: ReqState = ReqState.Free;
  cid = 0;
  opcode = 0;
  nsid = 0;
  /**
   * The data buffer: `own`, or the pool buffer's bytes while the command holds one. `iov[0]` is a
   * view of its first `dataLen` bytes (when dataLen > 0), kept by `setDataLen` and `usePool`.
   */
  buf: Uint8Array;
  readonly iov: Uint8Array[];
  /** The request's own buffer: in-capsule data, and transfers up to its size. */
  own: Uint8Array;
  /** The pool buffer the command holds (given back when the request is freed). */
  pooled: Iobuf | null = null;
  /** Its place in the pool's wait queue (made once by the qpair). */
  wait: IobufEntry | null = null;
  #viewOnPool = false;
  /** Length of the data transfer (SGL length), either direction. */
  dataLen = 0;
  /** Direction of the transfer: 1 host to controller, 2 controller to host, 0 none. */
  dir = 0;
  /** Bytes of host data received so far (in-capsule or H2CData). */
  h2cRecv = 0;
  /** Bytes of data to return with C2HData on success. */
  c2hLen = 0;
  status = 0;
  dw0 = 0;
  dw1 = 0;
  /** Set once a data digest error was seen: the command completes with Transient Transport Error. */
  digestError = false;
  /** The other half of a fused Compare and Write. */
  fused: Request | null = null;
  /** Outstanding backend operations (DSM issues one per range). */
  pendingOps = 0;
  /** The data digest of each C2HData PDU of this command (grown on need, then reused). */
  ddgsts = new Uint32Array(1);

  /** The qpair that owns this request (fixed for its life). */
  readonly qp: TcpQpair;

  // A READ's data leaves from `buf` itself: the C2HData header and what follows the data (its
  // digest, a CapsuleResp) are encoded here, and the request stays taken until the socket took
  // them all (`sent`, bound once by the qpair so a completion makes no closure).
  readonly c2hHead = new Uint8Array(C2H_HEAD_MAX);
  readonly c2hHeadDv = new DataView(this.c2hHead.buffer);
  c2hHeadView: Uint8Array = this.c2hHead.subarray(0, 0);
  readonly c2hTail = new Uint8Array(C2H_TAIL_MAX);
  readonly c2hTailDv = new DataView(this.c2hTail.buffer);
  c2hTailView: Uint8Array = this.c2hTail.subarray(0, 0);
  sent: () => void = noop;

  constructor(qp: TcpQpair, idx: number, bufSize: number) {
    this.qp = qp;
    this.idx = idx;
    this.own = new Uint8Array(bufSize);
    this.buf = this.own;
    this.iov = [this.own.subarray(0, 0)];
  }

  /**
   * Hold `n` bytes in the request's own buffer (grown when the caller allows more than it has: the
   * admin queue's larger in-capsule data) and point iov[0] at exactly them.
   */
  setDataLen(n: number): void {
    this.dataLen = n;
    if (n > this.own.length) {
      this.own = new Uint8Array(n);
      this.buf = this.own;
      this.iov[0] = this.own.subarray(0, n);
      this.#viewOnPool = false;
      return;
    }
    this.buf = this.own;
    // Keep the view while the length repeats (the steady state), and leave it alone for commands
    // without data, so alternating commands do not rebuild it. `own` only changes above, which
    // remakes the view, so the length and the flag say whether it is current (reading `.buffer`
    // to check is a slow builtin call).
    if (n > 0 && (this.iov[0].length !== n || this.#viewOnPool)) {
      this.iov[0] = this.own.subarray(0, n);
      this.#viewOnPool = false;
    }
  }

  /** Hold `n` bytes in pool buffer `b` for the life of the command. */
  usePool(b: Iobuf, n: number): void {
    this.dataLen = n;
    this.pooled = b;
    this.buf = b.bytes;
    this.iov[0] = b.view(n);
    this.#viewOnPool = true;
  }

  reset(): void {
    this.state = ReqState.Free;
    this.dataLen = 0;
    this.dir = 0;
    this.h2cRecv = 0;
    this.c2hLen = 0;
    this.status = 0;
    this.dw0 = 0;
    this.dw1 = 0;
    this.digestError = false;
    this.fused = null;
    this.pendingOps = 0;
  }
}
