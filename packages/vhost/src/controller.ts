import { DmaRegion } from '@storkit/native';
import { POLLER_BUSY, POLLER_IDLE, type Poller, registerPoller } from '@storkit/reactor';
import type { VirtioDevice } from './device.js';
import { VhostError } from './errors.js';
import { InflightArea, inflightQueueBytes } from './inflight.js';
import { GuestMemory, MAX_MEM_SLOTS } from './memory.js';
import {
  closeFd,
  eventfdWrite,
  type GuestMapping,
  listen,
  mapGuestRegion,
  type NativeConnection,
  type NativeListener,
  type VhostMessage,
} from './native.js';
import { PackedQueue } from './packed.js';
import { bits, Feature, hasBit, MsgFlag, ProtocolFeature, Req } from './spec.js';
import { SplitQueue, type VirtQueue } from './virtqueue.js';

/** SPDK's vhost_controller_set_coalescing parameters. */
export interface Coalescing {
  /** Longest an interrupt is held back, in microseconds (0: no coalescing). */
  delayBaseUs: number;
  /** Coalesce only on queues doing more than this many requests per second. */
  iopsThreshold: number;
}

export interface ControllerOptions {
  name: string;
  socketPath: string;
  cpumask?: string;
  device: VirtioDevice;
  /** Offer packed virtqueues (SPDK's `packed_ring`); split rings are always offered. */
  packedRing?: boolean;
  /**
   * Make the socket only at `start()` (SPDK's `delay` of vhost_create_scsi_controller: no frontend
   * can connect until vhost_start_scsi_controller, after the targets were added).
   */
  delay?: boolean;
}

/** Requests one queue takes per poll (SPDK's MAX_PKT_BURST). */
export const QUEUE_BURST = 32;
/** Control messages handled per control poll. */
const CONTROL_BURST = 32;
/** Control socket poll period. */
const CONTROL_PERIOD_US = 200;
/** Quiet control polls (rings running, no message) before the socket is read less often. */
const CONTROL_QUIET_AFTER = 50;
/** Once quiet, the socket is read on one control poll in this many (1 ms at 200 µs). */
const CONTROL_QUIET_EVERY = 5;
/** While connected, control polls per look for (and refusal of) another frontend. */
const ACCEPT_EVERY = 16;
/** IOPS measurement window for coalescing. */
const RATE_PERIOD_US = 10_000;

const TRANSPORT_FEATURES = bits(
  Feature.Version1,
  Feature.RingIndirectDesc,
  Feature.RingEventIdx,
  Feature.ProtocolFeatures,
);
const PROTOCOL_FEATURES = bits(
  ProtocolFeature.Mq,
  ProtocolFeature.ReplyAck,
  ProtocolFeature.Config,
  ProtocolFeature.ConfigureMemSlots,
  ProtocolFeature.InflightShmfd,
);

/** Requests whose reply is their own (REPLY_ACK adds no ack to them). */
const HAS_REPLY = new Set<number>([
  Req.GetFeatures,
  Req.GetProtocolFeatures,
  Req.GetVringBase,
  Req.GetQueueNum,
  Req.GetConfig,
  Req.GetMaxMemSlots,
  Req.GetInflightFd,
  Req.GetStatus,
]);

interface Retired {
  queues: VirtQueue[];
  mem: GuestMemory;
}

interface VringSetup {
  num: number;
  /** Frontend user addresses (translated to guest addresses when the ring starts). */
  desc: number;
  avail: number;
  used: number;
  addrSet: boolean;
  kicked: boolean;
}

export interface ControllerStats {
  connections: number;
  disconnects: number;
  protocolErrors: number;
  requests: number;
  badChains: number;
  interrupts: number;
}

/**
 * One vhost-user controller: a listening socket, the frontend connected to it, the vhost-user
 * protocol state machine, guest memory and the virtqueues; a VirtioDevice (blk, scsi) serves the
 * requests. Polled from two pollers on its reactor thread: the queues every iteration, the
 * control socket every CONTROL_PERIOD_US. A frontend that breaks the protocol is disconnected; a
 * guest that breaks its rings gets the queue marked broken; the controller keeps listening, and
 * other controllers never notice.
 */
