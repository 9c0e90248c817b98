import { type BlockBackend, type IobufChannel, IobufPool } from '@storkit/block';
import { ScsiDevice } from '@storkit/scsi';
import type { ChapSecret } from './chap.js';
import {
  type AuthGroupParams,
  checkChapFlags,
  type DiscoveryAuthParams,
  fullTargetName,
  type InitiatorGroupParams,
  type IscsiOptions,
  initiatorAllowed,
  type PortalGroupParams,
  resolveOptions,
  type TargetNodeParams,
} from './config.js';
import { Connection, type ConnectionInfo, type PduSink } from './connection.js';
import { IscsiError } from './errors.js';
import type { TargetLimits } from './keys.js';
import type { DigestCrc } from './pdu.js';
import type { Session } from './session.js';
import { SessionCount } from './session-count.js';

/** Looks a block device up by bdev name (the bdev layer's job; a map until it lands). */
export type BdevLookup = (name: string) => BlockBackend | undefined;

export interface AuthPolicy {
  disable_chap: boolean;
  require_chap: boolean;
  mutual_chap: boolean;
  chap_group: number;
}

/** A configured target node: its SCSI device and access rules. */
export class TargetNode {
  readonly name: string;
  readonly params: TargetNodeParams;
  readonly device: ScsiDevice;
  readonly auth: AuthPolicy;

  constructor(name: string, params: TargetNodeParams, device: ScsiDevice) {
    this.name = name;
    this.params = params;
    this.device = device;
    this.auth = {
      disable_chap: params.disable_chap ?? false,
      require_chap: params.require_chap ?? false,
      mutual_chap: params.mutual_chap ?? false,
      chap_group: params.chap_group ?? 0,
    };
  }
}

export interface IscsiStats {
  invalid: number;
  running: number;
  exiting: number;
  exited: number;
}

/**
 * The iSCSI target: options, portal/initiator/auth groups, target nodes and live sessions. Methods
 * mirror SPDK's iscsi_* RPCs. Transports create one `Connection` per accepted socket with `accept`.
 */
export class IscsiTarget {
  options: IscsiOptions;
  readonly portalGroups = new Map<number, PortalGroupParams>();
  readonly initiatorGroups = new Map<number, InitiatorGroupParams>();
  readonly authGroups = new Map<number, AuthGroupParams>();
  readonly nodes = new Map<string, TargetNode>();
  /** Sessions on this copy of the target, by TSIH. */
  readonly sessions = new Map<number, Session>();
  /**
   * Live sessions counted against `max_sessions`: this target's own count, or one shared by every
   * copy of the target (one per reactor in `storkit tgt`), so the limit is target-wide.
   */
  readonly sessionCount: SessionCount;
  readonly connections = new Set<Connection>();
  /**
   * Where a normal-session login for `node` arriving on `info` must go instead, as a TargetAddress
   * value (`host:port,tag`), or null to serve it here. The app sets it so every session of a target
   * node lives on the reactor that owns the node's LUN state; a discovery session is never moved.
   */
  redirect: ((node: TargetNode, info: ConnectionInfo) => string | null) | null = null;
  /**
   * Moves a new connection whose first login request names `node` to the place that serves the
   * node (the app: the reactor owning the node's LUN state, as SPDK moves a connection to its
   * target's poll group). Returns true when it took the connection: this copy then forgets it
   * and answers nothing. Asked before `redirect`, and only while nothing has been answered on the
   * connection; false leaves the login here (or to `redirect`).
   */
  handoff: ((node: TargetNode, conn: Connection) => boolean) | null = null;
  /**
   * The data digests' CRC32C for connections entering full feature phase from now on: the app
   * gives its reactor thread's accel channel's (`AccelChannel.crc32cRange`). Null: the CPU's.
   */
  crc32c: DigestCrc | null = null;
  discoveryAuth: AuthPolicy = { disable_chap: false, require_chap: false, mutual_chap: false, chap_group: 0 };
  /** Where commands' data buffers come from: this target's channel of the reactor's iobuf pool. */
  readonly iobuf: IobufChannel;
  readonly #bdevs: BdevLookup;
  #nextTsih = 1;

