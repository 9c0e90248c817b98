import type { BlockBackend } from '@storkit/block';
import { DataDirection, Nexus, ScsiDevice, ScsiTask } from '@storkit/scsi';

import { get32, get64, put16, put32, type VirtioDevice } from './device.js';
import { VhostError } from './errors.js';
import { dataViews, gather, scatter } from './layout.js';
import { bits, Scsi } from './spec.js';
import { Chain, MAX_SEGMENTS, type VirtQueue } from './virtqueue.js';

export interface ScsiDeviceOptions {
  /** Request queues (virtio-scsi num_queues; the control and event queues come on top). */
  numQueues?: number;
  /** Name the SCSI targets are derived from (the controller name). */
  name: string;
}

const REQ_BYTES = Scsi.ReqHeader + Scsi.CdbSize;
const RESP_BYTES = Scsi.RespHeader + Scsi.SenseSize;
const TMF_REQ = 24;
const AN_REQ = 16;

/** One in-flight command: preallocated per queue slot and reused. */
class ScsiRequest {
  readonly chain = new Chain();
  readonly task = new ScsiTask();
  readonly header = new Uint8Array(REQ_BYTES);
  readonly resp = new Uint8Array(RESP_BYTES);
  readonly views: Uint8Array[] = [];
  readonly cdb: Uint8Array;
  tag = 0;
  busy = false;
  expectedIn = 0;
  constructor(
    readonly pool: ScsiPool,
    readonly slot: number,
  ) {
    this.cdb = this.header.subarray(Scsi.ReqHeader, REQ_BYTES);
    this.task.onDone = () => pool.done(this);
  }
}

class ScsiPool {
  readonly free: number[] = [];
  readonly reqs: ScsiRequest[] = [];
  constructor(
    readonly q: VirtQueue,
    size: number,
  ) {
    for (let i = 0; i < size; i++) {
      this.reqs.push(new ScsiRequest(this, i));
      this.free.push(size - 1 - i);
    }
  }

  done(r: ScsiRequest): void {
    const t = r.task;
    const c = r.chain;
    let dataIn = 0;
    if (t.dataInLength > 0 && r.expectedIn > 0) {
      dataIn = scatter(c, 1, RESP_BYTES, t.dataIn.subarray(0, Math.min(t.dataInLength, r.expectedIn)));
    }
    const resp = r.resp;
    resp.fill(0);
    const sense = Math.min(t.senseLength, Scsi.SenseSize);
    put32(resp, 0, sense);
    put32(
      resp,
      4,
      r.expectedIn > 0 ? r.expectedIn - dataIn : Math.max(0, t.dataOutLength - t.transferLength),
    );
    resp[10] = t.status;
    resp[11] = t.aborted ? Scsi.R.Aborted : Scsi.R.Ok;
    resp.set(t.sense.subarray(0, sense), Scsi.RespHeader);
    this.finish(r, RESP_BYTES + dataIn);
  }

  /** Write the response header and hand the chain back. */
  finish(r: ScsiRequest, len: number): void {
    scatter(r.chain, 1, 0, r.resp);
    this.q.push(r.chain, len);
    this.q.inflight--;
    r.busy = false;
    this.free.push(r.slot);
  }
}

/** One virtio-scsi target: a SCSI device with LUN 0 served by a block backend. */
export interface ScsiTargetInfo {
  readonly num: number;
  readonly device: ScsiDevice;
  readonly backend: BlockBackend;
}

/**
 * virtio-scsi (virtio 1.x §5.6) over the shared SCSI layer: up to 8 targets of one LUN each
 * (SPDK's vhost-scsi model), commands executed by @storkit/scsi, task management on the control
 * queue, hot add / remove reported on the event queue. Data moves between guest buffers and
 * the SCSI task's buffers (the SCSI layer owns its data buffers).
 */
export class VhostScsiDevice implements VirtioDevice {
  readonly kind = 'scsi' as const;
  readonly maxQueues: number;
  readonly name: string;
  readonly #targets: (ScsiTargetInfo | null)[] = new Array(Scsi.MaxTargets).fill(null);
  #pools = new Map<VirtQueue, ScsiPool>();
  #nexus: Nexus;
  /** Hotplug events waiting for an event-queue buffer: [event, target, reason]. */
  #events: number[][] = [];
  #missed = false;
  #eventQueue: VirtQueue | null = null;
  #control = new Chain();
  #ctlBuf = new Uint8Array(TMF_REQ);
  #ctlResp = new Uint8Array(8);

