// The NVMe-oF target: transports, subsystems (plus the discovery subsystem), listeners and
// referrals, and Fabrics Connect. Method names and parameters mirror SPDK's nvmf_* RPCs one to
// one, so the RPC layer only has to route JSON to them.

import type { AccelChannel } from '@storkit/accel';
import { type BlockBackend, type IobufChannel, IobufPool } from '@storkit/block';
import {
  AdrFam,
  bytesToUuid,
  CC,
  CONNECT_DATA_SIZE,
  CommandSpecificStatus,
  ConnectDataOff,
  ConnectOff,
  CSTS,
  DISCOVERY_NQN,
  type DiscoveryEntry,
  DYNAMIC_CNTLID,
  encodeDiscoveryLog,
  GenericStatus,
  makeStatus,
  NQN_FIELD_SIZE,
  Sct,
  SubType,
  TrType,
} from '@storkit/nvme-spec';
import { Controller, type ControllerHost } from './controller.js';
import { ControllerTable, nqnHash } from './controller-table.js';
import { invalid, NvmfError } from './errors.js';
import { type TcpTransportOptions, type TcpTransportParams, tcpTransportOptions } from './options.js';
import type { Request } from './request.js';
import {
  type CreateSubsystemParams,
  type ListenAddress,
  type NamespaceParams,
  Subsystem,
} from './subsystem.js';
import { type ListenOptions, TcpListener } from './tcp-listener.js';
import type { QpairOwner, TcpQpair } from './tcp-qpair.js';

/** buf_cache_size that asks for SPDK's automatic size (UINT32_MAX). */
const BUF_CACHE_AUTO = 0xffff_ffff;

export interface TargetOptions {
  /** Finds the backend for nvmf_subsystem_add_ns's bdev_name (the bdev layer, later). */
  resolveBdev?: (name: string) => BlockBackend | undefined;
  /** How listeners are hosted (reactor workers: SO_REUSEPORT, callbacks run as the reactor thread). */
  listen?: ListenOptions;
  /** Set when this target is one of several copies, one per reactor (see README, "Poll groups"). */
  cluster?: ClusterHooks;
  /** Schedule qpair sends (see QpairOwner.scheduleFlush); default: a microtask per batch. */
  scheduleFlush?: (qp: TcpQpair) => void;
  /** The accel channel data digests go through (see QpairOwner.accel); default: none. */
  accel?: AccelChannel;
  /**
   * The reactor's iobuf pool, which data buffers above in-capsule size come from; default: a pool
   * of the target's own with SPDK's default sizes.
   */
  iobuf?: IobufPool;
  /**
   * Poll groups sharing the transport's num_shared_buffers (the reactors of the app); each holds
   * its share. Default 1.
   */
  pollGroups?: number;
  /**
   * I/O commands of this poll group that waited for a free bdev_io so far (SPDK's pending_bdev_io),
   * as the backends the target was given count them.
   */
  pendingBdevIo?: () => number;
}

/** What a per-reactor copy of the target needs from the app around it. */
export interface ClusterHooks {
  /** This reactor's index: the owner recorded for controllers whose admin queue is here. */
  readonly index: number;
  /** Poll group name in nvmf_get_stats. */
  readonly pollGroup?: string;
  /**
   * A controller owned here went away or was reset (CC.EN cleared): every other reactor must close
   * the I/O queues it carries for it (call `remoteControllerDown` there).
   */
  controllerDown(s: Subsystem, cntlid: number, gen: number): void;
  /**
   * A command on an I/O queue carried here for a controller owned elsewhere failed: hand its
   * error log entry to the owner (call `remoteControllerError` there).
   */
  controllerError?(s: Subsystem, cntlid: number, gen: number, entry: Uint8Array): void;
}

/** Shared state a per-reactor copy of a subsystem is created over (made by `sharedSubsystemState`). */
export interface SharedSubsystemState {
  /** The app's number for the subsystem in cross-reactor messages. */
  id: number;
  table: SharedArrayBuffer;
  qidCap: number;
}