  constructor(
    bdevs: BdevLookup,
    options: Partial<IscsiOptions> = {},
    sessionCount: SessionCount = new SessionCount(),
    iobuf: IobufPool = new IobufPool(),
  ) {
    this.#bdevs = bdevs;
    this.options = resolveOptions(options);
    this.sessionCount = sessionCount;
    this.iobuf = iobuf.channel('iscsi');
  }

  /** iscsi_set_options (before any session exists). */
  setOptions(p: Partial<IscsiOptions>): void {
    this.options = resolveOptions({ ...this.options, ...p });
  }

  /** iscsi_set_discovery_auth */
  setDiscoveryAuth(p: DiscoveryAuthParams): void {
    const next = { ...this.discoveryAuth, ...p };
    checkChapFlags(next);
    if (next.chap_group && !this.authGroups.has(next.chap_group)) {
      throw new IscsiError('ENOENT', `auth group ${next.chap_group} does not exist`);
    }
    this.discoveryAuth = next;
  }

  createPortalGroup(p: PortalGroupParams): void {
    if (this.portalGroups.has(p.tag)) throw new IscsiError('EEXIST', `portal group ${p.tag} exists`);
    if (!Number.isInteger(p.tag) || p.tag < 1 || p.tag > 0xffff) {
      throw new IscsiError('EINVAL', `portal group tag ${p.tag} out of range 1..65535`);
    }
    if (p.portals.length === 0) throw new IscsiError('EINVAL', 'portal group needs at least one portal');
    this.portalGroups.set(p.tag, p);
  }

  createInitiatorGroup(p: InitiatorGroupParams): void {
    if (this.initiatorGroups.has(p.tag)) throw new IscsiError('EEXIST', `initiator group ${p.tag} exists`);
    if (p.initiators.length === 0 || p.netmasks.length === 0) {
      throw new IscsiError('EINVAL', 'initiator group needs initiators and netmasks');
    }
    this.initiatorGroups.set(p.tag, p);
  }

  createAuthGroup(p: AuthGroupParams): void {
    if (this.authGroups.has(p.tag)) throw new IscsiError('EEXIST', `auth group ${p.tag} exists`);
    for (const s of p.secrets) {
      if (!s.user || !s.secret) throw new IscsiError('EINVAL', 'CHAP secret needs user and secret');
      if ((s.muser === undefined) !== (s.msecret === undefined)) {
        throw new IscsiError('EINVAL', 'mutual CHAP needs both muser and msecret');
      }
    }
    this.authGroups.set(p.tag, { tag: p.tag, secrets: [...p.secrets] });
  }

  /** iscsi_create_target_node */
  createTargetNode(p: TargetNodeParams): TargetNode {
    const name = fullTargetName(this.options.node_base, p.name);
    if (this.nodes.has(name)) throw new IscsiError('EEXIST', `target node ${name} exists`);
    checkChapFlags(p);
    for (const m of p.pg_ig_maps) {
      if (!this.portalGroups.has(m.pg_tag))
        throw new IscsiError('ENOENT', `portal group ${m.pg_tag} not found`);
      if (!this.initiatorGroups.has(m.ig_tag)) {
        throw new IscsiError('ENOENT', `initiator group ${m.ig_tag} not found`);
      }
    }
    // chap_group may name an auth group created later, as in SPDK (its save_config writes the
    // target nodes before the auth groups): the group is looked up at login, where a missing one
    // fails authentication.
    if (
      !Number.isInteger(p.queue_depth) ||
      p.queue_depth < 1 ||
      p.queue_depth > this.options.max_queue_depth
    ) {
      throw new IscsiError('EINVAL', `queue_depth must be 1..${this.options.max_queue_depth}`);
    }
    const device = new ScsiDevice(name);
    for (const l of p.luns) {
      const b = this.#bdevs(l.bdev_name);
      if (!b) throw new IscsiError('EINVAL', `bdev ${l.bdev_name} not found`);
      device.addLun(l.lun_id, b);
    }
    const node = new TargetNode(
      name,
      { ...p, luns: p.luns.map((l) => ({ ...l })), pg_ig_maps: p.pg_ig_maps.map((m) => ({ ...m })) },
      device,
    );
    this.nodes.set(name, node);
    return node;
  }

  /** iscsi_delete_target_node: sessions to it are asked to log out, then dropped. */
  deleteTargetNode(name: string): void {
    const full = fullTargetName(this.options.node_base, name);
    const node = this.nodes.get(full);
    if (!node) throw new IscsiError('ENOENT', `target node ${full} not found`);
    this.nodes.delete(full);
    for (const s of this.sessions.values()) if (s.node === node) s.drop();
  }

