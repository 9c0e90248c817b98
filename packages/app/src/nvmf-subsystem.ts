// The nvmf subsystem on the main thread: SPDK's nvmf_* RPCs (names and params), each applied to the
// NvmfTarget of every reactor in turn (reactor 0 first; a refusal there changes nothing, a refusal
// later rolls the earlier reactors back), and a journal of the resulting state for save_config.
// The per-reactor side is reactor-modules/nvmf.ts.
import type { CreateSubsystemParams, ListenAddress, NamespaceParams, ReferralParams } from '@storkit/nvmf';
import { NvmfTarget } from '@storkit/nvmf';
import { type Control, type ControlResultOf, parseCoreMask } from '@storkit/reactor';
import { any, bool, inert, int, methodList, obj, opt, RpcError, req, str, withoutInert } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { nvmfOps as o } from './controls/nvmf.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

/** Params as saved by save_config (plain JSON). */
type Saved = Record<string, unknown>;

const DISCOVERY_NQN = 'nqn.2014-08.org.nvmexpress.discovery';

const nqn = () => str({ minLength: 11, maxLength: 223, description: 'NVMe qualified name' });
const listenAddress = () =>
  obj({
    trtype: req(str({ enum: ['TCP'], ignoreCase: true, description: 'transport type' })),
    adrfam: opt(str({ enum: ['IPv4', 'IPv6'], ignoreCase: true })),
    traddr: req(str({ minLength: 1, description: 'IP address' })),
    trsvcid: req(
      str({ pattern: /^([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/ }),
    ),
  });

interface SubsystemState {
  params: CreateSubsystemParams;
  id: number;
  namespaces: Map<number, NamespaceParams>;
  hosts: string[];
  listeners: ListenAddress[];
}

const sameAddr = (a: ListenAddress, b: ListenAddress): boolean =>
  a.traddr === b.traddr && String(a.trsvcid) === String(b.trsvcid);

/** A listen address as every reactor and save_config hold it: TCP, with its address family. */
const tcpAddress = (a: { adrfam?: string; traddr: string; trsvcid: string }): ListenAddress => ({
  ...a,
  trtype: 'TCP',
  adrfam: a.adrfam ?? 'IPv4',
});

export function nvmfSubsystem(ctl: ReactorControl): AppSubsystem {
  let setConfig: Saved | null = null;
  /** nvmf_set_max_subsystems: how many NVM subsystems the target holds (SPDK's default 1024). */
  let maxSubsystems: number | null = null;
  let crdt: Saved | null = null;
  let transport: Saved | null = null;
  const subsystems = new Map<string, SubsystemState>();
  const discoveryListeners: ListenAddress[] = [];
  const referrals: ReferralParams[] = [];
  let nextId = 1;

  /**
   * Apply on every reactor, reactor 0 first (its result is returned and `replay` may adapt the
   * params for the others); on a failure at reactor k > 0, `undo` runs on reactors k-1..0.
   */
  async function everywhere<P, R>(
    op: Control<P, R>,
    params: P,
    undo?: (i: number, first: R) => Promise<unknown>,
    replay: (first: R) => P = () => params,
  ): Promise<R> {
    const first = await ctl.call(0, op, params);
    const again = replay(first);
    const done = [0];
    try {
      for (let i = 1; i < ctl.count; i++) {
        await ctl.call(i, op, again);
        done.push(i);
      }
    } catch (e) {
      if (undo) for (const i of done.reverse()) await undo(i, first).catch(() => {});
      throw e;
    }
    return first;
  }

  /** Apply a removal on every reactor; fails only if reactor 0 refuses (then nothing changed). */
  async function removeEverywhere<P>(op: Control<P, true>, params: P): Promise<void> {
    await ctl.call(0, op, params);
    const errs: string[] = [];
    for (let i = 1; i < ctl.count; i++)
      await ctl.call(i, op, params).catch((e: Error) => errs.push(`reactor ${i}: ${e.message}`));
    if (errs.length) throw new RpcError(-5, `applied on some reactors only: ${errs.join('; ')}`);
  }

  function need(n: string): SubsystemState {
    const s = subsystems.get(n);
    if (!s) throw RpcError.errno('ENODEV', `no subsystem ${n}`);
    return s;
  }

  /** nvmf_create_transport's params (SPDK's, the RDMA and unused ones accepted at their defaults). */
  const transportParams = obj({
    trtype: req(str({ enum: ['TCP'], ignoreCase: true })),
    tgt_name: opt(str()),
    max_queue_depth: opt(int({ min: 2, max: 65535 })),
    max_aq_depth: opt(int({ min: 2, max: 4096 })),
    max_io_qpairs_per_ctrlr: opt(int({ min: 1, max: 65534 })),
    in_capsule_data_size: opt(int({ min: 0, max: 131072 })),
    max_io_size: opt(int({ min: 4096 })),
    io_unit_size: opt(int({ min: 512 })),
    c2h_success: opt(bool()),
    sock_priority: opt(int({ min: 0, max: 6, description: 'SO_PRIORITY of accepted connections' })),
    // An Abort completes at once here: it aborts commands waiting for a buffer or their fused
    // partner, never commands in the backend or receiving data.
    abort_timeout_sec: inert(int({ min: 0 }), 1),
    num_shared_buffers: opt(int({ min: 0 })),
    buf_cache_size: opt(int({ min: 0 })),
    dif_insert_or_strip: opt(bool()),
    // No storkit bdev offers SPDK's zero-copy I/O type: I/O is copied, as SPDK does for such bdevs.
    zcopy: inert(bool(), false),
    acceptor_poll_rate: inert(int({ min: 0, description: 'µs between accept polls' }), 10000),
    ack_timeout: inert(int({ min: 0, description: 'RDMA ack timeout' }), 0),
    data_wr_pool_size: inert(int({ min: 0, description: 'RDMA work requests' }), 0),
    disable_command_passthru: inert(bool(), false),
    kas: inert(int({ min: 0, max: 65535, description: 'keep alive granularity (100 ms units)' }), 10),
    min_kato: inert(int({ min: 0, description: 'smallest keep alive timeout, ms' }), 10000),
    masked_oncs: inert(any(), []),
    masked_fuses: inert(any(), []),
    // RDMA's and vfio-user's, which rpc.py's nvmf_create_transport sends at false for any transport.
    no_srq: inert(bool(), false),
    no_wr_batching: inert(bool(), false),
    disable_mappable_bar0: inert(bool(), false),
    disable_adaptive_irq: inert(bool(), false),
    disable_shadow_doorbells: inert(bool(), false),
  });

  /** nvmf_create_subsystem's params (SPDK's, the ones storkit has no use for accepted at their defaults). */
  const subsystemParams = obj({
    nqn: req(nqn()),
    tgt_name: opt(str()),
    serial_number: opt(str({ minLength: 1, maxLength: 20 })),
    model_number: opt(str({ minLength: 1, maxLength: 40 })),
    allow_any_host: opt(bool()),
    max_namespaces: opt(int({ min: 0, max: 1024 })),
    min_cntlid: opt(int({ min: 1, max: 0xffef })),
    max_cntlid: opt(int({ min: 1, max: 0xffef })),
    ana_reporting: opt(bool({ description: 'ANA reporting (not supported: false)' })),
    passthrough: inert(bool({ description: 'pass commands through to an NVMe bdev' }), false),
    enable_nssr: inert(bool({ description: 'NVM subsystem reset' }), false),
    dmrsl: inert(int({ min: 0, description: 'Dataset Management range size limit' }), 0),
    wzsl: inert(int({ min: 0, max: 255, description: 'Write Zeroes size limit' }), 0),
    max_discard_size_kib: inert(int({ min: 0 }), 0),
    max_write_zeroes_size_kib: inert(int({ min: 0 }), 0),
  });

  const { methods, add } = methodList();

  add({
    name: 'nvmf_set_config',
    description: 'Set NVMe-oF target options (before framework_start_init)',
    state: 'startup',
    params: obj({
      discovery_filter: opt(
        str({
          enum: ['match_any'],
          description: 'which listeners the discovery log shows (storkit: match_any, every listener)',
        }),
      ),
      admin_cmd_passthru: opt(
        obj({
          identify_ctrlr: opt(bool({ description: 'pass Identify through to an NVMe bdev (not supported)' })),
        }),
      ),
      poll_groups_mask: opt(
        str({ description: 'cores with an NVMe-oF poll group: storkit runs one on every reactor' }),
      ),
      dhchap_digests: inert(any({ description: 'DH-HMAC-CHAP digests (storkit: no DH-HMAC-CHAP)' }), [
        'sha256',
        'sha384',
        'sha512',
      ]),
      dhchap_dhgroups: inert(any(), [
        'null',
        'ffdhe2048',
        'ffdhe3072',
        'ffdhe4096',
        'ffdhe6144',
        'ffdhe8192',
      ]),
    }),
    handler(p) {
      if (p.admin_cmd_passthru?.identify_ctrlr === true)
        throw RpcError.errno('ENOTSUP', 'admin_cmd_passthru.identify_ctrlr is not supported');
      if (p.poll_groups_mask !== undefined) {
        try {
          parseCoreMask(p.poll_groups_mask);
        } catch (e) {
          throw RpcError.invalidParams(`poll_groups_mask: ${(e as Error).message}`);
        }
      }
      setConfig = { ...(setConfig ?? {}), ...p };
      return true;
    },
  });

  add({
    name: 'nvmf_set_max_subsystems',
    description: 'How many NVM subsystems the target may hold (before framework_start_init)',
    state: 'startup',
    params: obj({ max_subsystems: req(int({ min: 1, max: 0xffef })) }),
    handler(p) {
      maxSubsystems = p.max_subsystems;
      return true;
    },
  });

  add({
    name: 'nvmf_set_crdt',
    description: 'Command Retry Delay Times the target reports (before framework_start_init)',
    state: 'startup',
    params: obj({
      crdt1: inert(int({ min: 0, max: 65535, description: 'in 100 ms units' }), 0),
      crdt2: inert(int({ min: 0, max: 65535 }), 0),
      crdt3: inert(int({ min: 0, max: 65535 }), 0),
    }),
    handler(p) {
      crdt = { ...p };
      return true;
    },
  });

  add({
    name: 'nvmf_create_transport',
    description: 'Create the NVMe/TCP transport on every reactor',
    positional: ['trtype'],
    params: transportParams,
    async handler(p) {
      if (transport) throw RpcError.errno('EEXIST', 'transport TCP already exists');
      const { tgt_name: _t, ...params } = withoutInert(transportParams, p);
      await everywhere(o.nvmf_create_transport, { ...params, trtype: 'TCP' });
      transport = { ...withoutInert(transportParams, p), trtype: 'TCP' };
      return true;
    },
  });

  add({
    name: 'nvmf_get_transports',
    description: 'List transports',
    params: obj({ trtype: opt(str({ ignoreCase: true, enum: ['TCP'] })), tgt_name: opt(str()) }),
    handler: () => ctl.call(0, o.nvmf_get_transports, undefined),
  });

  add({
    name: 'nvmf_create_subsystem',
    description: 'Create an NVM subsystem on every reactor',
    positional: ['nqn'],
    params: subsystemParams,
    async handler(p) {
      if (p.ana_reporting === true) throw RpcError.errno('ENOTSUP', 'ANA reporting is not supported');
      const { tgt_name: _t, ana_reporting: _a, ...params } = withoutInert(subsystemParams, p);
      if (params.max_namespaces === 0) delete params.max_namespaces; // SPDK: 0 = default
      if (subsystems.has(p.nqn) || p.nqn === DISCOVERY_NQN)
        throw RpcError.errno('EEXIST', `subsystem ${p.nqn} already exists`);
      const cap = maxSubsystems ?? 1024;
      if (subsystems.size >= cap)
        throw RpcError.errno(
          'ENOSPC',
          `the target holds at most ${cap} subsystems (nvmf_set_max_subsystems)`,
        );
      const id = nextId++;
      const qidCap = Number(transport?.max_io_qpairs_per_ctrlr ?? 127);
      let shared: ReturnType<typeof NvmfTarget.sharedSubsystemState>;
      try {
        shared = NvmfTarget.sharedSubsystemState(params, id, qidCap, ctl.count);
      } catch (e) {
        throw RpcError.errno('EINVAL', (e as Error).message);
      }
      await everywhere(o.nvmf_create_subsystem, { params, shared }, (i) =>
        ctl.call(i, o.nvmf_delete_subsystem, { nqn: p.nqn }),
      );
      subsystems.set(p.nqn, { params, id, namespaces: new Map(), hosts: [], listeners: [] });
      return true;
    },
  });

  add({
    name: 'nvmf_delete_subsystem',
    description: 'Delete an NVM subsystem (its controllers are torn down)',
    positional: ['nqn'],
    params: obj({ nqn: req(nqn()), tgt_name: opt(str()) }),
    async handler(p) {
      need(p.nqn);
      await removeEverywhere(o.nvmf_delete_subsystem, { nqn: p.nqn });
      subsystems.delete(p.nqn);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_add_ns',
    description: 'Add a namespace served from a bdev (every reactor uses its own channel of it)',
    positional: ['nqn', 'bdev_name'],
    params: obj({
      nqn: req(nqn()),
      tgt_name: opt(str()),
      namespace: req(
        obj({
          bdev_name: req(str({ minLength: 1 })),
          nsid: opt(int({ min: 0, max: 0xfffffffe })),
          nguid: opt(str({ pattern: /^[0-9a-fA-F-]{32,39}$/ })),
          eui64: opt(str({ pattern: /^[0-9a-fA-F-]{16,23}$/ })),
          uuid: opt(
            str({
              pattern: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
            }),
          ),
          ptpl_file: opt(str({ description: 'persist-through-power-loss file (not supported)' })),
          anagrpid: opt(int({ min: 1 })),
          no_auto_visible: opt(bool({ description: 'namespace masking (not supported: false)' })),
        }),
      ),
    }),
    async handler(p) {
      const s = need(p.nqn);
      const { ptpl_file, anagrpid: _g, no_auto_visible, ...ns } = p.namespace;
      if (ptpl_file !== undefined)
        throw RpcError.errno('ENOTSUP', 'reservations (ptpl_file) are not supported');
      if (no_auto_visible === true) throw RpcError.errno('ENOTSUP', 'namespace masking is not supported');
      // Reactor 0 picks the nsid when none is given; the others get that nsid.
      const nsid = await everywhere(
        o.nvmf_subsystem_add_ns,
        { nqn: p.nqn, namespace: ns },
        (i, first) => ctl.call(i, o.nvmf_subsystem_remove_ns, { nqn: p.nqn, nsid: first }),
        (first) => ({ nqn: p.nqn, namespace: { ...ns, nsid: first } }),
      );
      s.namespaces.set(nsid, { ...ns, nsid });
      return nsid;
    },
  });

  add({
    name: 'nvmf_subsystem_remove_ns',
    description: 'Remove a namespace (connected hosts get a namespace-change notice)',
    positional: ['nqn', 'nsid'],
    params: obj({ nqn: req(nqn()), nsid: req(int({ min: 1 })), tgt_name: opt(str()) }),
    async handler(p) {
      const s = need(p.nqn);
      await removeEverywhere(o.nvmf_subsystem_remove_ns, { nqn: p.nqn, nsid: p.nsid });
      s.namespaces.delete(p.nsid);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_add_host',
    description: 'Allow a host NQN to connect',
    positional: ['nqn', 'host'],
    params: obj({
      nqn: req(nqn()),
      host: req(nqn()),
      tgt_name: opt(str()),
      psk: opt(str()),
      dhchap_key: opt(str()),
    }),
    async handler(p) {
      const s = need(p.nqn);
      if (p.psk !== undefined || p.dhchap_key !== undefined)
        throw RpcError.errno('ENOTSUP', 'TLS PSK and DH-HMAC-CHAP are not supported');
      if (s.hosts.includes(p.host)) throw RpcError.errno('EEXIST', `host ${p.host} already in ${p.nqn}`);
      const q = { nqn: p.nqn, host: p.host };
      await everywhere(o.nvmf_subsystem_add_host, q, (i) => ctl.call(i, o.nvmf_subsystem_remove_host, q));
      s.hosts.push(p.host);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_remove_host',
    description: 'Remove a host NQN (its controllers go unless any host is allowed)',
    positional: ['nqn', 'host'],
    params: obj({ nqn: req(nqn()), host: req(nqn()), tgt_name: opt(str()) }),
    async handler(p) {
      const s = need(p.nqn);
      await removeEverywhere(o.nvmf_subsystem_remove_host, { nqn: p.nqn, host: p.host });
      s.hosts = s.hosts.filter((h) => h !== p.host);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_allow_any_host',
    description: 'Allow any host, or only listed hosts',
    positional: ['nqn'],
    params: obj({ nqn: req(nqn()), allow_any_host: req(bool()), tgt_name: opt(str()) }),
    async handler(p) {
      const s = need(p.nqn);
      await removeEverywhere(o.nvmf_subsystem_allow_any_host, {
        nqn: p.nqn,
        allow_any_host: p.allow_any_host,
      });
      s.params.allow_any_host = p.allow_any_host;
      return true;
    },
  });

  const listenerParams = obj({
    nqn: req(nqn()),
    listen_address: req(listenAddress()),
    tgt_name: opt(str()),
    secure_channel: opt(bool({ description: 'TLS (not supported: false)' })),
    ana_state: inert(str({ enum: ['optimized', 'non_optimized', 'inaccessible'] }), 'optimized'),
    sock_impl: inert(str({ description: 'SPDK socket implementation (storkit: its own)' }), 'posix'),
  });

  add({
    name: 'nvmf_subsystem_add_listener',
    description: 'Listen on an address (every reactor accepts on it through SO_REUSEPORT)',
    positional: ['nqn'],
    params: listenerParams,
    async handler(p) {
      if (p.secure_channel) throw RpcError.errno('ENOTSUP', 'secure_channel (TLS) is not supported');
      const list = p.nqn === DISCOVERY_NQN ? discoveryListeners : need(p.nqn).listeners;
      const a = tcpAddress(p.listen_address);
      const q = { nqn: p.nqn, listen_address: a };
      await everywhere(o.nvmf_subsystem_add_listener, q, (i) =>
        ctl.call(i, o.nvmf_subsystem_remove_listener, q),
      );
      list.push(a);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_remove_listener',
    description: 'Stop listening on an address for a subsystem',
    positional: ['nqn'],
    params: listenerParams,
    async handler(p) {
      const list = p.nqn === DISCOVERY_NQN ? discoveryListeners : need(p.nqn).listeners;
      const a = tcpAddress(p.listen_address);
      await removeEverywhere(o.nvmf_subsystem_remove_listener, { nqn: p.nqn, listen_address: a });
      const i = list.findIndex((l) => sameAddr(l, a));
      if (i >= 0) list.splice(i, 1);
      return true;
    },
  });

  add({
    name: 'nvmf_subsystem_get_listeners',
    description: "A subsystem's listeners",
    positional: ['nqn'],
    params: obj({ nqn: req(nqn()), tgt_name: opt(str()) }),
    handler: (p) => ctl.call(0, o.nvmf_subsystem_get_listeners, { nqn: p.nqn }),
  });

  add({
    name: 'nvmf_subsystem_get_controllers',
    description: "A subsystem's controllers (I/O queues counted over every reactor)",
    positional: ['nqn'],
    params: obj({ nqn: req(nqn()), tgt_name: opt(str()) }),
    async handler(p) {
      type Ctrlr = ControlResultOf<typeof o.nvmf_subsystem_get_controllers>[number];
      const byId = new Map<number, Ctrlr>();
      const ioq = new Map<number, number>();
      for (let i = 0; i < ctl.count; i++) {
        const list = await ctl.call(i, o.nvmf_subsystem_get_controllers, { nqn: p.nqn });
        for (const c of list) {
          ioq.set(c.cntlid, (ioq.get(c.cntlid) ?? 0) + c.num_io_qpairs);
          if (c.owner === i) byId.set(c.cntlid, c);
        }
      }
      return [...byId.values()]
        .sort((a, b) => a.cntlid - b.cntlid)
        .map(({ owner, ...c }) => ({
          ...c,
          num_io_qpairs: ioq.get(c.cntlid),
          thread: `nvmf_tgt_poll_group_${String(owner).padStart(3, '0')}`,
        }));
    },
  });

  add({
    name: 'nvmf_subsystem_get_qpairs',
    description: "A subsystem's qpairs on every reactor",
    positional: ['nqn'],
    params: obj({ nqn: req(nqn()), tgt_name: opt(str()) }),
    async handler(p) {
      const out: object[] = [];
      for (let i = 0; i < ctl.count; i++) {
        const list = await ctl.call(i, o.nvmf_subsystem_get_qpairs, { nqn: p.nqn });
        for (const q of list) out.push({ ...q, thread: `nvmf_tgt_poll_group_${String(i).padStart(3, '0')}` });
      }
      return out;
    },
  });

  add({
    name: 'nvmf_get_subsystems',
    description: 'List subsystems (the discovery subsystem first), or the one named by nqn',
    positional: ['nqn'],
    params: obj({ nqn: opt(nqn()), tgt_name: opt(str()) }),
    async handler(p) {
      const all = await ctl.call(0, o.nvmf_get_subsystems, undefined);
      if (p.nqn === undefined) return all;
      const one = all.filter((x: { nqn: string }) => x.nqn === p.nqn);
      if (!one.length) throw RpcError.errno('ENODEV', `no subsystem ${p.nqn}`);
      return one;
    },
  });

  add({
    name: 'nvmf_get_stats',
    description: 'Per poll group (reactor) statistics',
    params: obj({ tgt_name: opt(str()) }),
    async handler() {
      const groups: unknown[] = [];
      for (let i = 0; i < ctl.count; i++) {
        const s = await ctl.call(i, o.nvmf_get_stats, undefined);
        groups.push(...s.poll_groups);
      }
      return { tick_rate: ctl.tickRate, poll_groups: groups };
    },
  });

  const referralParams = obj({
    address: req(listenAddress()),
    subnqn: opt(nqn()),
    secure_channel: opt(bool()),
    tgt_name: opt(str()),
  });

  add({
    name: 'nvmf_discovery_add_referral',
    description: 'Add a discovery referral (another discovery service hosts learn about)',
    params: referralParams,
    async handler(p) {
      if (p.secure_channel) throw RpcError.errno('ENOTSUP', 'secure_channel (TLS) is not supported');
      const r: ReferralParams = { address: tcpAddress(p.address) };
      if (p.subnqn !== undefined) r.subnqn = p.subnqn;
      await everywhere(o.nvmf_discovery_add_referral, r, (i) =>
        ctl.call(i, o.nvmf_discovery_remove_referral, r),
      );
      referrals.push(r);
      return true;
    },
  });

  add({
    name: 'nvmf_discovery_remove_referral',
    description: 'Remove a discovery referral',
    params: referralParams,
    async handler(p) {
      const r = { address: tcpAddress(p.address) };
      await removeEverywhere(o.nvmf_discovery_remove_referral, r);
      const i = referrals.findIndex((x) => sameAddr(x.address, r.address));
      if (i >= 0) referrals.splice(i, 1);
      return true;
    },
  });

  add({
    name: 'nvmf_discovery_get_referrals',
    description: 'List discovery referrals',
    params: obj({ tgt_name: opt(str()) }),
    handler: () => referrals.map((r) => ({ ...r, address: { ...r.address } })),
  });

  return {
    name: 'nvmf',
    dependsOn: ['bdev'],
    methods,
    async start() {
      // SPDK runs poll groups only on the mask's cores; storkit runs one on every reactor (each
      // listens through SO_REUSEPORT), so a mask must name every core the app runs on.
      const mask = setConfig?.poll_groups_mask;
      const cores = ctl.cores ?? [];
      if (typeof mask !== 'string' || cores.length === 0) return;
      const want = parseCoreMask(mask);
      const missing = cores.filter((c) => !want.includes(c));
      if (missing.length > 0)
        throw Object.assign(
          new Error(
            `nvmf_set_config poll_groups_mask ${mask}: storkit runs an NVMe-oF poll group on every reactor (cores ${cores.join(',')}); a mask without core ${missing.join(',')} is not supported`,
          ),
          { code: 'EINVAL' },
        );
    },
    async writeConfig(): Promise<ConfigEntry[]> {
      // A namespace whose bdev went away (hot removal) left every reactor's subsystem on its own:
      // keep only the namespaces reactor 0 still has.
      if (ctl.count > 0 && subsystems.size > 0) {
        const live = await ctl.call(0, o.nvmf_get_subsystems, undefined);
        for (const [n, s] of subsystems) {
          const have = new Set(live.find((l) => l.nqn === n)?.namespaces?.map((ns) => ns.nsid));
          for (const nsid of [...s.namespaces.keys()]) if (!have.has(nsid)) s.namespaces.delete(nsid);
        }
      }
      const out: ConfigEntry[] = [];
      if (setConfig) out.push({ method: 'nvmf_set_config', params: { ...setConfig } });
      if (maxSubsystems !== null)
        out.push({ method: 'nvmf_set_max_subsystems', params: { max_subsystems: maxSubsystems } });
      if (crdt) out.push({ method: 'nvmf_set_crdt', params: { ...crdt } });
      if (transport) out.push({ method: 'nvmf_create_transport', params: { ...transport } });
      for (const a of discoveryListeners)
        out.push({
          method: 'nvmf_subsystem_add_listener',
          params: { nqn: DISCOVERY_NQN, listen_address: { ...a } },
        });
      for (const r of referrals) out.push({ method: 'nvmf_discovery_add_referral', params: { ...r } });
      for (const [n, s] of subsystems) {
        out.push({ method: 'nvmf_create_subsystem', params: { ...s.params } });
        for (const ns of s.namespaces.values())
          out.push({ method: 'nvmf_subsystem_add_ns', params: { nqn: n, namespace: { ...ns } } });
        for (const h of s.hosts) out.push({ method: 'nvmf_subsystem_add_host', params: { nqn: n, host: h } });
        for (const a of s.listeners)
          out.push({ method: 'nvmf_subsystem_add_listener', params: { nqn: n, listen_address: { ...a } } });
      }
      return out;
    },
  };
}