export interface ReferralParams {
  address: ListenAddress;
  subnqn?: string;
  secure_channel?: boolean;
}

const S_SEQ = makeStatus(Sct.Generic, GenericStatus.CommandSequenceError, true);

function invalidParam(iattr: 0 | 1, ipo: number, r: Request): number {
  r.dw0 = (iattr | (ipo << 16)) >>> 0;
  return makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectInvalidParameters, true);
}

function nqnAt(b: Uint8Array, off: number): string {
  let s = '';
  for (let i = off; i < off + NQN_FIELD_SIZE && b[i] !== 0; i++) s += String.fromCharCode(b[i]);
  return s;
}

export class NvmfTarget implements QpairOwner, ControllerHost {
  #options: TcpTransportOptions | undefined;
  readonly subsystems = new Map<string, Subsystem>();
  readonly discovery: Subsystem;
  readonly referrals: ReferralParams[] = [];
  readonly #listeners = new Map<string, TcpListener>();
  readonly #backends = new Map<string, BlockBackend>();
  readonly #resolve: (name: string) => BlockBackend | undefined;
  readonly #listen: ListenOptions;
  readonly #cluster: ClusterHooks | null;
  readonly #byId = new Map<number, Subsystem>();
  readonly qpairs = new Set<TcpQpair>();
  scheduleFlush?: (qp: TcpQpair) => void;
  readonly accel: AccelChannel | null;
  #genctr = 0;
  readonly counters = { adminQpairs: 0, ioQpairs: 0, closedQpairs: 0, completedIo: 0 };
  readonly #pool: IobufPool | undefined;
  readonly #pollGroups: number;
  readonly #pendingBdevIo: () => number;
  #iobuf: IobufChannel | null = null;

  constructor(o: TargetOptions = {}) {
    this.#resolve = o.resolveBdev ?? ((n) => this.#backends.get(n));
    this.#listen = o.listen ?? {};
    this.#cluster = o.cluster ?? null;
    if (o.scheduleFlush) this.scheduleFlush = o.scheduleFlush;
    this.accel = o.accel ?? null;
    this.#pool = o.iobuf;
    this.#pollGroups = o.pollGroups ?? 1;
    this.#pendingBdevIo = o.pendingBdevIo ?? (() => 0);
    this.discovery = new Subsystem({ nqn: DISCOVERY_NQN, allow_any_host: true }, 'Discovery');
    this.subsystems.set(DISCOVERY_NQN, this.discovery);
  }