  constructor(opts: ScsiDeviceOptions) {
    const nq = opts.numQueues ?? 1;
    if (!Number.isInteger(nq) || nq < 1 || nq > 64)
      throw new VhostError('EINVAL', `num_queues ${nq} out of 1..64`);
    this.maxQueues = nq;
    this.name = opts.name;
    this.#nexus = new Nexus(`vhost.${opts.name}`, `vhost.${opts.name},i,0x0`, opts.name, 1);
  }

  get targets(): readonly (ScsiTargetInfo | null)[] {
    return this.#targets;
  }

  /** Attach a backend as target `num` (LUN 0); reports a rescan to a connected guest. */
  addTarget(num: number, backend: BlockBackend): ScsiTargetInfo {
    if (!Number.isInteger(num) || num < 0 || num >= Scsi.MaxTargets) {
      throw new VhostError('EINVAL', `scsi_target_num ${num} out of 0..${Scsi.MaxTargets - 1}`);
    }
    if (this.#targets[num] !== null) throw new VhostError('EEXIST', `target ${num} exists on ${this.name}`);
    const device = new ScsiDevice(`${this.name}.${num}`);
    device.addLun(0, backend);
    const t = { num, device, backend };
    this.#targets[num] = t;
    this.#event(Scsi.E.TransportReset, num, Scsi.Evt.Rescan);
    return t;
  }

  /** Detach target `num`; a connected guest is told it was removed. */
  removeTarget(num: number): void {
    if (this.#targets[num] === null || this.#targets[num] === undefined) {
      throw new VhostError('ENOENT', `no target ${num} on ${this.name}`);
    }
    this.#targets[num] = null;
    this.#event(Scsi.E.TransportReset, num, Scsi.Evt.Removed);
  }

  #event(event: number, target: number, reason: number): void {
    if (this.#eventQueue === null) return;
    if (this.#events.length >= 64) {
      this.#missed = true;
      return;
    }
    this.#events.push([event, target, reason]);
  }

  deviceFeatures(): bigint {
    return bits(Scsi.Feature.Hotplug, Scsi.Feature.Change);
  }

  readConfig(out: Uint8Array): number {
    const C = Scsi.Config;
    out.fill(0, 0, C.size);
    put32(out, C.numQueues, this.maxQueues);
    put32(out, C.segMax, MAX_SEGMENTS - 2);
    put32(out, C.maxSectors, 0x2000);
    put32(out, C.cmdPerLun, 128);
    put32(out, C.eventInfoSize, Scsi.EventSize);
    put32(out, C.senseSize, Scsi.SenseSize);
    put32(out, C.cdbSize, Scsi.CdbSize);
    put16(out, C.maxChannel, 0);
    put16(out, C.maxTarget, Scsi.MaxTargets - 1);
    put32(out, C.maxLun, 0);
    return C.size;
  }

  writeConfig(_offset: number, _data: Uint8Array): void {
    // sense_size and cdb_size are fixed here; the driver's writes are ignored (§5.6.4.1 allows it).
  }

  queueStarted(q: VirtQueue): void {
    if (q.index === Scsi.EventQueue) {
      this.#eventQueue = q;
      return;
    }
    if (q.index === Scsi.ControlQueue) return;
    const p = this.#pools.get(q);
    if (p === undefined || p.reqs.length !== q.size || q.inflight !== 0)
      this.#pools.set(q, new ScsiPool(q, q.size));
  }

  reset(): void {
    this.#eventQueue = null;
    this.#events = [];
    this.#missed = false;
    for (const [q, p] of this.#pools) if (p.free.length === p.reqs.length) this.#pools.delete(q);
    for (const t of this.#targets) t?.device.nexusLost(this.#nexus);
  }

  processQueue(q: VirtQueue, budget: number): number {
    if (q.index === Scsi.ControlQueue) return this.#controlQueue(q, budget);
    if (q.index === Scsi.EventQueue) return this.#eventQueueWork(q);
    const pool = this.#pools.get(q);
    if (pool === undefined) return 0;
    let n = 0;
    while (n < budget && pool.free.length > 0) {
      const r = pool.reqs[pool.free[pool.free.length - 1]];
      if (!q.pop(r.chain)) break;
      pool.free.pop();
      q.inflight++;
      n++;
      this.#submit(pool, r);
    }
    return n;
  }

  #submit(pool: ScsiPool, r: ScsiRequest): void {
    const c = r.chain;
    r.resp.fill(0);
    if (c.error !== null || !gather(c, 0, r.header) || c.writeBytes < RESP_BYTES) {
      // Unusable chain: nothing sensible can be written back.
      pool.q.push(c, 0);
      pool.q.inflight--;
      pool.free.push(r.slot);
      return;
    }
    const h = r.header;
    const target = this.#targetOf(h);
    if (target === null) {
      r.resp[11] = Scsi.R.BadTarget;
      pool.finish(r, RESP_BYTES);
      return;
    }
    const t = r.task;
    t.reset();
    t.nexus = this.#nexus;
    t.lun = ((h[2] & 0x3f) << 8) | h[3];
    t.cdb = r.cdb;
    r.tag = get64(h, 8);
    r.busy = true;
    t.tag = r.tag;
    const outBytes = dataViews(c, 0, REQ_BYTES, 0, r.views);
    if (outBytes > 0) {
      const buf = t.ensureDataOut(outBytes);
      let at = 0;
      for (const v of r.views) {
        buf.set(v, at);
        at += v.length;
      }
      t.dataOutLength = outBytes;
      t.direction = DataDirection.Write;
      t.expectedLength = outBytes;
      r.expectedIn = 0;
    } else {
      r.expectedIn = c.writeBytes - RESP_BYTES;
      t.direction = r.expectedIn > 0 ? DataDirection.Read : DataDirection.None;
      t.expectedLength = r.expectedIn;
    }
    target.device.execute(t);
  }

  /** The target a virtio-scsi LUN field addresses, or null (absent, or not the single-level format). */
  #targetOf(lun: Uint8Array): ScsiTargetInfo | null {
    if (lun[0] !== 1 || lun[1] >= Scsi.MaxTargets) return null;
    return this.#targets[lun[1]] ?? null;
  }

  #controlQueue(q: VirtQueue, budget: number): number {
    let n = 0;
    const c = this.#control;
    const resp = this.#ctlResp;
    while (n < budget && q.pop(c)) {
      n++;
      const b = this.#ctlBuf;
      b.fill(0);
      if (c.error !== null || !gather(c, 0, b.subarray(0, 4))) {
        q.push(c, 0);
        continue;
      }
      const type = get32(b, 0);
      resp.fill(0);
      if (type === Scsi.T.Tmf && gather(c, 0, b)) {
        resp[0] = this.#tmf(get32(b, 4), b.subarray(8, 16), get64(b, 16));
        q.push(c, scatter(c, 1, 0, resp.subarray(0, 1)));
      } else if (
        (type === Scsi.T.AnQuery || type === Scsi.T.AnSubscribe) &&
        gather(c, 0, b.subarray(0, AN_REQ))
      ) {
        // No asynchronous notifications are supported: event_actual 0, response OK.
        q.push(c, scatter(c, 1, 0, resp.subarray(0, 5)));
      } else {
        resp[0] = Scsi.R.Failure;
        q.push(c, scatter(c, 1, 0, resp.subarray(0, 1)));
      }
    }
    return n;
  }

