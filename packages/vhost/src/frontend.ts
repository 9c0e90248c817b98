import { setImmediate as yieldLoop } from 'node:timers/promises';

import { DmaRegion } from '@storkit/native';

import { VhostError } from './errors.js';
import { closeFd, connect, eventfd, type NativeConnection, type VhostMessage } from './native.js';
import { bits, Feature, hasBit, MsgFlag, ProtocolFeature, Req } from './spec.js';

export interface FrontendOptions {
  /** Shared memory handed to the backend (rings and buffers), bytes. */
  memSize: number;
  /** Give up waiting for a reply after this long. */
  timeoutMs?: number;
  /** Called while waiting for a reply (a test drives an in-process backend's reactor with it). */
  pump?: () => void;
  /** Reuse this memory (a reconnect keeps the guest's memory) instead of allocating `memSize`. */
  memory?: DmaRegion;
}

/** The frontend user address our memory is announced at (any value works: it is only a name). */
export const FRONTEND_UVA_BASE = 0x1000_0000_0000;

/**
 * The frontend (driver) side of vhost-user, as QEMU or SPDK's virtio-user speak it: connects to a
 * backend's socket, negotiates, hands over its own memfd-backed memory (guest address 0 = byte 0
 * of `memory`) and sets up rings inside it. Control requests are async: a reply is awaited by
 * polling the socket, never blocking the thread.
 */
export class VhostUserFrontend {
  readonly conn: NativeConnection;
  readonly memory: DmaRegion;
  readonly timeoutMs: number;
  readonly pump: (() => void) | undefined;
  features = 0n;
  protocolFeatures = 0n;
  #fds: number[] = [];
  #kicks: number[] = [];

  private constructor(conn: NativeConnection, memory: DmaRegion, opts: FrontendOptions) {
    this.conn = conn;
    this.memory = memory;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.pump = opts.pump;
  }

  static connect(path: string, opts: FrontendOptions): VhostUserFrontend {
    const conn = connect(path);
    let mem: DmaRegion;
    try {
      mem = opts.memory ?? DmaRegion.create(opts.memSize, { hugepages: 'never' });
    } catch (e) {
      conn.close();
      throw e;
    }
    return new VhostUserFrontend(conn, mem, opts);
  }

  /** Send a request; when `reply` is true, await and return the reply. */
  async request(
    request: number,
    fields: Partial<VhostMessage> = {},
    reply = false,
  ): Promise<VhostMessage | null> {
    const ack = !reply && hasBit(this.protocolFeatures, ProtocolFeature.ReplyAck);
    this.conn.send({ request, flags: ack ? MsgFlag.NeedReply : 0, fds: [], ...fields });
    if (!reply && !ack) return null;
    const m = await this.#await(request);
    if (ack && m.value !== 0n) throw new VhostError('EPROTO', `backend refused request ${request}`);
    return m;
  }

