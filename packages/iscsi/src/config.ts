/**
 * Configuration objects, named and shaped exactly as SPDK's JSON-RPC params (iscsi_set_options,
 * iscsi_create_portal_group, iscsi_create_initiator_group, iscsi_create_auth_group,
 * iscsi_create_target_node, iscsi_set_discovery_auth), so the RPC layer can pass them through.
 */
import { isIP } from 'node:net';
import type { ChapSecret } from './chap.js';
import { IscsiError } from './errors.js';

export interface IscsiOptions {
  node_base: string;
  nop_timeout: number;
  nop_in_interval: number;
  disable_chap: boolean;
  require_chap: boolean;
  mutual_chap: boolean;
  chap_group: number;
  max_sessions: number;
  max_queue_depth: number;
  max_connections_per_session: number;
  default_time2wait: number;
  default_time2retain: number;
  first_burst_length: number;
  immediate_data: boolean;
  error_recovery_level: number;
  allow_duplicated_isid: boolean;
  max_r2t_per_connection: number;
  /**
   * Transfers larger than one large iobuf buffer a connection may have in flight (SPDK counts
   * large reads; storkit counts writes too, their buffers being as large); more wait their turn.
   */
  max_large_datain_per_connection: number;
  /** storkit addition: our MaxRecvDataSegmentLength (SPDK fixes it at build time). */
  max_recv_data_segment_length: number;
  /** storkit addition: MaxBurstLength offered. */
  max_burst_length: number;
}

export const DEFAULT_OPTIONS: IscsiOptions = {
  node_base: 'iqn.2016-06.io.spdk',
  nop_timeout: 60,
  nop_in_interval: 30,
  disable_chap: false,
  require_chap: false,
  mutual_chap: false,
  chap_group: 0,
  max_sessions: 128,
  max_queue_depth: 64,
  max_connections_per_session: 2,
  default_time2wait: 2,
  default_time2retain: 20,
  first_burst_length: 8192,
  immediate_data: true,
  error_recovery_level: 0,
  allow_duplicated_isid: false,
  max_r2t_per_connection: 4,
  max_large_datain_per_connection: 64,
  max_recv_data_segment_length: 65536,
  max_burst_length: 1048576,
};

export interface Portal {
  host: string;
  port: string;
}

export interface PortalGroupParams {
  tag: number;
  portals: Portal[];
  private?: boolean;
}

export interface InitiatorGroupParams {
  tag: number;
  initiators: string[];
  netmasks: string[];
}

export interface AuthGroupParams {
  tag: number;
  secrets: ChapSecret[];
}

export interface DiscoveryAuthParams {
  disable_chap?: boolean;
  require_chap?: boolean;
  mutual_chap?: boolean;
  chap_group?: number;
}

export interface TargetLunParams {
  bdev_name: string;
  lun_id: number;
}

export interface TargetNodeParams {
  name: string;
  alias_name?: string;
  pg_ig_maps: { pg_tag: number; ig_tag: number }[];
  luns: TargetLunParams[];
  queue_depth: number;
  disable_chap?: boolean;
  require_chap?: boolean;
  mutual_chap?: boolean;
  chap_group?: number;
  header_digest?: boolean;
  data_digest?: boolean;
}

/** Checks iscsi_set_options params; unknown or out-of-range values throw EINVAL. */
export function resolveOptions(p: Partial<IscsiOptions>): IscsiOptions {
  const o: IscsiOptions = { ...DEFAULT_OPTIONS };
  for (const [k, v] of Object.entries(p)) {
    if (!(k in DEFAULT_OPTIONS)) throw new IscsiError('EINVAL', `unknown iscsi option '${k}'`);
    const def = DEFAULT_OPTIONS[k as keyof IscsiOptions];
    if (typeof v !== typeof def)
      throw new IscsiError('EINVAL', `iscsi option '${k}' must be a ${typeof def}`);
    (o as unknown as Record<string, unknown>)[k] = v;
  }
  range('max_queue_depth', o.max_queue_depth, 1, 4096);
  range('max_connections_per_session', o.max_connections_per_session, 1, 65535);
  range('default_time2wait', o.default_time2wait, 0, 3600);
  range('default_time2retain', o.default_time2retain, 0, 3600);
  range('first_burst_length', o.first_burst_length, 512, 16777215);
  range('max_burst_length', o.max_burst_length, 512, 16777215);
  range('max_recv_data_segment_length', o.max_recv_data_segment_length, 512, 16777215);
  range('error_recovery_level', o.error_recovery_level, 0, 0);
  range('max_r2t_per_connection', o.max_r2t_per_connection, 1, 255);
  range('max_large_datain_per_connection', o.max_large_datain_per_connection, 1, 65535);
  if (o.first_burst_length > o.max_burst_length) {
    throw new IscsiError('EINVAL', 'first_burst_length must not exceed max_burst_length');
  }
  checkChapFlags(o);
  return o;
}

function range(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw new IscsiError('EINVAL', `${name} ${v} out of range ${lo}..${hi}`);
  }
}

export function checkChapFlags(p: {
  disable_chap?: boolean;
  require_chap?: boolean;
  mutual_chap?: boolean;
}): void {
  if (p.disable_chap && (p.require_chap || p.mutual_chap)) {
    throw new IscsiError('EINVAL', 'disable_chap cannot be combined with require_chap or mutual_chap');
  }
  if (p.mutual_chap && !p.require_chap) {
    throw new IscsiError('EINVAL', 'mutual_chap requires require_chap');
  }
}

/** Full IQN of a node: names without a iqn./eui./naa. prefix are placed under `node_base`. */
export function fullTargetName(nodeBase: string, name: string): string {
  return /^(iqn\.|eui\.|naa\.)/i.test(name) ? name : `${nodeBase}:${name}`;
}

/** Whether `initiator` at `addr` passes an initiator group (SPDK semantics: '!' denies, ANY). */
export function initiatorAllowed(g: InitiatorGroupParams, initiator: string, addr: string): boolean {
  let named = false;
  for (const i of g.initiators) {
    if (i.startsWith('!')) {
      const n = i.slice(1);
      if (n === 'ANY' || n.toLowerCase() === initiator.toLowerCase()) return false;
    } else if (i === 'ANY' || i.toLowerCase() === initiator.toLowerCase()) named = true;
  }
  if (!named) return false;
  return g.netmasks.some((m) => netmaskMatch(m, addr));
}

function netmaskMatch(mask: string, addr: string): boolean {
  if (mask === 'ANY') return true;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  const [net, bitsS] = mask.split('/');
  if (isIP(net) !== 4 || isIP(a) !== 4) return net === a;
  const bits = bitsS === undefined ? 32 : Number(bitsS);
  if (!(bits >= 0 && bits <= 32)) return false;
  const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (ip4(net) & m) >>> 0 === (ip4(a) & m) >>> 0;
}

function ip4(s: string): number {
  return s.split('.').reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}
