import { type BlockBackend, IoStatus } from '@storkit/block';

import { get32, get64, put16, put32, put64, type VirtioDevice } from './device.js';
import { dataViews, gather, lastWritable } from './layout.js';
import { Blk, bits } from './spec.js';
import { Chain, MAX_SEGMENTS, type VirtQueue } from './virtqueue.js';

export interface BlkDeviceOptions {
  /** Serves the device as read-only (VIRTIO_BLK_F_RO; writes fail). */
  readonly?: boolean;
  /** Request queues offered (virtio-blk num_queues). */
  numQueues?: number;
  /** GET_ID answer (at most 20 bytes); default: the backend's name. */
  serial?: string;
}

/** Data segments per request (seg_max); the header and status take two more descriptors. */
export const BLK_SEG_MAX = MAX_SEGMENTS - 2;
/** Segments one DISCARD / WRITE_ZEROES request may carry. */
export const BLK_MAX_DISCARD_SEG = 1;
/** Sectors one DISCARD / WRITE_ZEROES segment may cover. */
export const BLK_MAX_DISCARD_SECTORS = 0x3fffff;

/** One in-flight request: preallocated per queue slot, reused (nothing allocates per I/O). */
class BlkRequest {
  readonly chain = new Chain();
  readonly data: Uint8Array[] = [];
  readonly header = new Uint8Array(Blk.HeaderSize);
  readonly seg = new Uint8Array(Blk.SegmentSize);
  queue: VirtQueue | null = null;
  status: Uint8Array | null = null;
  statusAt = 0;
  usedLen = 0;
  pending = 0;
  failed = false;
  constructor(
    readonly pool: BlkPool,
    readonly slot: number,
  ) {}
}

/** Backend completion: the request is the context (no closure per request). */
function reqDone(s: IoStatus, r: BlkRequest): void {
  if (s !== IoStatus.SUCCESS) r.failed = true;
  if (--r.pending > 0) return;
  r.pool.complete(r, r.failed ? Blk.S.IoErr : Blk.S.Ok);
}

class BlkPool {
  readonly free: number[] = [];
  readonly reqs: BlkRequest[] = [];
  constructor(
    readonly q: VirtQueue,
    size: number,
  ) {
    for (let i = 0; i < size; i++) {
      this.reqs.push(new BlkRequest(this, i));
      this.free.push(size - 1 - i);
    }
  }

  complete(r: BlkRequest, status: number): void {
    if (r.status !== null) r.status[r.statusAt] = status;
    this.q.push(r.chain, r.usedLen);
    this.q.inflight--;
    this.free.push(r.slot);
  }
}

/**
 * virtio-blk (virtio 1.x §5.2) over a BlockBackend: IN, OUT, FLUSH, GET_ID, DISCARD,
 * WRITE_ZEROES, several queues. Requests go to the backend with their data as views into guest
 * memory; a malformed request completes with VIRTIO_BLK_S_IOERR / UNSUPP, never touching memory
 * outside its own buffers.
 */
export class BlkDevice implements VirtioDevice {
  readonly kind = 'blk' as const;
  readonly backend: BlockBackend;
  readonly maxQueues: number;
  readonly readonly: boolean;
  readonly serial: Uint8Array;
  /** GET_ID's answer: the serial, NUL padded to 20 bytes. */
  readonly #id = new Uint8Array(Blk.IdBytes);
  #writeback: number;
  #pools = new Map<VirtQueue, BlkPool>();
  /** Requests that failed validation (for stats and tests). */
  invalid = 0;

  constructor(backend: BlockBackend, opts: BlkDeviceOptions = {}) {
    const nq = opts.numQueues ?? 1;
    if (!Number.isInteger(nq) || nq < 1 || nq > 64) throw new RangeError(`numQueues ${nq} out of 1..64`);
    if (backend.blockSize < Blk.SectorSize || backend.blockSize % Blk.SectorSize !== 0) {
      throw new RangeError(`block size ${backend.blockSize} is not a multiple of 512`);
    }
    this.backend = backend;
    this.maxQueues = nq;
    this.readonly = opts.readonly === true || backend.readOnly === true;
    this.serial = new TextEncoder().encode(opts.serial ?? backend.name).subarray(0, Blk.IdBytes);
    this.#id.set(this.serial);
    this.#writeback = backend.writeCache ? 1 : 0;
  }

