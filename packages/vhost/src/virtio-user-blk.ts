import {
  type BlockBackend,
  DeferredCompletions,
  type IoCb,
  IoStatus,
  type IoVec,
  type Lba,
} from '@storkit/block';
import {
  getThread,
  POLLER_BUSY,
  POLLER_IDLE,
  type Poller,
  registerPoller,
  type Thread,
} from '@storkit/reactor';

import { get32, get64, put32, put64 } from './device.js';
import { DriverQueue } from './driver.js';
import { VhostError } from './errors.js';
import { type FrontendOptions, VhostUserFrontend } from './frontend.js';
import { eventfdWrite } from './native.js';
import { Blk, bits, Feature, hasBit, Vring } from './spec.js';

export interface VirtioUserBlkOptions {
  /** Socket of the vhost-user-blk backend (storkit's own, qemu-storage-daemon, SPDK...). */
  path: string;
  /** bdev name (SPDK's bdev_virtio_attach_controller `name`). */
  name: string;
  /** Request queues to use (capped by the backend's num_queues). */
  numQueues?: number;
  /** Ring size of each queue (power of two); also the queue depth. */
  queueSize?: number;
  /** Largest transfer per request, bytes (each slot has a buffer of this size). */
  maxTransfer?: number;
  /**
   * Extra shared memory for the caller's own I/O buffers (`sharedBuffer`): a single-buffer request
   * whose buffer lies there moves no data through the slot buffers (zero copy).
   */
  bufferBytes?: number;
  timeoutMs?: number;
  pump?: FrontendOptions['pump'];
}

const SLOT_META = 128; // header 16 @0, segment 16 @16, status 1 @32, indirect table 3x16 @64
const PAGE = 4096;

/** One request slot: descriptor `slot` points at the slot's own indirect table. */
interface Slot {
  cb: IoCb<unknown> | null;
  ctx: unknown;
  /** Reads: where the data goes back to (or what it is compared with). */
  iov: IoVec | null;
  /** A compare: the data read is compared with `iov` instead of copied into it. */
  compare: boolean;
  bytes: number;
}

interface Queue {
  ring: DriverQueue;
  kickFd: number;
  free: number[];
  slots: Slot[];
  /** Chains offered but not published. */
  unpublished: number;
  /** avail index at the last kick check. */
  kicked: number;
  metaOff: number;
  dataOff: number;
}

/**
 * A virtio-blk device reached through a vhost-user socket, served as a BlockBackend: storkit's
 * virtio-user initiator (SPDK's bdev_virtio_attach_controller with trtype user, dev_type blk).
 * Its memory is one memfd handed to the backend; each request slot owns a header, an indirect
 * table and a data buffer there, so a request is one descriptor, written in place. Data is copied
 * between the caller's buffers and the slot's (the backend can only reach shared memory).
 * Completions are reaped by a poller on the thread that attached it, never inside a submit.
 *
 * A device under a bdev module (bdev_virtio): when every request slot is busy it completes with
 * NOMEM, which the bdev layer retries; a target never serves it directly.
 */
export class VirtioUserBlk implements BlockBackend {
  readonly name: string;
  blockSize = 512;
  numBlocks = 0;
  readonly uuid: string;
  writeCache = false;
  unmapSupported = false;
  readonly optimalIoBoundary = 0;
  readOnly = false;
  readonly maxTransfer: number;
  readonly frontend: VhostUserFrontend;
  #queues: Queue[] = [];
  #next = 0;
  #poller: Poller | null = null;
  #outstanding = 0;
  #resetCbs: IoCb<unknown>[] = [];
  #resetCtxs: unknown[] = [];
  readonly #later = new DeferredCompletions();
  #mem: Uint8Array;
  #bufBase = 0;
  #bufBytes = 0;

