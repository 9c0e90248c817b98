// What SPDK's rpc.py sends for a parsed command line: mostly each argument under its own name,
// left out when unset; for a few methods its functions reshape arguments (a size in MiB into a
// block count, a listener's flags into listen_address, "bdev:lun" pairs into luns, ...). Checked
// against rpc.py itself: rpcpy.test.ts compares the params of both for the same command lines
// (rpc.py --dry-run).
import type { RpcPyMethod } from './argparse.js';

type Ns = Record<string, unknown>;
type Params = Record<string, unknown>;

/** Every set argument under its own name; a store_true flag only when given. */
function plain(m: RpcPyMethod, ns: Ns): Params {
  const out: Params = {};
  for (const a of m.args) {
    const v = ns[a.dest];
    if (v === null || v === undefined || a.dest in out) continue;
    if (a.action === 'StoreTrue' && v === false) continue;
    if (a.action === 'StoreFalse' && v === true) continue;
    out[a.dest] = v;
  }
  return out;
}

const pick = (ns: Ns, keys: string[]): Params => {
  const out: Params = {};
  for (const k of keys) if (ns[k] !== null && ns[k] !== undefined) out[k] = ns[k];
  return out;
};
const words = (s: unknown): string[] => String(s).trim().split(' ');
const rename = (p: Params, from: string, to: string): void => {
  if (from in p) {
    p[to] = p[from];
    delete p[from];
  }
};
const address = (ns: Ns) => pick(ns, ['trtype', 'traddr', 'trsvcid', 'adrfam']);
const without = (p: Params, keys: string[]): Params => {
  for (const k of keys) delete p[k];
  return p;
};

/** Parameters rpc.py's functions always send, with their values when the flag was not given. */
const ALWAYS: Record<string, Params> = {
  bdev_set_options: { bdev_auto_examine: true },
  bdev_nvme_set_options: {
    delay_cmd_submit: true,
    disable_auto_failback: false,
    generate_uuids: false,
    nvme_error_stat: false,
    io_path_stat: false,
    allow_accel_sequence: false,
  },
  bdev_nvme_set_hotplug: { enable: false },
  bdev_raid_create: { superblock: false },
  nvmf_create_transport: {
    zcopy: false,
    no_srq: false,
    c2h_success: true,
    dif_insert_or_strip: false,
    no_wr_batching: false,
    disable_mappable_bar0: false,
    disable_adaptive_irq: false,
    disable_shadow_doorbells: false,
  },
  vhost_create_blk_controller: { readonly: false, packed_ring: false },
  vhost_create_scsi_controller: { delay: false },
};