  deviceFeatures(): bigint {
    const F = Blk.Feature;
    let f = bits(F.SegMax, F.BlkSize, F.Flush, F.Topology, F.ConfigWce, F.Mq, F.WriteZeroes);
    if (this.backend.unmapSupported) f |= bits(F.Discard);
    if (this.readonly) f |= bits(F.Ro);
    return f;
  }

  readConfig(out: Uint8Array): number {
    const C = Blk.Config;
    const b = this.backend;
    out.fill(0, 0, C.size);
    put64(out, C.capacity, (b.numBlocks * b.blockSize) / Blk.SectorSize);
    put32(out, C.segMax, BLK_SEG_MAX);
    put32(out, C.blkSize, b.blockSize);
    out[C.physicalBlockExp] = 0;
    put16(out, C.minIoSize, 1);
    put32(out, C.optIoSize, b.optimalIoBoundary);
    out[C.writeback] = this.#writeback;
    put16(out, C.numQueues, this.maxQueues);
    const align = b.blockSize / Blk.SectorSize;
    put32(out, C.maxDiscardSectors, BLK_MAX_DISCARD_SECTORS);
    put32(out, C.maxDiscardSeg, BLK_MAX_DISCARD_SEG);
    put32(out, C.discardSectorAlignment, align);
    put32(out, C.maxWriteZeroesSectors, BLK_MAX_DISCARD_SECTORS);
    put32(out, C.maxWriteZeroesSeg, BLK_MAX_DISCARD_SEG);
    out[C.writeZeroesMayUnmap] = b.unmapSupported ? 1 : 0;
    return C.size;
  }

  writeConfig(offset: number, data: Uint8Array): void {
    if (offset <= Blk.Config.writeback && offset + data.length > Blk.Config.writeback) {
      this.#writeback = data[Blk.Config.writeback - offset] === 0 ? 0 : 1;
    }
  }

  queueStarted(q: VirtQueue, _features: bigint): void {
    const p = this.#pools.get(q);
    if (p === undefined || p.reqs.length !== q.size || p.q.inflight !== 0)
      this.#pools.set(q, new BlkPool(q, q.size));
  }