  async #await(request: number): Promise<VhostMessage> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const m = this.conn.recv();
      if (m !== null) {
        if (m.request !== Req.GetInflightFd) for (const fd of m.fds) closeFd(fd);
        if (m.request !== request || (m.flags & MsgFlag.Reply) === 0) {
          throw new VhostError('EPROTO', `expected a reply to ${request}, got request ${m.request}`);
        }
        return m;
      }
      if (this.conn.closed) throw new VhostError('ENOTCONN', 'backend closed the connection');
      if (Date.now() > deadline)
        throw new VhostError('ENOTCONN', `no reply to request ${request} in ${this.timeoutMs} ms`);
      this.pump?.();
      await yieldLoop();
    }
  }

  async u64(request: number): Promise<bigint> {
    const m = await this.request(request, {}, true);
    return m?.value ?? 0n;
  }

  /**
   * The usual start: owner, features (`want` ∩ offered, plus VERSION_1 and protocol features),
   * protocol features, the memory table. Returns the negotiated features.
   */
  async negotiate(want: bigint, wantProtocol = 0n): Promise<bigint> {
    await this.request(Req.SetOwner);
    const offered = await this.u64(Req.GetFeatures);
    if (hasBit(offered, Feature.ProtocolFeatures)) {
      const pf = await this.u64(Req.GetProtocolFeatures);
      const use =
        pf & (bits(ProtocolFeature.Mq, ProtocolFeature.ReplyAck, ProtocolFeature.Config) | wantProtocol);
      await this.request(Req.SetProtocolFeatures, { value: use });
      this.protocolFeatures = use;
    }
    this.features = offered & (want | bits(Feature.Version1, Feature.ProtocolFeatures));
    await this.request(Req.SetFeatures, { value: this.features });
    await this.request(Req.SetMemTable, {
      fds: [this.memory.fd],
      regions: [
        { guestPhysAddr: 0, memorySize: this.memory.size, userspaceAddr: FRONTEND_UVA_BASE, mmapOffset: 0 },
      ],
    });
    return this.features;
  }

  /**
   * GET_INFLIGHT_FD: the backend's in-flight tracking buffer for `numQueues` queues of `queueSize`
   * (the caller owns the fd and hands it back with `setInflight` on every (re)connect).
   */
  async getInflight(numQueues: number, queueSize: number): Promise<{ fd: number; size: number }> {
    const m = await this.request(
      Req.GetInflightFd,
      { inflight: { mmapSize: 0, mmapOffset: 0, numQueues, queueSize } },
      true,
    );
    const fd = m?.fds[0] ?? -1;
    if (fd < 0 || m?.inflight === undefined)
      throw new VhostError('EPROTO', 'GET_INFLIGHT_FD reply without a buffer');
    return { fd, size: m.inflight.mmapSize };
  }

  async setInflight(fd: number, size: number, numQueues: number, queueSize: number): Promise<void> {
    await this.request(Req.SetInflightFd, {
      fds: [fd],
      inflight: { mmapSize: size, mmapOffset: 0, numQueues, queueSize },
    });
  }

  /** Hot-add a region of shared memory (ADD_MEM_REG; needs CONFIGURE_MEM_SLOTS). */
  async addRegion(fd: number, gpa: number, size: number, uva: number): Promise<void> {
    await this.request(Req.AddMemReg, {
      fds: [fd],
      regions: [{ guestPhysAddr: gpa, memorySize: size, userspaceAddr: uva, mmapOffset: 0 }],
    });
  }

  /** Hot-remove a region (REM_MEM_REG). */
  async removeRegion(gpa: number, size: number, uva: number): Promise<void> {
    await this.request(Req.RemMemReg, {
      regions: [{ guestPhysAddr: gpa, memorySize: size, userspaceAddr: uva, mmapOffset: 0 }],
    });
  }

  /** Read `size` bytes of the device config space. */
  async config(size: number): Promise<Uint8Array> {
    const m = await this.request(
      Req.GetConfig,
      { config: { offset: 0, size, flags: 0, data: Buffer.alloc(size) } },
      true,
    );
    return new Uint8Array(m?.config?.data ?? new Uint8Array(size));
  }

  /** Start queue `index` with rings at guest addresses desc/avail/used; returns its call eventfd. */
  async startQueue(index: number, size: number, desc: number, avail: number, used: number): Promise<number> {
    await this.request(Req.SetVringNum, { index, num: size });
    // Packed rings start with both wrap counters set (bits 15 and 31).
    const base = hasBit(this.features, Feature.RingPacked) ? 0x8000_8000 : 0;
    await this.request(Req.SetVringBase, { index, num: base });
    await this.request(Req.SetVringAddr, {
      index,
      addr: {
        flags: 0,
        desc: FRONTEND_UVA_BASE + desc,
        avail: FRONTEND_UVA_BASE + avail,
        used: FRONTEND_UVA_BASE + used,
        log: 0,
      },
    });
    const kick = eventfd();
    const call = eventfd();
    this.#fds.push(kick, call);
    this.#kicks[index] = kick;
    await this.request(Req.SetVringKick, { index, nofd: false, fds: [kick] });
    await this.request(Req.SetVringCall, { index, nofd: false, fds: [call] });
    if (hasBit(this.features, Feature.ProtocolFeatures))
      await this.request(Req.SetVringEnable, { index, num: 1 });
    return call;
  }

  /** The kick eventfd of a started queue (-1 if none). */
  kickFd(index: number): number {
    return this.#kicks[index] ?? -1;
  }

  /** Stop a queue: the backend drains it and answers its last avail index. */
  async stopQueue(index: number): Promise<number> {
    const m = await this.request(Req.GetVringBase, { index, num: 0 }, true);
    return m?.num ?? 0;
  }

  /** Hang up and free the memory (the backend keeps its own mapping until it lets go). */
  close(): void {
    this.conn.close();
    for (const fd of this.#fds) closeFd(fd);
    this.#fds = [];
    this.memory.close();
  }
}