/** Methods whose rpc.py function reshapes its arguments. */
const SHAPE: Record<string, (ns: Ns, p: Params) => Params> = {
  bdev_malloc_create: (ns, p) => {
    const r = without(p, ['total_size']);
    if (!r.dif_type) delete r.dif_type;
    return {
      num_blocks: Math.trunc(
        Math.floor(((ns.total_size as number) * 1024 * 1024) / (ns.block_size as number)),
      ),
      ...r,
    };
  },
  bdev_null_create: (ns, p) => {
    const r = without(p, ['total_size']);
    if (!r.dif_type) delete r.dif_type;
    return {
      ...r,
      num_blocks: Math.trunc(((ns.total_size as number) * 1024 * 1024) / (ns.block_size as number)),
    };
  },
  bdev_delay_create: (_ns, p) => {
    rename(p, 'nine_nine_read_latency', 'p99_read_latency');
    rename(p, 'nine_nine_write_latency', 'p99_write_latency');
    return p;
  },
  bdev_raid_create: (_ns, p) => ({ ...p, base_bdevs: words(p.base_bdevs) }),
  bdev_lvol_create_lvstore: (_ns, p) => {
    rename(p, 'md_pages_per_cluster_ratio', 'num_md_pages_per_cluster_ratio');
    return p;
  },
  // rpc.py's accel_assign_opc sends both even without -o/-m (nulls), which the target refuses as
  // SPDK's does (a null is not an operation or a module name).
  accel_assign_opc: (ns) => ({ opname: ns.opname ?? null, module: ns.module ?? null }),
  // rpc.py's bdev_examine sends name even without -b (null; the target refuses it).
  bdev_examine: (ns) => ({ name: ns.name ?? null }),
  bdev_null_resize: (_ns, p) => ({ ...p, new_size: Number.parseInt(String(p.new_size), 10) }),
  bdev_get_bdevs: (_ns, p) => {
    rename(p, 'timeout_ms', 'timeout');
    return p;
  },
  bdev_nvme_attach_controller: (_ns, p) => {
    rename(p, 'fabrics_timeout', 'fabrics_connect_timeout_us');
    return p;
  },
  nvmf_set_config: (_ns, p) => {
    const passthru = p.passthru_identify_ctrlr;
    delete p.passthru_identify_ctrlr;
    return passthru ? { admin_cmd_passthru: { identify_ctrlr: true }, ...p } : p;
  },
  nvmf_create_subsystem: (_ns, p) => {
    rename(p, 'max_discard_size', 'max_discard_size_kib');
    rename(p, 'max_write_zeroes_size', 'max_write_zeroes_size_kib');
    return p;
  },
  nvmf_delete_subsystem: (_ns, p) => {
    rename(p, 'subsystem_nqn', 'nqn');
    return p;
  },
  nvmf_subsystem_add_ns: (ns, p) => ({
    nqn: p.nqn,
    namespace: pick(ns, [
      'bdev_name',
      'ptpl_file',
      'nsid',
      'nguid',
      'eui64',
      'uuid',
      'anagrpid',
      'no_auto_visible',
    ]),
    ...pick(ns, ['tgt_name']),
  }),
  nvmf_subsystem_allow_any_host: (ns) => ({
    nqn: ns.nqn,
    allow_any_host: ns.disable !== true,
    ...pick(ns, ['tgt_name']),
  }),
  nvmf_subsystem_add_listener: (ns) => ({
    nqn: ns.nqn,
    ...pick(ns, ['tgt_name']),
    secure_channel: ns.secure_channel === true,
    ...pick(ns, ['ana_state', 'sock_impl']),
    listen_address: address(ns),
  }),
  nvmf_subsystem_remove_listener: (ns) => ({
    nqn: ns.nqn,
    listen_address: address(ns),
    ...pick(ns, ['tgt_name']),
  }),
  nvmf_discovery_add_referral: (ns) => ({
    ...pick(ns, ['tgt_name']),
    secure_channel: ns.secure_channel === true,
    ...pick(ns, ['subnqn']),
    address: address(ns),
  }),
  nvmf_discovery_remove_referral: (ns) => ({
    address: address(ns),
    ...pick(ns, ['tgt_name', 'subnqn']),
  }),
  iscsi_create_initiator_group: (ns) => ({
    tag: ns.tag,
    initiators: words(ns.initiator_list),
    netmasks: words(ns.netmask_list),
  }),
  iscsi_create_portal_group: (ns, p) => {
    const portals = words(ns.portal_list).map((x) => {
      const at = x.lastIndexOf(':');
      return { host: at < 0 ? '' : x.slice(0, at), port: x.slice(at + 1).split('@')[0] };
    });
    return { tag: ns.tag, portals, ...without(p, ['tag', 'portal_list']) };
  },
  iscsi_create_target_node: (ns, p) => ({
    luns: words(ns.bdev_name_id_pairs).map((u) => {
      const [bdev_name, lun_id] = u.split(':');
      return { bdev_name, lun_id: Number.parseInt(lun_id, 10) };
    }),
    pg_ig_maps: words(ns.pg_ig_mappings).map((u) => {
      const [pg, ig] = u.split(':');
      return { pg_tag: Number.parseInt(pg, 10), ig_tag: Number.parseInt(ig, 10) };
    }),
    ...without(p, ['bdev_name_id_pairs', 'pg_ig_mappings']),
  }),
  iscsi_create_auth_group: (ns) => {
    const out: Params = { tag: ns.tag };
    if (ns.secrets)
      out.secrets = String(ns.secrets)
        .split(',')
        .map((a) => Object.fromEntries(a.split(' ').map((u) => u.split(':'))));
    return out;
  },
  iscsi_delete_target_node: (_ns, p) => {
    rename(p, 'target_node_name', 'name');
    return p;
  },
};

/** The params rpc.py sends for `method` with this parsed command line (undefined: none). */
export function rpcPyParams(method: string, m: RpcPyMethod, ns: Ns): Params | undefined {
  let p = plain(m, ns);
  const always = ALWAYS[method];
  if (always) for (const [k, v] of Object.entries(always)) if (!(k in p)) p[k] = v;
  const shape = SHAPE[method];
  if (shape) p = shape(ns, p);
  return Object.keys(p).length || m.args.length ? p : undefined;
}