  reset(): void {
    for (const [q, p] of this.#pools)
      if (q.inflight === 0 && p.free.length === p.reqs.length) this.#pools.delete(q);
  }

  processQueue(q: VirtQueue, budget: number): number {
    const pool = this.#pools.get(q);
    if (pool === undefined) return 0;
    let n = 0;
    while (n < budget && pool.free.length > 0) {
      const slot = pool.free[pool.free.length - 1];
      const r = pool.reqs[slot];
      if (!q.pop(r.chain)) break;
      pool.free.pop();
      q.inflight++;
      n++;
      this.#submit(r, q);
    }
    return n;
  }

  #submit(r: BlkRequest, q: VirtQueue): void {
    r.queue = q;
    r.status = null;
    r.usedLen = 0;
    r.pending = 1;
    r.failed = false;
    const c = r.chain;
    if (c.error !== null) {
      this.#finish(r, Blk.S.IoErr);
      return;
    }
    const st = lastWritable(c);
    // The header is read once, field by field, so it needs no private copy when one segment
    // holds it (the usual layout); a header split over segments is gathered first.
    const h =
      c.count > 0 && c.writable[0] === 0 && c.iov[0].length >= Blk.HeaderSize
        ? c.iov[0]
        : gather(c, 0, r.header)
          ? r.header
          : null;
    if (st < 0 || h === null) {
      this.#finish(r, Blk.S.IoErr);
      return;
    }
    r.status = c.iov[st];
    r.statusAt = r.status.length - 1;
    r.usedLen = 1;
    const type = get32(h, 0);
    const sector = get64(h, 8);
    const b = this.backend;
    switch (type) {
      case Blk.T.In:
      case Blk.T.Out: {
        const isIn = type === Blk.T.In;
        const bytes = isIn ? dataViews(c, 1, 0, 1, r.data) : dataViews(c, 0, Blk.HeaderSize, 0, r.data);
        const off = sector * Blk.SectorSize;
        if (!isIn && this.readonly) {
          this.#finish(r, Blk.S.IoErr);
          return;
        }
        if (bytes === 0 || bytes % b.blockSize !== 0 || off % b.blockSize !== 0) {
          this.#finish(r, Blk.S.IoErr);
          return;
        }
        const lba = off / b.blockSize;
        const count = bytes / b.blockSize;
        if (lba + count > b.numBlocks) {
          this.#finish(r, Blk.S.IoErr);
          return;
        }
        if (isIn) {
          r.usedLen = bytes + 1;
          b.readv(r.data, lba, count, reqDone, r);
        } else b.writev(r.data, lba, count, reqDone, r);
        return;
      }
      case Blk.T.Flush: {
        b.flush(0, b.numBlocks, reqDone, r);
        return;
      }
      case Blk.T.GetId: {
        // The 20-byte id (serial, NUL padded), cut to the buffer the driver gave.
        const n = Math.min(dataViews(c, 1, 0, 1, r.data), Blk.IdBytes);
        let put = 0;
        for (const v of r.data) {
          const k = Math.min(v.length, n - put);
          if (k <= 0) break;
          v.set(this.#id.subarray(put, put + k));
          put += k;
        }
        r.usedLen = n + 1;
        this.#finish(r, Blk.S.Ok);
        return;
      }
      case Blk.T.Discard:
      case Blk.T.WriteZeroes: {
        this.#discard(r, type === Blk.T.Discard);
        return;
      }
      default: {
        this.#finish(r, Blk.S.Unsupp);
        return;
      }
    }
  }

  #discard(r: BlkRequest, discard: boolean): void {
    const b = this.backend;
    if (this.readonly || (discard && !b.unmapSupported)) {
      this.#finish(r, discard ? Blk.S.Unsupp : Blk.S.IoErr);
      return;
    }
    const bytes = dataViews(r.chain, 0, Blk.HeaderSize, 0, r.data);
    if (bytes !== Blk.SegmentSize * BLK_MAX_DISCARD_SEG || !gatherFrom(r.data, r.seg)) {
      this.#finish(r, Blk.S.IoErr);
      return;
    }
    const off = get64(r.seg, 0) * Blk.SectorSize;
    const len = get32(r.seg, 8) * Blk.SectorSize;
    const flags = get32(r.seg, 12);
    if ((discard && flags !== 0) || (!discard && flags & ~Blk.SegmentFUnmap)) {
      this.#finish(r, Blk.S.Unsupp);
      return;
    }
    if (len === 0 || off % b.blockSize !== 0 || len % b.blockSize !== 0) {
      this.#finish(r, Blk.S.IoErr);
      return;
    }
    const lba = off / b.blockSize;
    const count = len / b.blockSize;
    if (lba + count > b.numBlocks || len / Blk.SectorSize > BLK_MAX_DISCARD_SECTORS) {
      this.#finish(r, Blk.S.IoErr);
      return;
    }
    if (discard) b.unmap(lba, count, reqDone, r);
    else b.writeZeroes(lba, count, reqDone, r);
  }

  /** Complete a request that never reached the backend (the status is known now). */
  #finish(r: BlkRequest, status: number): void {
    if (status !== Blk.S.Ok) this.invalid++;
    r.pool.complete(r, status);
  }
}

function gatherFrom(views: Uint8Array[], dst: Uint8Array): boolean {
  let got = 0;
  for (const v of views) {
    const n = Math.min(v.length, dst.length - got);
    dst.set(v.subarray(0, n), got);
    got += n;
  }
  return got === dst.length;
}