export class VhostController {
  readonly name: string;
  readonly socketPath: string;
  readonly cpumask: string;
  readonly device: VirtioDevice;
  readonly packedRing: boolean;
  readonly coalescing: Coalescing = { delayBaseUs: 0, iopsThreshold: 0 };
  readonly stats: ControllerStats = {
    connections: 0,
    disconnects: 0,
    protocolErrors: 0,
    requests: 0,
    badChains: 0,
    interrupts: 0,
  };
  /** Why the last connection ended or a queue broke (diagnostics, tests). */
  lastError: string | null = null;

  #listener: NativeListener | null;
  #conn: NativeConnection | null = null;
  #mem = new GuestMemory();
  #queues: VirtQueue[] = [];
  #setup: VringSetup[] = [];
  #retired: Retired[] = [];
  #features = 0n;
  #protocol = 0n;
  #owner = false;
  /** A GET_VRING_BASE waiting for its queue's in-flight requests. */
  #waitBase: { index: number } | null = null;
  #pollers: Poller[] = [];
  /** Per queue: an interrupt held back by coalescing; requests seen at the last rate sample; rate. */
  #held: boolean[] = [];
  #lastCount: number[] = [];
  #rate: number[] = [];
  #config = new Uint8Array(256);
  /** INFLIGHT_SHMFD: the buffer we made (GET_INFLIGHT_FD) and the one in use (SET_INFLIGHT_FD). */
  #inflightMade: DmaRegion | null = null;
  #inflight: { map: GuestMapping; numQueues: number; queueSize: number } | null = null;
  #closed = false;
  #acceptTick = 0;
  /** Control polls in a row with nothing from a frontend whose rings run; see #pollControl. */
  #quiet = 0;
  #quietTick = 0;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.socketPath = opts.socketPath;
    this.cpumask = opts.cpumask ?? '';
    this.device = opts.device;
    this.packedRing = opts.packedRing === true;
    this.#listener = opts.delay === true ? null : listen(opts.socketPath);
    this.#resetQueues();
  }

  /** Whether `start()` ran (the socket exists and is served). */
  get started(): boolean {
    return this.#pollers.length > 0;
  }

  /** Features offered in GET_FEATURES. */
  get offeredFeatures(): bigint {
    return (
      TRANSPORT_FEATURES | (this.packedRing ? bits(Feature.RingPacked) : 0n) | this.device.deviceFeatures()
    );
  }

  get features(): bigint {
    return this.#features;
  }

  /** The frontend has sent SET_OWNER (and no RESET_OWNER since). */
  get owner(): boolean {
    return this.#owner;
  }

  get connected(): boolean {
    return this.#conn !== null;
  }

  get memory(): GuestMemory {
    return this.#mem;
  }

  get queues(): readonly VirtQueue[] {
    return this.#queues;
  }

  /** Requests handed to the device and not completed, over every queue (also retired ones). */
  get inflight(): number {
    let n = 0;
    for (const q of this.#queues) n += q.inflight;
    for (const r of this.#retired) for (const q of r.queues) n += q.inflight;
    return n;
  }

  /** Register the pollers on the current reactor thread. */
  start(): void {
    if (this.#pollers.length > 0 || this.#closed) return;
    if (this.#listener === null) this.#listener = listen(this.socketPath);
    this.#pollers.push(registerPoller(() => this.pollQueues(), 0, `vhost_${this.name}_queues`));
    this.#pollers.push(
      registerPoller(() => this.pollControl(), CONTROL_PERIOD_US, `vhost_${this.name}_ctrl`),
    );
    this.#pollers.push(registerPoller(() => this.#sampleRates(), RATE_PERIOD_US, `vhost_${this.name}_rate`));
  }

  setCoalescing(c: Coalescing): void {
    if (
      !Number.isInteger(c.delayBaseUs) ||
      c.delayBaseUs < 0 ||
      !Number.isInteger(c.iopsThreshold) ||
      c.iopsThreshold < 0
    ) {
      throw new VhostError('EINVAL', 'delay_base_us and iops_threshold must be non-negative integers');
    }
    this.coalescing.delayBaseUs = c.delayBaseUs;
    this.coalescing.iopsThreshold = c.iopsThreshold;
    const hadTimer = this.#pollers.length > 3;
    if (hadTimer) this.#pollers.pop()?.unregister();
    if (this.#pollers.length > 0 && c.delayBaseUs > 0) {
      this.#pollers.push(
        registerPoller(() => this.#flushHeld(), c.delayBaseUs, `vhost_${this.name}_coalesce`),
      );
    }
    if (c.delayBaseUs === 0) this.#flushHeld();
  }

  /** Stop serving: drop the frontend, stop listening, unregister pollers (on the controller's thread). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#disconnect('controller deleted');
    this.#listener?.close();
    this.#listener = null;
    for (const p of this.#pollers) p.unregister();
    this.#pollers = [];
    this.#releaseRetired();
  }

  // ---- queues ----------------------------------------------------------------------------

  /** One pass over the queues: take new requests, publish completions, signal the driver. */
  pollQueues(): number {
    let work = 0;
    const qs = this.#queues;
    for (let i = 0; i < qs.length; i++) {
      const q = qs[i];
      if (!q.running) continue;
      try {
        work += this.#pollQueue(q, i);
      } catch (e) {
        // A bug must not take the reactor down with it: this queue stops, everything else runs.
        q.stop();
        this.lastError = `queue ${i} stopped: ${(e as Error).message}`;
        if (q.errFd >= 0) eventfdWrite(q.errFd);
      }
    }
    if (this.#retired.length > 0) this.#releaseRetired();
    return work > 0 ? POLLER_BUSY : POLLER_IDLE;
  }

  #pollQueue(q: VirtQueue, i: number): number {
    let work = 0;
    if (q.enabled) {
      // The queue counts what it takes; the controller's totals outlive its queues (reconnects).
      const qs = q.stats;
      const r0 = qs.requests;
      const b0 = qs.badChains;
      work += this.device.processQueue(q, QUEUE_BURST);
      this.stats.requests += qs.requests - r0;
      this.stats.badChains += qs.badChains - b0;
    }
    if (q.broken !== null) this.#queueBroke(q);
    if (q.publish()) {
      if (this.coalescing.delayBaseUs > 0 && this.#rate[i] > this.coalescing.iopsThreshold)
        this.#held[i] = true;
      else this.#signal(q);
      work++;
    }
    return work;
  }

  #signal(q: VirtQueue): void {
    const n = q.stats.interrupts;
    q.signal();
    this.stats.interrupts += q.stats.interrupts - n;
  }

  #queueBroke(q: VirtQueue): void {
    this.lastError = q.broken;
    q.broken = null;
    if (q.errFd >= 0) eventfdWrite(q.errFd);
  }

  #flushHeld(): number {
    let n = 0;
    for (let i = 0; i < this.#held.length; i++) {
      if (!this.#held[i]) continue;
      this.#held[i] = false;
      const q = this.#queues[i];
      if (q !== undefined) this.#signal(q);
      n++;
    }
    return n > 0 ? POLLER_BUSY : POLLER_IDLE;
  }

  #sampleRates(): number {
    for (let i = 0; i < this.#queues.length; i++) {
      const r = this.#queues[i].stats.requests;
      this.#rate[i] = ((r - this.#lastCount[i]) * 1e6) / RATE_PERIOD_US;
      this.#lastCount[i] = r;
    }
    return POLLER_IDLE;
  }

  #releaseRetired(): void {
    this.#retired = this.#retired.filter((r) => {
      if (r.queues.some((q) => q.inflight > 0)) return true;
      r.mem.clear();
      return false;
    });
  }

  #resetQueues(packed = false): void {
    const n = this.#queueCount();
    this.#queues = [];
    this.#setup = [];
    this.#held = [];
    this.#lastCount = [];
    this.#rate = [];
    for (let i = 0; i < n; i++) {
      this.#queues.push(packed ? new PackedQueue(i) : new SplitQueue(i));
      this.#setup.push({ num: 0, desc: 0, avail: 0, used: 0, addrSet: false, kicked: false });
      this.#held.push(false);
      this.#lastCount.push(0);
      this.#rate.push(0);
    }
  }

  /** Use split or packed rings (SET_FEATURES); notifiers carry over, rings must be stopped. */
  #layout(packed: boolean): void {
    if (this.#queues[0] instanceof PackedQueue === packed) return;
    if (this.#queues.some((q) => q.running || q.inflight > 0)) {
      throw new VhostError('EPROTO', 'ring layout changed while rings are running');
    }
    const old = this.#queues;
    const setup = this.#setup;
    this.#resetQueues(packed);
    old.forEach((q, i) => {
      const n = this.#queues[i];
      n.callFd = q.callFd;
      n.kickFd = q.kickFd;
      n.errFd = q.errFd;
      n.enabled = q.enabled;
      this.#setup[i] = setup[i];
    });
  }

  #queueCount(): number {
    // virtio-scsi adds its control and event queues to the request queues.
    return this.device.kind === 'scsi' ? this.device.maxQueues + 2 : this.device.maxQueues;
  }

  // ---- control socket --------------------------------------------------------------------

  /** Accept a frontend and handle its pending messages. */
  pollControl(): number {
    try {
      return this.#pollControl();
    } catch (e) {
      // Whatever went wrong belongs to this frontend: drop it, keep listening.
      this.#disconnect(`control: ${(e as Error).message}`);
      return POLLER_BUSY;
    }
  }

  #pollControl(): number {
    if (this.#listener === null) return POLLER_IDLE;
    // A frontend whose rings run rarely says anything more (memory hot plug, a stop): once it has
    // been quiet a while, its socket is read on one control poll in CONTROL_QUIET_EVERY, which
    // takes the socket's syscalls off the reactor's hot loop. Any message makes it eager again.
    if (this.#waitBase === null && this.#quiet >= CONTROL_QUIET_AFTER) {
      if (++this.#quietTick % CONTROL_QUIET_EVERY !== 0) return POLLER_IDLE;
    }
    let work = 0;
    // accept() is the dearest call here (a few µs): with a frontend connected, another one can
    // only be refused, so it is looked for on one control poll in ACCEPT_EVERY.
    const accepting = this.#conn === null || ++this.#acceptTick % ACCEPT_EVERY === 0;
    try {
      for (let k = 0; accepting && k < 4; k++) {
        const c = this.#listener.accept();
        if (c === null) break;
        work++;
        // A frontend that already hung up (e.g. another backend's bind probing whether this
        // socket is live) must not make the next one look like a second frontend.
        if (this.#conn !== null && !this.#alive()) this.#disconnect('frontend closed the connection');
        if (this.#conn !== null) {
          c.close(); // One frontend at a time.
        } else {
          this.#conn = c;
          this.stats.connections++;
        }
      }
    } catch (e) {
      this.lastError = `accept: ${(e as Error).message}`;
    }
    for (let k = 0; k < CONTROL_BURST && this.#conn !== null; k++) {
      if (this.#waitBase !== null && !this.#finishVringBase()) break;
      let m: VhostMessage | null;
      try {
        m = this.#conn.recv();
      } catch (e) {
        this.stats.protocolErrors++;
        this.#disconnect((e as Error).message);
        break;
      }
      if (m === null) {
        if (this.#conn.closed) this.#disconnect('frontend closed the connection');
        break;
      }
      work++;
      this.#dispatch(m);
    }
    if (this.#waitBase !== null) this.#finishVringBase();
    if (work > 0 || this.#conn === null || !this.#anyRunning()) this.#quiet = 0;
    else this.#quiet++;
    return work > 0 ? POLLER_BUSY : POLLER_IDLE;
  }

  #anyRunning(): boolean {
    for (const q of this.#queues) if (q.running) return true;
    return false;
  }

  /** Whether the connected frontend is still there (handles a message it already sent). */
  #alive(): boolean {
    const conn = this.#conn;
    if (conn === null) return false;
    if (this.#waitBase !== null) return !conn.closed;
    let m: VhostMessage | null;
    try {
      m = conn.recv();
    } catch (e) {
      this.stats.protocolErrors++;
      this.#disconnect((e as Error).message);
      return false;
    }
    if (m === null) return !conn.closed;
    this.#dispatch(m);
    return this.#conn !== null;
  }

  #dispatch(m: VhostMessage): void {
    const fds = m.fds;
    let ok = true;
    try {
      ok = this.#handle(m);
    } catch (e) {
      const err = e as Error;
      this.lastError = `request ${m.request}: ${err.message}`;
      if (!(e instanceof VhostError) || e.code === 'EPROTO') {
        this.stats.protocolErrors++;
        for (const fd of fds) closeFd(fd);
        this.#disconnect(this.lastError);
        return;
      }
      ok = false;
    }
    if (
      this.#conn !== null &&
      !HAS_REPLY.has(m.request) &&
      m.flags & MsgFlag.NeedReply &&
      hasBit(this.#protocol, ProtocolFeature.ReplyAck)
    ) {
      this.#send({ request: m.request, flags: MsgFlag.Reply, fds: [], value: ok ? 0n : 1n });
    }
  }

  #send(m: VhostMessage): void {
    const c = this.#conn;
    if (c === null) return;
    try {
      c.send(m);
    } catch (e) {
      this.#disconnect(`send: ${(e as Error).message}`);
    }
  }

  #reply(req: number, fields: Partial<VhostMessage>): void {
    this.#send({ request: req, flags: MsgFlag.Reply, fds: [], ...fields });
  }

  #vring(m: VhostMessage): number {
    const i = m.index ?? -1;
    if (i < 0 || i >= this.#queues.length) {
      for (const fd of m.fds) closeFd(fd);
      throw new VhostError('EPROTO', `vring index ${i} out of range (${this.#queues.length} queues)`);
    }
    return i;
  }

  /** Handle one message; false = failed (acked as failure when the frontend asked for acks). */
  #handle(m: VhostMessage): boolean {
    switch (m.request) {
      case Req.GetFeatures:
        this.#reply(m.request, { value: this.offeredFeatures });
        return true;
      case Req.SetFeatures: {
        const f = m.value ?? 0n;
        if ((f & ~this.offeredFeatures) !== 0n)
          throw new VhostError('EPROTO', `features 0x${f.toString(16)} not offered`);
        this.#features = f;
        this.#layout(hasBit(f, Feature.RingPacked));
        for (const q of this.#queues) {
          q.eventIdx = hasBit(f, Feature.RingEventIdx);
          q.indirect = hasBit(f, Feature.RingIndirectDesc);
        }
        return true;
      }
      case Req.GetProtocolFeatures:
        this.#reply(m.request, { value: PROTOCOL_FEATURES });
        return true;
      case Req.SetProtocolFeatures: {
        const f = m.value ?? 0n;
        if ((f & ~PROTOCOL_FEATURES) !== 0n)
          throw new VhostError('EPROTO', `protocol features 0x${f.toString(16)} not offered`);
        this.#protocol = f;
        return true;
      }
      case Req.SetOwner:
        this.#owner = true;
        return true;
      case Req.ResetOwner:
        this.#stopAll();
        this.#owner = false;
        return true;
      case Req.GetQueueNum:
        this.#reply(m.request, { value: BigInt(this.#queues.length) });
        return true;
      case Req.GetMaxMemSlots:
        this.#reply(m.request, { value: BigInt(MAX_MEM_SLOTS) });
        return true;
      case Req.SetMemTable:
        return this.#setMemTable(m);
      case Req.AddMemReg:
        return this.#addMemReg(m);
      case Req.RemMemReg:
        return this.#remMemReg(m);
      case Req.SetVringNum: {
        const i = this.#vring(m);
        this.#setup[i].num = m.num ?? 0;
        return true;
      }
      case Req.SetVringAddr: {
        const i = this.#vring(m);
        const a = m.addr;
        if (a === undefined) throw new VhostError('EPROTO', 'SET_VRING_ADDR without addresses');
        const s = this.#setup[i];
        s.desc = a.desc;
        s.avail = a.avail;
        s.used = a.used;
        s.addrSet = true;
        return true;
      }
      case Req.SetVringBase: {
        const i = this.#vring(m);
        const q = this.#queues[i];
        if (q.running) throw new VhostError('EPROTO', `SET_VRING_BASE on running queue ${i}`);
        q.setBase(m.num ?? 0);
        return true;
      }
      case Req.GetVringBase: {
        const i = this.#vring(m);
        // No new requests; those in flight complete into the ring, then it stops.
        this.#queues[i].draining = true;
        this.#setup[i].kicked = false;
        this.#waitBase = { index: i };
        this.#finishVringBase();
        return true;
      }
      case Req.SetVringKick:
        return this.#setKick(m);
      case Req.SetVringCall:
      case Req.SetVringErr: {
        const i = this.#vring(m);
        const q = this.#queues[i];
        const fd = m.nofd ? -1 : m.fds[0];
        if (m.request === Req.SetVringCall) {
          closeFd(q.callFd);
          q.callFd = fd;
        } else {
          closeFd(q.errFd);
          q.errFd = fd;
        }
        return true;
      }
      case Req.SetVringEnable: {
        const i = this.#vring(m);
        this.#queues[i].enabled = (m.num ?? 0) !== 0;
        return true;
      }
      case Req.GetInflightFd:
        return this.#getInflight(m);
      case Req.SetInflightFd:
        return this.#setInflight(m);
      case Req.GetConfig: {
        const c = m.config;
        if (c === undefined) throw new VhostError('EPROTO', 'GET_CONFIG without payload');
        const n = this.device.readConfig(this.#config);
        const data = Buffer.alloc(c.size);
        if (c.offset < n) data.set(this.#config.subarray(c.offset, Math.min(n, c.offset + c.size)));
        this.#reply(m.request, { config: { offset: c.offset, size: c.size, flags: c.flags, data } });
        return true;
      }
      case Req.SetConfig: {
        const c = m.config;
        if (c === undefined) throw new VhostError('EPROTO', 'SET_CONFIG without payload');
        this.device.writeConfig(c.offset, c.data);
        return true;
      }
      default:
        // Not negotiated (log, inflight, backend channel, status...): refuse, keep the fds closed.
        for (const fd of m.fds) closeFd(fd);
        return false;
    }
  }

  #finishVringBase(): boolean {
    const w = this.#waitBase;
    if (w === null) return true;
    const q = this.#queues[w.index];
    if (q.inflight > 0) return false;
    this.#waitBase = null;
    if (q.publish()) q.signal();
    q.stop();
    // The ring is stopped: the kick fd goes (the spec), the indices are the reply.
    closeFd(q.kickFd);
    q.kickFd = -1;
    this.#reply(Req.GetVringBase, { index: w.index, num: q.base });
    return true;
  }

  #setKick(m: VhostMessage): boolean {
    const i = this.#vring(m);
    const q = this.#queues[i];
    closeFd(q.kickFd);
    q.kickFd = m.nofd ? -1 : m.fds[0];
    const s = this.#setup[i];
    s.kicked = true;
    // Without protocol features a ring is enabled as soon as it starts.
    if (!hasBit(this.#features, Feature.ProtocolFeatures)) q.enabled = true;
    return this.#startQueue(i);
  }

  #startQueue(i: number): boolean {
    const q = this.#queues[i];
    const s = this.#setup[i];
    if (!s.kicked || !s.addrSet) return false;
    const packed = q instanceof PackedQueue;
    const desc = this.#mem.uvaToGpa(s.desc, 16 * s.num);
    const avail = this.#mem.uvaToGpa(s.avail, packed ? 4 : 6 + 2 * s.num);
    const used = this.#mem.uvaToGpa(s.used, packed ? 4 : 6 + 8 * s.num);
    if (desc < 0 || avail < 0 || used < 0) {
      this.lastError = `queue ${i}: ring not in guest memory`;
      q.stop();
      return false;
    }
    q.eventIdx = hasBit(this.#features, Feature.RingEventIdx);
    q.indirect = hasBit(this.#features, Feature.RingIndirectDesc);
    if (q instanceof SplitQueue) q.inflightArea = this.#inflightArea(i, s.num);
    const why = q.start(this.#mem, s.num, { desc, avail, used });
    if (why !== null) {
      this.lastError = why;
      q.stop();
      return false;
    }
    this.device.queueStarted(q, this.#features);
    return true;
  }

  #setMemTable(m: VhostMessage): boolean {
    const regions = m.regions ?? [];
    const mem = new GuestMemory();
    try {
      regions.forEach((r, k) => {
        mem.addFromFd(m.fds[k], r.guestPhysAddr, r.memorySize, r.userspaceAddr, r.mmapOffset);
      });
    } catch (e) {
      mem.clear();
      throw e;
    } finally {
      for (const fd of m.fds) closeFd(fd);
    }
    this.#replaceMemory(mem);
    return true;
  }

  /** Swap in new memory; requests in flight keep the old mapping until they complete. */
  #replaceMemory(mem: GuestMemory): void {
    const old = this.#mem;
    this.#mem = mem;
    this.#retired.push({ queues: [...this.#queues], mem: old });
    // Running rings are re-located in the new table.
    for (let i = 0; i < this.#queues.length; i++) if (this.#queues[i].running) this.#startQueue(i);
    this.#releaseRetired();
  }

  #addMemReg(m: VhostMessage): boolean {
    const r = m.regions?.[0];
    const fd = m.fds[0];
    try {
      if (r === undefined) throw new VhostError('EPROTO', 'ADD_MEM_REG without a region');
      this.#mem.addFromFd(fd, r.guestPhysAddr, r.memorySize, r.userspaceAddr, r.mmapOffset);
    } finally {
      closeFd(fd);
    }
    for (let i = 0; i < this.#queues.length; i++)
      if (this.#setup[i].kicked && !this.#queues[i].running) this.#startQueue(i);
    return true;
  }

  #remMemReg(m: VhostMessage): boolean {
    for (const fd of m.fds) closeFd(fd);
    const r = m.regions?.[0];
    if (r === undefined) throw new VhostError('EPROTO', 'REM_MEM_REG without a region');
    const gone = this.#mem.detach(r.guestPhysAddr, r.memorySize);
    if (gone === null) return false;
    // In-flight requests may still use it: unmap once they are done.
    const mem = new GuestMemory();
    mem.adopt(gone);
    this.#retired.push({ queues: [...this.#queues], mem });
    for (let i = 0; i < this.#queues.length; i++) if (this.#queues[i].running) this.#startQueue(i);
    this.#releaseRetired();
    return true;
  }

  /** GET_INFLIGHT_FD: make a zeroed shared buffer for `num_queues` queues of `queue_size`. */
  #getInflight(m: VhostMessage): boolean {
    const r = m.inflight;
    if (r === undefined) throw new VhostError('EPROTO', 'GET_INFLIGHT_FD without payload');
    const nq = r.numQueues;
    const qs = r.queueSize;
    if (nq < 1 || nq > this.#queues.length || qs < 1 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new VhostError('EPROTO', `GET_INFLIGHT_FD for ${nq} queues of ${qs}`);
    }
    const size = nq * inflightQueueBytes(qs);
    this.#inflightMade?.close();
    this.#inflightMade = DmaRegion.create(size, { hugepages: 'never' });
    this.#reply(m.request, {
      fds: [this.#inflightMade.fd],
      inflight: { mmapSize: size, mmapOffset: 0, numQueues: nq, queueSize: qs },
    });
    return true;
  }

  /** SET_INFLIGHT_FD: map the buffer the frontend kept (ours, or a previous backend's). */
  #setInflight(m: VhostMessage): boolean {
    const fd = m.fds[0];
    try {
      const r = m.inflight;
      if (r === undefined) throw new VhostError('EPROTO', 'SET_INFLIGHT_FD without payload');
      if (
        r.numQueues < 1 ||
        r.queueSize < 1 ||
        r.mmapSize !== r.numQueues * inflightQueueBytes(r.queueSize)
      ) {
        throw new VhostError(
          'EPROTO',
          `SET_INFLIGHT_FD of ${r.mmapSize} bytes for ${r.numQueues} x ${r.queueSize}`,
        );
      }
      const map = mapGuestRegion(fd, r.mmapOffset, r.mmapSize);
      this.#inflight?.map.close();
      this.#inflight = { map, numQueues: r.numQueues, queueSize: r.queueSize };
    } finally {
      closeFd(fd);
    }
    return true;
  }

  #inflightArea(i: number, size: number): InflightArea | null {
    const f = this.#inflight;
    if (f === null || i >= f.numQueues || size !== f.queueSize) return null;
    const qb = inflightQueueBytes(size);
    return new InflightArea(new Uint8Array(f.map.buffer, f.map.delta + i * qb, qb), size);
  }

  #stopAll(): void {
    for (const q of this.#queues) {
      q.stop();
      if (q instanceof SplitQueue) q.inflightArea = null;
      closeFd(q.kickFd);
      closeFd(q.callFd);
      closeFd(q.errFd);
      q.kickFd = q.callFd = q.errFd = -1;
    }
    this.#retired.push({ queues: this.#queues, mem: this.#mem });
    this.#mem = new GuestMemory();
    this.#resetQueues();
    this.device.reset();
    this.#waitBase = null;
    this.#releaseRetired();
    this.#inflight?.map.close();
    this.#inflight = null;
    this.#inflightMade?.close();
    this.#inflightMade = null;
  }

  #disconnect(why: string): void {
    if (this.#conn === null) return;
    this.lastError = why;
    this.stats.disconnects++;
    this.#conn.close();
    this.#conn = null;
    this.#stopAll();
    this.#features = 0n;
    this.#protocol = 0n;
    this.#owner = false;
  }
}