  private constructor(fe: VhostUserFrontend, name: string, maxTransfer: number) {
    this.frontend = fe;
    this.name = name;
    this.maxTransfer = maxTransfer;
    this.#mem = fe.memory.bytes;
    const h = [...name]
      .reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7)
      .toString(16)
      .padStart(8, '0');
    this.uuid = `${h}-7669-4f72-8000-${h}${h.slice(0, 4)}`;
  }

  /** Connect, negotiate, start the queues and register the completion poller on the current thread. */
  static async attach(opts: VirtioUserBlkOptions): Promise<VirtioUserBlk> {
    const qsize = opts.queueSize ?? 128;
    const maxTransfer = opts.maxTransfer ?? 128 * 1024;
    if (!Number.isInteger(qsize) || qsize < 2 || qsize > 1024 || (qsize & (qsize - 1)) !== 0) {
      throw new VhostError('EINVAL', `queue size ${qsize} must be a power of two in 2..1024`);
    }
    if (!Number.isInteger(maxTransfer) || maxTransfer < 512 || maxTransfer % 512 !== 0) {
      throw new VhostError('EINVAL', `max transfer ${maxTransfer} must be a multiple of 512`);
    }
    const wantQ = opts.numQueues ?? 1;
    const ringBytes = align(DriverQueue.bytes(qsize), PAGE);
    const perQueue = ringBytes + align(qsize * SLOT_META, PAGE) + qsize * maxTransfer;
    const extra = align(opts.bufferBytes ?? 0, PAGE);
    const fe = VhostUserFrontend.connect(opts.path, {
      memSize: perQueue * wantQ + extra,
      timeoutMs: opts.timeoutMs,
      pump: opts.pump,
    });
    const dev = new VirtioUserBlk(fe, opts.name, maxTransfer);
    // The thread attaching owns the completion poller. The setup below resumes from awaits, in
    // microtasks that may run after a reactor poll has put its current thread back.
    dev.#owner = getThread();
    dev.#bufBase = perQueue * wantQ;
    dev.#bufBytes = extra;
    try {
      await dev.#setup(wantQ, qsize, ringBytes, perQueue);
    } catch (e) {
      fe.close();
      throw e;
    }
    return dev;
  }

  async #setup(wantQ: number, qsize: number, ringBytes: number, perQueue: number): Promise<void> {
    const F = Blk.Feature;
    const fe = this.frontend;
    const want = bits(
      Feature.RingIndirectDesc,
      Feature.RingEventIdx,
      F.BlkSize,
      F.Flush,
      F.Mq,
      F.Discard,
      F.WriteZeroes,
      F.Ro,
      F.ConfigWce,
      F.SegMax,
    );
    const f = await fe.negotiate(want);
    if (!hasBit(f, Feature.RingIndirectDesc))
      throw new VhostError('EINVAL', 'backend does not offer indirect descriptors');
    const cfg = await fe.config(Blk.Config.size);
    const capacity = get64(cfg, Blk.Config.capacity);
    if (hasBit(f, F.BlkSize)) this.blockSize = get32(cfg, Blk.Config.blkSize) || 512;
    this.numBlocks = Math.floor((capacity * Blk.SectorSize) / this.blockSize);
    this.writeCache = hasBit(f, F.Flush);
    this.unmapSupported = hasBit(f, F.Discard);
    this.readOnly = hasBit(f, F.Ro);
    const nq = hasBit(f, F.Mq)
      ? Math.max(1, Math.min(wantQ, cfg[Blk.Config.numQueues] | (cfg[Blk.Config.numQueues + 1] << 8)))
      : 1;
    for (let qi = 0; qi < nq; qi++) {
      const base = qi * perQueue;
      const ring = new DriverQueue(this.#mem, 0, base, qsize);
      ring.eventIdx = hasBit(f, Feature.RingEventIdx);
      ring.interrupts = false; // completions are polled
      const metaOff = base + ringBytes;
      const dataOff = metaOff + align(qsize * SLOT_META, PAGE);
      const q: Queue = { ring, kickFd: -1, free: [], slots: [], unpublished: 0, kicked: 0, metaOff, dataOff };
      for (let s = qsize - 1; s >= 0; s--) q.free.push(s);
      for (let s = 0; s < qsize; s++) {
        q.slots.push({ cb: null, ctx: undefined, iov: null, compare: false, bytes: 0 });
        ring.writeDesc(s, metaOff + s * SLOT_META + 64, 48, Vring.DescFIndirect, 0);
      }
      await fe.startQueue(qi, qsize, ring.descAddr, ring.availAddr, ring.usedAddr);
      q.kickFd = fe.kickFd(qi);
      this.#queues.push(q);
    }
    const owner = this.#owner;
    if (owner !== null && getThread() !== owner) owner._runNow(this.#register, undefined);
    else this.#register();
  }

  #owner: Thread | null = null;
  readonly #register = (): void => {
    this.#poller = registerPoller(() => this.poll(), 0, `virtio_user_${this.name}`);
  };

  /**
   * A view of `len` bytes at `offset` of the caller's shared buffer area (`bufferBytes`): I/O on a
   * single such buffer goes straight between it and the backend.
   */
  sharedBuffer(offset: number, len: number): Uint8Array {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(len) ||
      offset < 0 ||
      len < 0 ||
      offset + len > this.#bufBytes
    ) {
      throw new VhostError(
        'EINVAL',
        `shared buffer [${offset}, +${len}) outside the ${this.#bufBytes}-byte area`,
      );
    }
    return this.#mem.subarray(this.#bufBase + offset, this.#bufBase + offset + len);
  }

  /** Guest address of a single buffer inside the shared buffer area, or -1. */
  #direct(iov: IoVec): number {
    if (iov.length !== 1) return -1;
    const v = iov[0];
    if (v.buffer !== this.#mem.buffer) return -1;
    const off = v.byteOffset - this.#mem.byteOffset;
    return off >= this.#bufBase && off + v.length <= this.#bufBase + this.#bufBytes ? off : -1;
  }

  get queueCount(): number {
    return this.#queues.length;
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  /** Publish new requests (kicking the backend if it asked) and complete finished ones. */
  poll(): number {
    let work = 0;
    for (const q of this.#queues) {
      if (q.unpublished > 0) {
        const old = q.kicked;
        q.ring.kick();
        q.unpublished = 0;
        q.kicked = q.ring.availIdx;
        if (q.ring.deviceWantsKick(old)) eventfdWrite(q.kickFd);
        work++;
      }
      for (let head = q.ring.next(); head >= 0; head = q.ring.next()) {
        work++;
        this.#complete(q, head);
      }
    }
    if (this.#outstanding === 0 && this.#resetCbs.length > 0) {
      const cbs = this.#resetCbs.splice(0);
      const ctxs = this.#resetCtxs.splice(0);
      for (let i = 0; i < cbs.length; i++) cbs[i](IoStatus.SUCCESS, ctxs[i]);
    }
    return work > 0 ? POLLER_BUSY : POLLER_IDLE;
  }

  #complete(q: Queue, slot: number): void {
    const s = q.slots[slot];
    const cb = s.cb;
    if (cb === null) return;
    const meta = q.metaOff + slot * SLOT_META;
    let st: IoStatus = this.#mem[meta + 32] === Blk.S.Ok ? IoStatus.SUCCESS : IoStatus.FAILED;
    if (st === IoStatus.SUCCESS && s.iov !== null) {
      const mem = this.#mem;
      let off = q.dataOff + slot * this.maxTransfer;
      for (const v of s.iov) {
        if (!s.compare) v.set(mem.subarray(off, off + v.length));
        else {
          for (let i = 0; i < v.length; i++) {
            if (v[i] !== mem[off + i]) {
              st = IoStatus.MISCOMPARE;
              break;
            }
          }
        }
        off += v.length;
      }
    }
    const ctx = s.ctx;
    s.cb = null;
    s.ctx = undefined;
    s.iov = null;
    q.free.push(slot);
    this.#outstanding--;
    cb(st, ctx);
  }

  /**
   * Queue a request. A range outside the device or a transfer over `maxTransfer` fails (later), no
   * free slot completes NOMEM (later).
   */
  #submit(
    type: number,
    lba: number,
    count: number,
    iov: IoVec | null,
    out: boolean,
    seg: boolean,
    cb: IoCb<unknown>,
    ctx: unknown,
    compare = false,
  ): void {
    const bytes = count * this.blockSize;
    if (
      lba < 0 ||
      count < 0 ||
      lba + count > this.numBlocks ||
      !Number.isSafeInteger(lba + count) ||
      (iov !== null && bytes > this.maxTransfer)
    ) {
      this.#later.push(cb, ctx, IoStatus.FAILED);
      return;
    }
    const q = this.#queues[this.#next];
    this.#next = (this.#next + 1) % this.#queues.length;
    const slot = q.free.pop();
    if (slot === undefined) {
      this.#later.push(cb, ctx, IoStatus.NOMEM);
      return;
    }
    const mem = this.#mem;
    const meta = q.metaOff + slot * SLOT_META;
    const data = q.dataOff + slot * this.maxTransfer;
    put32(mem, meta, type);
    put32(mem, meta + 4, 0);
    put64(mem, meta + 8, (lba * this.blockSize) / Blk.SectorSize);
    mem[meta + 32] = 0xff;
    const t = meta + 64;
    const dv = q.ring.dv;
    let n = 0;
    n = tableEntry(dv, t, n, meta, Blk.HeaderSize, false);
    if (seg) {
      put64(mem, meta + 16, (lba * this.blockSize) / Blk.SectorSize);
      put32(mem, meta + 24, (count * this.blockSize) / Blk.SectorSize);
      put32(mem, meta + 28, 0);
      n = tableEntry(dv, t, n, meta + 16, Blk.SegmentSize, false);
    } else if (iov !== null) {
      let addr = compare ? -1 : this.#direct(iov);
      if (addr < 0) {
        addr = data;
        if (out) {
          let off = data;
          for (const v of iov) {
            mem.set(v, off);
            off += v.length;
          }
        }
      } else iov = null; // zero copy: nothing to copy back either
      n = tableEntry(dv, t, n, addr, bytes, !out);
    }
    n = tableEntry(dv, t, n, meta + 32, 1, true);
    dv.setUint16(t + 16 * (n - 1) + 12, Vring.DescFWrite, true);
    q.ring.writeDesc(slot, t, 16 * n, Vring.DescFIndirect, 0);
    const s = q.slots[slot];
    s.cb = cb;
    s.ctx = ctx;
    s.iov = out ? null : iov;
    s.compare = compare;
    s.bytes = bytes;
    q.ring.offer(slot);
    q.unpublished++;
    this.#outstanding++;
  }

  readv<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Blk.T.In, offset, count, iov, false, false, cb as IoCb<unknown>, ctx);
  }

  writev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    if (this.readOnly) this.#later.push(cb, ctx, IoStatus.FAILED);
    else this.#submit(Blk.T.Out, offset, count, iov, true, false, cb as IoCb<unknown>, ctx);
  }

  /** A read whose data is compared with `iov` (virtio-blk has no compare command). */
  comparev<C>(iov: IoVec, offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Blk.T.In, offset, count, iov, false, false, cb as IoCb<unknown>, ctx, true);
  }

  /** virtio-blk has no atomic compare-and-write: always FAILED (bdev_virtio does not offer it). */
  compareAndWritev<C>(_compare: IoVec, _write: IoVec, _offset: Lba, _count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#later.push(cb, ctx, IoStatus.FAILED);
  }

  unmap<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Blk.T.Discard, offset, count, null, true, true, cb as IoCb<unknown>, ctx);
  }

  writeZeroes<C>(offset: Lba, count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Blk.T.WriteZeroes, offset, count, null, true, true, cb as IoCb<unknown>, ctx);
  }

  flush<C>(_offset: Lba, _count: Lba, cb: IoCb<C>, ctx: C): void {
    this.#submit(Blk.T.Flush, 0, 0, null, true, false, cb as IoCb<unknown>, ctx);
  }

  /** virtio-blk cannot abort: completes once everything outstanding has completed. */
  reset<C>(cb: IoCb<C>, ctx: C): void {
    this.#resetCbs.push(cb as IoCb<unknown>);
    this.#resetCtxs.push(ctx);
  }

  /** Stop polling and hang up (outstanding requests never complete after this). */
  detach(): void {
    this.#poller?.unregister();
    this.#poller = null;
    this.frontend.close();
  }
}

/** Write entry `n` of an indirect table at `t` (chained to the next); returns n + 1. */
function tableEntry(dv: DataView, t: number, n: number, addr: number, len: number, write: boolean): number {
  const o = t + 16 * n;
  dv.setUint32(o, addr, true);
  dv.setUint32(o + 4, 0, true);
  dv.setUint32(o + 8, len, true);
  dv.setUint16(o + 12, Vring.DescFNext | (write ? Vring.DescFWrite : 0), true);
  dv.setUint16(o + 14, n + 1, true);
  return n + 1;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