  /** iscsi_get_options */
  getOptions(): IscsiOptions {
    return { ...this.options };
  }

  /** iscsi_get_portal_groups */
  getPortalGroups(): PortalGroupParams[] {
    return [...this.portalGroups.values()].map((g) => ({
      tag: g.tag,
      private: g.private ?? false,
      portals: g.portals.map((p) => ({ ...p })),
    }));
  }

  /** iscsi_get_initiator_groups */
  getInitiatorGroups(): InitiatorGroupParams[] {
    return [...this.initiatorGroups.values()].map((g) => ({
      ...g,
      initiators: [...g.initiators],
      netmasks: [...g.netmasks],
    }));
  }

  /** iscsi_get_auth_groups */
  getAuthGroups(): AuthGroupParams[] {
    return [...this.authGroups.values()].map((g) => ({
      tag: g.tag,
      secrets: g.secrets.map((x) => ({ ...x })),
    }));
  }

  /** iscsi_get_target_nodes */
  getTargetNodes() {
    return [...this.nodes.values()].map((n) => ({
      name: n.name,
      alias_name: n.params.alias_name ?? '',
      pg_ig_maps: n.params.pg_ig_maps.map((m) => ({ ...m })),
      luns: [...n.device.luns].map((l) => ({ bdev_name: l.backend.name, lun_id: l.id })),
      queue_depth: n.params.queue_depth,
      ...n.auth,
      header_digest: n.params.header_digest ?? false,
      data_digest: n.params.data_digest ?? false,
    }));
  }

  /** iscsi_delete_portal_group / iscsi_delete_initiator_group: refused while a node maps it. */
  deletePortalGroup(tag: number): void {
    if (!this.portalGroups.has(tag)) throw new IscsiError('ENOENT', `portal group ${tag} not found`);
    if ([...this.nodes.values()].some((n) => n.params.pg_ig_maps.some((m) => m.pg_tag === tag))) {
      throw new IscsiError('EINVAL', `portal group ${tag} is mapped by a target node`);
    }
    this.portalGroups.delete(tag);
  }

  deleteInitiatorGroup(tag: number): void {
    if (!this.initiatorGroups.has(tag)) throw new IscsiError('ENOENT', `initiator group ${tag} not found`);
    if ([...this.nodes.values()].some((n) => n.params.pg_ig_maps.some((m) => m.ig_tag === tag))) {
      throw new IscsiError('EINVAL', `initiator group ${tag} is mapped by a target node`);
    }
    this.initiatorGroups.delete(tag);
  }

  /** iscsi_delete_auth_group: refused while discovery or a node uses it. */
  deleteAuthGroup(tag: number): void {
    if (!this.authGroups.has(tag)) throw new IscsiError('ENOENT', `auth group ${tag} not found`);
    const used =
      this.discoveryAuth.chap_group === tag ||
      [...this.nodes.values()].some((n) => n.auth.chap_group === tag);
    if (used) throw new IscsiError('EINVAL', `auth group ${tag} is in use`);
    this.authGroups.delete(tag);
  }

  /** iscsi_auth_group_add_secret */
  authGroupAddSecret(tag: number, secret: ChapSecret): void {
    const g = this.authGroups.get(tag);
    if (!g) throw new IscsiError('ENOENT', `auth group ${tag} not found`);
    if (!secret.user || !secret.secret) throw new IscsiError('EINVAL', 'CHAP secret needs user and secret');
    if ((secret.muser === undefined) !== (secret.msecret === undefined)) {
      throw new IscsiError('EINVAL', 'mutual CHAP needs both muser and msecret');
    }
    if (g.secrets.some((s) => s.user === secret.user)) {
      throw new IscsiError('EEXIST', `user ${secret.user} already in auth group ${tag}`);
    }
    g.secrets.push({ ...secret });
  }

  /** iscsi_auth_group_remove_secret */
  authGroupRemoveSecret(tag: number, user: string): void {
    const g = this.authGroups.get(tag);
    if (!g) throw new IscsiError('ENOENT', `auth group ${tag} not found`);
    const i = g.secrets.findIndex((s) => s.user === user);
    if (i < 0) throw new IscsiError('ENOENT', `user ${user} not in auth group ${tag}`);
    g.secrets.splice(i, 1);
  }