  #tmf(subtype: number, lun: Uint8Array, tag: number): number {
    const target = this.#targetOf(lun);
    if (target === null) return Scsi.R.BadTarget;
    switch (subtype) {
      case Scsi.Tmf.AbortTask:
      case Scsi.Tmf.QueryTask:
        // A command still running cannot be recalled from the backend: say so.
        return this.#running(tag) ? Scsi.R.FunctionRejected : Scsi.R.FunctionSucceeded;
      case Scsi.Tmf.AbortTaskSet:
      case Scsi.Tmf.ClearTaskSet:
      case Scsi.Tmf.QueryTaskSet:
        return this.#running(-1) ? Scsi.R.FunctionRejected : Scsi.R.FunctionSucceeded;
      case Scsi.Tmf.LogicalUnitReset:
        target.device.lun(0)?.resetLun();
        return Scsi.R.Ok;
      case Scsi.Tmf.ITNexusReset:
        target.device.nexusLost(this.#nexus);
        return Scsi.R.Ok;
      default:
        return Scsi.R.FunctionRejected;
    }
  }

  /** Whether a command with `tag` (-1: any) is in flight. */
  #running(tag: number): boolean {
    for (const p of this.#pools.values()) {
      for (const r of p.reqs) if (r.busy && (tag === -1 || r.tag === tag)) return true;
    }
    return false;
  }

  #eventQueueWork(q: VirtQueue): number {
    let n = 0;
    const c = this.#control;
    const ev = this.#ctlBuf.subarray(0, Scsi.EventSize);
    while ((this.#events.length > 0 || this.#missed) && q.pop(c)) {
      n++;
      ev.fill(0);
      const e = this.#events.shift();
      if (e !== undefined) {
        put32(ev, 0, e[0] | (this.#missed ? Scsi.E.EventsMissed : 0));
        ev[4] = 1;
        ev[5] = e[1];
        put32(ev, 12, e[2]);
      } else put32(ev, 0, Scsi.E.EventsMissed);
      this.#missed = false;
      q.push(c, c.error === null ? scatter(c, 1, 0, ev) : 0);
    }
    return n;
  }
}