  get options(): TcpTransportOptions {
    if (!this.#options) throw new NvmfError('EINVAL', 'no TCP transport: call nvmf_create_transport first');
    return this.#options;
  }

  /** Make a backend findable by name (stands in for the bdev layer's registry). */
  registerBackend(b: BlockBackend): void {
    this.#backends.set(b.name, b);
  }

  // ---- RPC surface ----

  /** The poll group's channel of the iobuf pool (made with the transport). */
  get iobuf(): IobufChannel {
    if (this.#iobuf === null)
      throw new NvmfError('EINVAL', 'no TCP transport: call nvmf_create_transport first');
    return this.#iobuf;
  }

  nvmf_create_transport(p: TcpTransportParams): void {
    if (this.#options) throw new NvmfError('EEXIST', 'transport TCP already exists');
    const o = tcpTransportOptions(p);
    const pool = this.#pool ?? new IobufPool();
    // Each command's data takes one buffer: the largest I/O must fit a large one.
    if (o.max_io_size > pool.large.size)
      throw invalid(
        `max_io_size ${o.max_io_size} exceeds iobuf large_bufsize ${pool.large.size} (raise it with iobuf_set_options)`,
      );
    // buf_cache_size UINT32_MAX (what SPDK's own save_config writes for the default): as SPDK's
    // poll groups, each caches its share of three quarters of the shared buffers.
    let cache = o.buf_cache_size;
    if (cache === BUF_CACHE_AUTO)
      cache = Math.floor(Math.floor((o.num_shared_buffers * 3) / 4) / this.#pollGroups);
    // As SPDK's TCP transport: every poll group's cache must come out of the shared buffers.
    else if (cache * this.#pollGroups > o.num_shared_buffers)
      throw invalid(
        `num_shared_buffers ${o.num_shared_buffers} cannot fill buf_cache_size ${cache} for ${this.#pollGroups} poll groups`,
      );
    const share = Math.ceil(o.num_shared_buffers / this.#pollGroups);
    this.#iobuf = pool.channel('nvmf_TCP', cache, cache, share);
    this.#options = o;
  }

  nvmf_get_transports() {
    return this.#options ? [{ ...this.#options, trtype: 'TCP' }] : [];
  }

  /**
   * Create a subsystem. Per-reactor copies of one target pass the same `shared` state to each
   * (from `sharedSubsystemState` on the main thread), so controller IDs are unique across them and
   * an I/O queue can join a controller whose admin queue is on another reactor.
   */
  nvmf_create_subsystem(p: CreateSubsystemParams, shared?: SharedSubsystemState): void {
    if (this.subsystems.has(p.nqn)) throw new NvmfError('EEXIST', `subsystem ${p.nqn} already exists`);
    const s = new Subsystem(p);
    if (shared) {
      if (this.#byId.has(shared.id)) throw new NvmfError('EEXIST', `subsystem id ${shared.id} in use`);
      s.table = new ControllerTable(s.minCntlid, s.maxCntlid, shared.qidCap, shared.table);
      s.id = shared.id;
      this.#byId.set(s.id, s);
    }
    this.subsystems.set(p.nqn, s);
    this.#changed();
  }

  /** Shared state for a new subsystem's per-reactor copies (made once, on the main thread). */
  static sharedSubsystemState(
    p: CreateSubsystemParams,
    id: number,
    qidCap: number,
    reactors = 1,
  ): SharedSubsystemState {
    const s = new Subsystem(p); // validates the cntlid range
    return {
      id,
      qidCap,
      table: new ControllerTable(s.minCntlid, s.maxCntlid, qidCap, undefined, reactors).sab,
    };
  }

  /** A subsystem by the app's id (cross-reactor messages name subsystems by number). */
  subsystemById(id: number): Subsystem | undefined {
    return this.#byId.get(id);
  }

  /**
   * The owner of a controller announced it gone or reset: close the I/O queues this reactor
   * carries for it (those of that generation only).
   */
  remoteControllerDown(subsystemId: number, cntlid: number, gen: number): void {
    const c = this.#byId.get(subsystemId)?.remote.get(cntlid);
    if (c && c.gen === gen) c.destroy('owner controller gone or reset');
  }

  /** ControllerHost: a stand-in's error log entry goes to its owner's reactor. */
  forwardError(c: Controller, entry: Uint8Array): void {
    if (this.#cluster?.controllerError) this.#cluster.controllerError(c.subsystem, c.cntlid, c.gen, entry);
    else c.appendError(entry);
  }

  /** An error log entry from a reactor carrying I/O queues of a controller owned here. */
  remoteControllerError(subsystemId: number, cntlid: number, gen: number, entry: Uint8Array): void {
    const c = this.#byId.get(subsystemId)?.controllers.get(cntlid);
    if (c && c.gen === gen) c.appendError(entry);
  }

  async nvmf_delete_subsystem(p: { nqn: string }): Promise<void> {
    const s = this.#subsystem(p.nqn);
    if (s === this.discovery) throw invalid('the discovery subsystem cannot be deleted');
    for (const c of [...s.controllers.values()]) c.destroy('subsystem deleted');
    for (const l of [...s.listeners])
      await this.nvmf_subsystem_remove_listener({ nqn: s.nqn, listen_address: l });
    for (const c of [...s.remote.values()]) c.destroy('subsystem deleted');
    this.subsystems.delete(p.nqn);
    if (s.table) this.#byId.delete(s.id);
    this.#changed();
  }

  nvmf_subsystem_add_ns(p: { nqn: string; namespace: NamespaceParams }): number {
    const s = this.#subsystem(p.nqn);
    const b = this.#resolve(p.namespace.bdev_name);
    if (!b) throw new NvmfError('ENODEV', `no bdev named '${p.namespace.bdev_name}'`);
    return s.addNamespace(p.namespace, b);
  }

  nvmf_subsystem_remove_ns(p: { nqn: string; nsid: number }): void {
    this.#subsystem(p.nqn).removeNamespace(p.nsid);
  }

  nvmf_subsystem_add_host(p: { nqn: string; host: string }): void {
    this.#subsystem(p.nqn).hosts.add(p.host);
    this.#changed();
  }

  nvmf_subsystem_remove_host(p: { nqn: string; host: string }): void {
    const s = this.#subsystem(p.nqn);
    if (!s.hosts.delete(p.host)) throw new NvmfError('ENODEV', `host ${p.host} not in ${p.nqn}`);
    for (const c of [...s.controllers.values()])
      if (c.hostnqn === p.host && !s.allowAnyHost) c.destroy('host removed');
    this.#changed();
  }

  nvmf_subsystem_allow_any_host(p: { nqn: string; allow_any_host: boolean }): void {
    this.#subsystem(p.nqn).allowAnyHost = p.allow_any_host;
    this.#changed();
  }

  /** Start listening (shared between subsystems on the same address). Resolves once bound. */
  async nvmf_subsystem_add_listener(p: { nqn: string; listen_address: ListenAddress }): Promise<void> {
    const s = this.#subsystem(p.nqn);
    const a = this.#address(p.listen_address);
    if (s.listensOn(a)) throw new NvmfError('EEXIST', `${p.nqn} already listens on ${a.traddr}:${a.trsvcid}`);
    const key = `${a.traddr}:${a.trsvcid}`;
    let l = this.#listeners.get(key);
    if (!l) {
      l = new TcpListener(this, a.traddr, Number(a.trsvcid), this.#listen);
      await l.start();
      this.#listeners.set(key, l);
    }
    l.refs++;
    s.listeners.push(a);
    this.#changed();
  }

  async nvmf_subsystem_remove_listener(p: { nqn: string; listen_address: ListenAddress }): Promise<void> {
    const s = this.#subsystem(p.nqn);
    const a = this.#address(p.listen_address);
    const i = s.listeners.findIndex((l) => l.traddr === a.traddr && String(l.trsvcid) === a.trsvcid);
    if (i < 0) throw new NvmfError('ENODEV', `${p.nqn} does not listen on ${a.traddr}:${a.trsvcid}`);
    s.listeners.splice(i, 1);
    const key = `${a.traddr}:${a.trsvcid}`;
    const l = this.#listeners.get(key)!;
    if (--l.refs === 0) {
      this.#listeners.delete(key);
      await l.stop();
    }
    this.#changed();
  }

  nvmf_subsystem_get_listeners(p: { nqn: string }) {
    return this.#subsystem(p.nqn).listeners.map((l) => ({ address: { ...l }, ana_state: 'optimized' }));
  }

  nvmf_discovery_add_referral(p: ReferralParams): void {
    const a = this.#address(p.address);
    if (this.referrals.some((r) => r.address.traddr === a.traddr && r.address.trsvcid === a.trsvcid))
      throw new NvmfError('EEXIST', 'referral exists');
    this.referrals.push({ ...p, address: a });
    this.#changed();
  }

  nvmf_discovery_remove_referral(p: ReferralParams): void {
    const i = this.referrals.findIndex(
      (r) => r.address.traddr === p.address.traddr && r.address.trsvcid === String(p.address.trsvcid),
    );
    if (i < 0) throw new NvmfError('ENODEV', 'no such referral');
    this.referrals.splice(i, 1);
    this.#changed();
  }

  nvmf_get_subsystems() {
    return [...this.subsystems.values()].map((s) => ({
      nqn: s.nqn,
      subtype: s.subtype,
      listen_addresses: s.listeners.map((l) => ({ ...l })),
      allow_any_host: s.allowAnyHost,
      hosts: [...s.hosts].map((nqn) => ({ nqn })),
      ...(s.subtype === 'NVMe'
        ? {
            serial_number: s.serialNumber,
            model_number: s.modelNumber,
            max_namespaces: s.maxNamespaces,
            min_cntlid: s.minCntlid,
            max_cntlid: s.maxCntlid,
            namespaces: [...s.namespaces.values()].map((n) => ({
              nsid: n.nsid,
              bdev_name: n.backend.name,
              name: n.backend.name,
              nguid: Buffer.from(n.nguid).toString('hex').toUpperCase(),
              uuid: bytesToUuid(n.uuid),
            })),
          }
        : {}),
    }));
  }

  /** Controllers whose admin queue is here; with `remote`, also stand-ins for others' (owner set). */
  nvmf_subsystem_get_controllers(p: { nqn: string }, remote = false) {
    const s = this.#subsystem(p.nqn);
    const list = remote ? [...s.controllers.values(), ...s.remote.values()] : [...s.controllers.values()];
    return list.map((c) => ({
      cntlid: c.cntlid,
      hostnqn: c.hostnqn,
      hostid: bytesToUuid(c.hostid),
      num_io_qpairs: c.qpairs.size - (c.qpairs.has(0) ? 1 : 0),
      ...(remote ? { owner: c.ownerReactor < 0 ? (this.#cluster?.index ?? 0) : c.ownerReactor } : {}),
    }));
  }

  nvmf_subsystem_get_qpairs(p: { nqn: string }) {
    const out: object[] = [];
    const s = this.#subsystem(p.nqn);
    for (const c of [...s.controllers.values(), ...s.remote.values()])
      for (const q of c.qpairs.values())
        out.push({
          cntlid: c.cntlid,
          qid: q.qid,
          state: 'active',
          listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: q.local.traddr, trsvcid: q.local.trsvcid },
          peer_address: {
            trtype: 'TCP',
            adrfam: 'IPv4',
            traddr: q.peer.split(':')[0],
            trsvcid: q.peer.split(':')[1],
          },
        });
    return out;
  }

  nvmf_get_stats() {
    // Completions, not commands received: live qpairs' counts plus those of closed ones.
    let completed = this.counters.completedIo;
    let admin = 0;
    let io = 0;
    for (const q of this.qpairs) {
      completed += q.stats.completedIo;
      if (q.qid === 0) admin++;
      else if (q.qid > 0) io++;
    }
    return {
      tick_rate: 1_000_000,
      poll_groups: [
        {
          name: this.#cluster?.pollGroup ?? 'nvmf_tgt_poll_group_000',
          admin_qpairs: this.counters.adminQpairs,
          io_qpairs: this.counters.ioQpairs,
          current_admin_qpairs: admin,
          current_io_qpairs: io,
          pending_bdev_io: this.#pendingBdevIo(),
          completed_nvme_io: completed,
          transports: [{ trtype: 'TCP' }],
        },
      ],
    };
  }

  /** Stop every listener and drop every connection. */
  async close(): Promise<void> {
    for (const s of this.subsystems.values())
      for (const c of [...s.controllers.values(), ...s.remote.values()]) c.destroy('target shutdown');
    for (const q of [...this.qpairs]) q.close();
    await Promise.all([...this.#listeners.values()].map((l) => l.stop()));
    this.#listeners.clear();
    this.#iobuf?.close();
  }

  /** The port a listener got (for listeners created with trsvcid 0 in tests). */
  boundPort(traddr: string, trsvcid: string | number): number | undefined {
    return this.#listeners.get(`${traddr}:${trsvcid}`)?.port;
  }

  #subsystem(nqn: string): Subsystem {
    const s = this.subsystems.get(nqn);
    if (!s) throw new NvmfError('ENODEV', `no subsystem ${nqn}`);
    return s;
  }

  #address(a: ListenAddress): ListenAddress {
    if (String(a.trtype).toUpperCase() !== 'TCP') throw invalid(`unsupported trtype '${a.trtype}'`);
    const adrfam = (a.adrfam ?? 'IPv4').toLowerCase();
    if (adrfam !== 'ipv4' && adrfam !== 'ipv6') throw invalid(`unsupported adrfam '${a.adrfam}'`);
    const port = Number(a.trsvcid);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalid(`invalid trsvcid '${a.trsvcid}'`);
    this.options; // a listener needs the transport
    return {
      trtype: 'TCP',
      adrfam: adrfam === 'ipv4' ? 'IPv4' : 'IPv6',
      traddr: a.traddr,
      trsvcid: String(a.trsvcid),
    };
  }

  #changed(): void {
    this.#genctr++;
    for (const c of this.discovery.controllers.values()) c.discoveryChanged();
  }

  // ---- QpairOwner / ControllerHost ----

  qpairOpened(qp: TcpQpair): void {
    this.qpairs.add(qp);
  }

  qpairClosed(qp: TcpQpair): void {
    if (this.qpairs.delete(qp)) this.counters.completedIo += qp.stats.completedIo;
    this.counters.closedQpairs++;
    const c = qp.ctrlr;
    if (c === null) return;
    const t = c.subsystem.table;
    if (t !== null && qp.qid > 0 && c.qpairs.get(qp.qid) === qp) t.releaseQid(c.cntlid, c.gen, qp.qid);
    c.qpairClosed(qp);
    // A stand-in lives as long as it carries I/O queues here.
    if (c.ownerReactor >= 0 && c.qpairs.size === 0) c.destroy('last I/O queue closed');
  }

  controllerGone(c: Controller): void {
    const s = c.subsystem;
    if (s.table === null) return;
    if (c.ownerReactor >= 0) {
      if (s.remote.get(c.cntlid) === c) s.remote.delete(c.cntlid);
      return;
    }
    s.table.free(c.cntlid, c.gen);
    this.#cluster?.controllerDown(s, c.cntlid, c.gen);
  }

  controllerReady(c: Controller, ready: boolean): void {
    const s = c.subsystem;
    if (s.table === null || c.ownerReactor >= 0) return;
    s.table.setReady(c.cntlid, c.gen, ready);
    if (!ready) this.#cluster?.controllerDown(s, c.cntlid, c.gen);
  }

  connect(qp: TcpQpair, r: Request): void {
    r.status = this.#connect(qp, r);
  }

  #connect(qp: TcpQpair, r: Request): number {
    const dv = r.sqeDv;
    if (r.dataLen < CONNECT_DATA_SIZE)
      return makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid, true);
    if (dv.getUint16(ConnectOff.recfmt, true) !== 0)
      return makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectIncompatibleFormat, true);
    const qid = dv.getUint16(ConnectOff.qid, true);
    const sqsize = dv.getUint16(ConnectOff.sqsize, true);
    const kato = dv.getUint32(ConnectOff.kato, true);
    const d = r.buf;
    const ddv = new DataView(d.buffer, d.byteOffset, CONNECT_DATA_SIZE);
    const cntlid = ddv.getUint16(ConnectDataOff.cntlid, true);
    const subnqn = nqnAt(d, ConnectDataOff.subnqn);
    const hostnqn = nqnAt(d, ConnectDataOff.hostnqn);
    const s = this.subsystems.get(subnqn);
    if (!s || (s !== this.discovery && !s.listensOn(qp.local)))
      return invalidParam(1, ConnectDataOff.subnqn, r);
    if (!s.hostAllowed(hostnqn))
      return makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectInvalidHost, true);
    const depth = qid === 0 ? this.options.max_aq_depth : this.options.max_queue_depth;
    if (sqsize === 0 || sqsize >= depth) return invalidParam(0, ConnectOff.sqsize, r);
    if (qid === 0) {
      if (cntlid !== DYNAMIC_CNTLID) return invalidParam(1, ConnectDataOff.cntlid, r);
      let id: number | undefined;
      let gen = 0;
      if (s.table) {
        const a = s.table.alloc(this.#cluster?.index ?? 0, nqnHash(hostnqn));
        if (a) ({ cntlid: id, gen } = a);
      } else id = s.allocCntlid();
      if (id === undefined)
        return makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectControllerBusy, true);
      const c = new Controller(this, s, id, hostnqn, d.slice(0, 16), kato);
      c.gen = gen;
      if (s.table) c.bindStats(s.table, this.#cluster?.index ?? 0);
      s.controllers.set(id, c);
      c.qpairs.set(0, qp);
      qp.attach(c, 0, sqsize);
      this.counters.adminQpairs++;
      r.dw0 = id;
      return 0;
    }
    let c = s.controllers.get(cntlid);
    if (!c && s.table) {
      // A controller owned by another reactor: check it in the shared table, then carry this
      // I/O queue on a local stand-in.
      const e = s.table.lookup(cntlid);
      if (!e || e.owner === (this.#cluster?.index ?? 0)) return invalidParam(1, ConnectDataOff.cntlid, r);
      if (e.hostHash !== nqnHash(hostnqn)) return invalidParam(1, ConnectDataOff.hostnqn, r);
      if (!e.ready) return S_SEQ;
      c = s.remote.get(cntlid);
      if (c && c.gen !== e.gen) {
        c.destroy('stale controller generation');
        c = undefined;
      }
      if (!c) {
        c = new Controller(this, s, cntlid, hostnqn, d.slice(0, 16), 0);
        c.gen = e.gen;
        c.ownerReactor = e.owner;
        c.bindStats(s.table, this.#cluster?.index ?? 0);
        c.cc = CC.enabled;
        c.csts = CSTS.RDY;
        s.remote.set(cntlid, c);
      }
    }
    if (!c) return invalidParam(1, ConnectDataOff.cntlid, r);
    if (c.hostnqn !== hostnqn) return invalidParam(1, ConnectDataOff.hostnqn, r);
    if (!(c.csts & CSTS.RDY)) return S_SEQ;
    if (qid > c.ioQueueLimit || c.qpairs.has(qid) || (s.table && !s.table.claimQid(cntlid, c.gen, qid))) {
      if (c.ownerReactor >= 0 && c.qpairs.size === 0) c.destroy('connect refused');
      return invalidParam(0, ConnectOff.qid, r);
    }
    c.qpairs.set(qid, qp);
    qp.attach(c, qid, sqsize);
    this.counters.ioQpairs++;
    r.dw0 = c.cntlid;
    return 0;
  }

  discoveryLog(hostnqn: string): Uint8Array {
    const entries: DiscoveryEntry[] = [];
    const entry = (a: ListenAddress, subtype: number, subnqn: string, portid: number): DiscoveryEntry => ({
      trtype: TrType.Tcp,
      adrfam: a.adrfam === 'IPv6' ? AdrFam.IPv6 : AdrFam.IPv4,
      subtype,
      treq: 0x2, // secure channel not required
      portid,
      cntlid: DYNAMIC_CNTLID,
      asqsz: this.options.max_aq_depth,
      trsvcid: String(a.trsvcid),
      subnqn,
      traddr: a.traddr,
      sectype: 0,
    });
    const ports = new Map<string, number>();
    const portOf = (a: ListenAddress): number => {
      const k = `${a.traddr}:${a.trsvcid}`;
      if (!ports.has(k)) ports.set(k, ports.size);
      return ports.get(k)!;
    };
    for (const s of this.subsystems.values()) {
      if (s === this.discovery || !s.hostAllowed(hostnqn)) continue;
      for (const a of s.listeners) entries.push(entry(a, SubType.Nvme, s.nqn, portOf(a)));
    }
    for (const a of this.discovery.listeners)
      entries.push(entry(a, SubType.CurrentDiscovery, DISCOVERY_NQN, portOf(a)));
    for (const r of this.referrals)
      entries.push(entry(r.address, SubType.Referral, r.subnqn ?? DISCOVERY_NQN, portOf(r.address)));
    return encodeDiscoveryLog(this.#genctr, entries);
  }
}