  /** iscsi_target_node_add_lun: initiators see REPORTED LUNS DATA HAS CHANGED. */
  targetNodeAddLun(name: string, lun: { bdev_name: string; lun_id?: number }): void {
    const node = this.#node(name);
    const b = this.#bdevs(lun.bdev_name);
    if (!b) throw new IscsiError('EINVAL', `bdev ${lun.bdev_name} not found`);
    let id = lun.lun_id;
    if (id === undefined) for (id = 0; node.device.lun(id); id++);
    node.device.addLun(id, b);
    node.params.luns.push({ bdev_name: lun.bdev_name, lun_id: id });
  }

  /**
   * A bdev was hot removed: drop every LUN backed by it (as SPDK's SCSI layer does), so initiators
   * see the LUN gone rather than failing I/O. Returns the LUNs removed, as `node:lun`.
   */
  removeBdevLuns(bdevName: string): string[] {
    const out: string[] = [];
    for (const node of this.nodes.values()) {
      for (const l of [...node.device.luns])
        if (l.backend.name === bdevName && node.device.removeLun(l.id)) out.push(`${node.name}:${l.id}`);
      node.params.luns = node.params.luns.filter((l) => l.bdev_name !== bdevName);
    }
    return out;
  }

  /** iscsi_target_node_set_auth */
  targetNodeSetAuth(name: string, p: DiscoveryAuthParams): void {
    const node = this.#node(name);
    const next = { ...node.auth, ...p };
    checkChapFlags(next);
    Object.assign(node.auth, next);
  }

  #node(name: string): TargetNode {
    const node = this.nodes.get(fullTargetName(this.options.node_base, name));
    if (!node) throw new IscsiError('ENOENT', `target node ${name} not found`);
    return node;
  }

  /** Starts the protocol engine for one new transport connection. */
  accept(sink: PduSink, info: ConnectionInfo): Connection {
    const c = new Connection(this, sink, info);
    this.connections.add(c);
    return c;
  }

  // ---- used by the engine

  get limits(): TargetLimits {
    const o = this.options;
    return {
      maxConnections: o.max_connections_per_session,
      initialR2T: false,
      immediateData: o.immediate_data,
      maxBurstLength: o.max_burst_length,
      firstBurstLength: o.first_burst_length,
      defaultTime2Wait: o.default_time2wait,
      defaultTime2Retain: o.default_time2retain,
      maxOutstandingR2T: o.max_r2t_per_connection,
      errorRecoveryLevel: o.error_recovery_level,
      maxRecvDataSegmentLength: o.max_recv_data_segment_length,
    };
  }

  allocTsih(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.#nextTsih;
      this.#nextTsih = (this.#nextTsih % 0xffff) + 1;
      if (!this.sessions.has(t)) return t;
    }
    return 0;
  }

  /** Whether `initiator` at `addr` may use `node` through portal group `pgTag`. */
  permitted(node: TargetNode, pgTag: number, initiator: string, addr: string): boolean {
    for (const m of node.params.pg_ig_maps) {
      if (m.pg_tag !== pgTag) continue;
      const g = this.initiatorGroups.get(m.ig_tag);
      if (g && initiatorAllowed(g, initiator, addr)) return true;
    }
    return false;
  }

  chapLookup(group: number): (user: string) => ChapSecret | undefined {
    return (user) => {
      const groups = group ? [this.authGroups.get(group)] : [...this.authGroups.values()];
      for (const g of groups) for (const s of g?.secrets ?? []) if (s.user === user) return s;
      return undefined;
    };
  }

  /** iscsi_get_connections */
  getConnections() {
    return [...this.connections].filter((c) => c.session).map((c) => c.describe());
  }

  /** iscsi_get_stats */
  getStats(): IscsiStats {
    let running = 0;
    let exiting = 0;
    let invalid = 0;
    for (const c of this.connections) {
      if (c.state === 'full') running++;
      else if (c.state === 'closing') exiting++;
      else invalid++;
    }
    return { invalid, running, exiting, exited: 0 };
  }

  /** Closes every connection (shutdown). */
  close(): void {
    for (const c of [...this.connections]) c.drop('target shutdown');
  }
}
