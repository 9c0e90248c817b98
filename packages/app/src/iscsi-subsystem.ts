// The iscsi subsystem on the main thread: SPDK's iscsi_* RPCs (same names and params), applied
// on every reactor (reactor 0 first, rolled back when a later reactor refuses), and save_config
// written from reactor 0's state. Each target node gets an owner reactor (round robin): its
// sessions run there, other reactors redirect logins to it (see reactor-modules/iscsi.ts). The
// reactors count sessions against max_sessions in one counter shared with all of them.
import { SessionCount } from '@storkit/iscsi';
import type { Control } from '@storkit/reactor';
import { arr, bool, inert, int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import {
  iscsiApply,
  iscsiCreatePortalGroup,
  iscsiCreateTargetNode,
  iscsiDeletePortalGroup,
  iscsiDeleteTargetNode,
  iscsiGet,
  iscsiInit,
  iscsiSetPeers,
} from './controls/iscsi.js';
import { type AuthFileGroup, readAuthFile } from './iscsi-auth-file.js';
import type { Logger } from './log.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

/** Params as saved by save_config (plain JSON). */
type Saved = Record<string, unknown>;

const tag = (d = 'group tag') => int({ min: 1, max: 65535, description: d });
const chapFlags = {
  disable_chap: opt(bool({ description: 'CHAP is not used' })),
  require_chap: opt(bool({ description: 'CHAP is required' })),
  mutual_chap: opt(bool({ description: 'the target authenticates itself too (needs require_chap)' })),
  chap_group: opt(int({ min: 0, description: 'auth group tag (0: any group)' })),
};
const secret = {
  user: req(str({ minLength: 1, description: 'CHAP user name' })),
  secret: req(str({ minLength: 1, description: 'CHAP secret' })),
  muser: opt(str({ minLength: 1, description: 'mutual CHAP user name' })),
  msecret: opt(str({ minLength: 1, description: 'mutual CHAP secret' })),
};
const lun = obj({ bdev_name: req(str({ minLength: 1 })), lun_id: req(int({ min: 0, max: 1023 })) });

/** iscsi_set_options params the engine uses; the others (SPDK pool sizes) are kept for save_config. */
const ENGINE_OPTIONS = new Set([
  'node_base',
  'nop_timeout',
  'nop_in_interval',
  'disable_chap',
  'require_chap',
  'mutual_chap',
  'chap_group',
  'max_sessions',
  'max_queue_depth',
  'max_connections_per_session',
  'default_time2wait',
  'default_time2retain',
  'first_burst_length',
  'immediate_data',
  'error_recovery_level',
  'allow_duplicated_isid',
  'max_r2t_per_connection',
  'max_large_datain_per_connection',
]);

export function iscsiSubsystem(ctl: ReactorControl, log?: Logger): AppSubsystem {
  let options: Saved | null = null;
  /** The auth groups read from auth_file at start, as read (save_config leaves them to the file). */
  let fileGroups: AuthFileGroup[] = [];
  let discoveryAuth: Saved | null = null;
  let nextOwner = 0;
  const { methods, add } = methodList();

  const all = async <R>(op: Control<void, R>): Promise<R[]> => {
    const out: R[] = [];
    for (let i = 0; i < ctl.count; i++) out.push(await ctl.call(i, op, undefined));
    return out;
  };
  const get = <R>(op: Control<void, R>) => ctl.call(0, op, undefined);

  /** Applies on reactor 0, then the others; a later failure runs `undo` where it succeeded. */
  async function everywhere<P, R>(
    op: Control<P, R>,
    params: P,
    undo?: (i: number) => Promise<unknown>,
  ): Promise<R> {
    const first = await ctl.call(0, op, params);
    for (let i = 1; i < ctl.count; i++) {
      try {
        await ctl.call(i, op, params);
      } catch (e) {
        if (undo) for (let j = i - 1; j >= 0; j--) await undo(j).catch(() => {});
        throw e;
      }
    }
    return first;
  }
  /** A config method on every reactor; `undo` (another config method) where it succeeded if one refuses. */
  const apply = <P, U>(op: Control<P, true>, params: P, undo?: [Control<U, true>, U]) =>
    everywhere(op, params, undo ? (i) => ctl.call(i, undo[0], undo[1]) : undefined);

  add({
    name: 'iscsi_set_options',
    description: 'Set global iSCSI target options (before framework_start_init)',
    state: 'startup',
    params: obj({
      node_base: opt(str({ minLength: 1 })),
      nop_timeout: opt(int({ min: 0, max: 300 })),
      nop_in_interval: opt(int({ min: 0, max: 300 })),
      ...chapFlags,
      max_sessions: opt(int({ min: 1, max: 65535 })),
      max_connections_per_session: opt(int({ min: 1, max: 65535 })),
      max_queue_depth: opt(int({ min: 1, max: 4096 })),
      default_time2wait: opt(int({ min: 0, max: 3600 })),
      default_time2retain: opt(int({ min: 0, max: 3600 })),
      first_burst_length: opt(int({ min: 512, max: 16777215 })),
      immediate_data: opt(bool()),
      error_recovery_level: opt(int({ min: 0, max: 0, description: 'ErrorRecoveryLevel (storkit: 0)' })),
      allow_duplicated_isid: opt(bool()),
      max_r2t_per_connection: opt(int({ min: 1, max: 255 })),
      max_large_datain_per_connection: opt(int({ min: 1 })),
      // SPDK's CHAP secret file: its [AuthGroupN] sections become auth groups when the subsystem
      // starts (framework init), as SPDK's iscsi_parse_auth_info makes them.
      auth_file: opt(
        str({
          minLength: 1,
          description: 'CHAP secret file read at start ([AuthGroupN] / Auth user secret [muser msecret])',
        }),
      ),
      // SPDK's PDU and data-segment pools (its v24.01 defaults). storkit has none: PDUs are parsed
      // in place and their data goes straight into the command's buffer from the iobuf pool (size
      // that with iobuf_set_options). Kept for save_config; another value is reported once.
      pdu_pool_size: inert(int({ min: 1 }), 36864),
      immediate_data_pool_size: inert(int({ min: 1 }), 16384),
      data_out_pool_size: inert(int({ min: 1 }), 2048),
    }),
    handler(p) {
      const next = { ...(options ?? {}), ...p };
      if (next.mutual_chap && !next.require_chap)
        throw RpcError.invalidParams('mutual_chap requires require_chap');
      if (next.disable_chap && (next.require_chap || next.mutual_chap))
        throw RpcError.invalidParams('disable_chap cannot be combined with require_chap or mutual_chap');
      options = next;
      return true;
    },
  });
  add({
    name: 'iscsi_get_options',
    description: 'Global iSCSI target options',
    params: obj({}),
    async handler() {
      return { ...(await get(iscsiGet.options)), ...pick(options ?? {}, (k) => !ENGINE_OPTIONS.has(k)) };
    },
  });
  add({
    name: 'iscsi_set_discovery_auth',
    description: 'CHAP settings for discovery sessions',
    params: obj(chapFlags),
    async handler(p) {
      const before = await get(iscsiGet.discovery_auth);
      await apply(iscsiApply.iscsi_set_discovery_auth, p, [iscsiApply.iscsi_set_discovery_auth, before]);
      discoveryAuth = { ...(discoveryAuth ?? {}), ...p };
      return true;
    },
  });
  add({
    name: 'iscsi_create_auth_group',
    description: 'Create an auth group of CHAP secrets',
    positional: ['tag'],
    params: obj({ tag: req(tag()), secrets: opt(arr(obj(secret))) }),
    handler: (p) =>
      apply(iscsiApply.iscsi_create_auth_group, p, [iscsiApply.iscsi_delete_auth_group, { tag: p.tag }]),
  });
  add({
    name: 'iscsi_delete_auth_group',
    description: 'Delete an auth group',
    positional: ['tag'],
    params: obj({ tag: req(tag()) }),
    handler: (p) => apply(iscsiApply.iscsi_delete_auth_group, p),
  });
  add({
    name: 'iscsi_get_auth_groups',
    description: 'List auth groups',
    params: obj({}),
    async handler() {
      const gs = await get(iscsiGet.auth_groups);
      return gs.map((g) => ({ tag: g.tag, secrets: g.secrets }));
    },
  });
  add({
    name: 'iscsi_auth_group_add_secret',
    description: 'Add a CHAP secret to an auth group',
    positional: ['tag'],
    params: obj({ tag: req(tag()), ...secret }),
    handler: (p) =>
      apply(iscsiApply.iscsi_auth_group_add_secret, p, [
        iscsiApply.iscsi_auth_group_remove_secret,
        { tag: p.tag, user: p.user },
      ]),
  });
  add({
    name: 'iscsi_auth_group_remove_secret',
    description: 'Remove a CHAP secret from an auth group',
    positional: ['tag', 'user'],
    params: obj({ tag: req(tag()), user: req(str({ minLength: 1 })) }),
    handler: (p) => apply(iscsiApply.iscsi_auth_group_remove_secret, p),
  });
  add({
    name: 'iscsi_create_initiator_group',
    description: 'Create an initiator group (names or ANY, netmasks or ANY; "!" denies)',
    positional: ['tag'],
    params: obj({
      tag: req(tag()),
      initiators: req(arr(str({ minLength: 1 }), { minItems: 1 })),
      netmasks: req(arr(str({ minLength: 1 }), { minItems: 1 })),
    }),
    handler: (p) =>
      apply(iscsiApply.iscsi_create_initiator_group, p, [
        iscsiApply.iscsi_delete_initiator_group,
        { tag: p.tag },
      ]),
  });
  add({
    name: 'iscsi_delete_initiator_group',
    description: 'Delete an initiator group',
    positional: ['tag'],
    params: obj({ tag: req(tag()) }),
    handler: (p) => apply(iscsiApply.iscsi_delete_initiator_group, p),
  });
  add({
    name: 'iscsi_get_initiator_groups',
    description: 'List initiator groups',
    params: obj({}),
    handler: () => get(iscsiGet.initiator_groups),
  });
  add({
    name: 'iscsi_create_portal_group',
    description: 'Create a portal group and listen on its portals on every reactor',
    positional: ['tag'],
    params: obj({
      tag: req(tag()),
      portals: req(
        arr(obj({ host: req(str({ minLength: 1 })), port: req(str({ pattern: /^\d{1,5}$/ })) }), {
          minItems: 1,
        }),
      ),
      private: opt(bool()),
      wait: opt(
        bool({ description: 'SPDK: listen only at iscsi_start_portal_group (storkit: listens now)' }),
      ),
    }),
    async handler(p) {
      const params = { tag: p.tag, portals: p.portals, private: p.private };
      // Reactor 0 binds first (port "0" picks one); the others join the same ports.
      const first = await ctl.call(0, iscsiCreatePortalGroup, params);
      const bound = {
        ...params,
        portals: p.portals.map((x, i) => ({ host: x.host, port: first.ports[i] })),
      };
      const priv: number[][] = [first.private_ports];
      const done = [0];
      try {
        for (let i = 1; i < ctl.count; i++) {
          const r = await ctl.call(i, iscsiCreatePortalGroup, bound);
          priv.push(r.private_ports);
          done.push(i);
        }
        for (let i = 0; i < ctl.count; i++) await ctl.call(i, iscsiSetPeers, { tag: p.tag, ports: priv });
      } catch (e) {
        for (const i of done) await ctl.call(i, iscsiDeletePortalGroup, { tag: p.tag }).catch(() => {});
        throw e;
      }
      return true;
    },
  });
  add({
    name: 'iscsi_delete_portal_group',
    description: 'Delete a portal group (stop listening on its portals)',
    positional: ['tag'],
    params: obj({ tag: req(tag()) }),
    handler: (p) => everywhere(iscsiDeletePortalGroup, p),
  });
  add({
    name: 'iscsi_get_portal_groups',
    description: 'List portal groups',
    params: obj({}),
    handler: () => get(iscsiGet.portal_groups),
  });
  add({
    name: 'iscsi_create_target_node',
    description: 'Create a target node with LUNs served from bdevs',
    positional: ['name'],
    params: obj({
      name: req(str({ minLength: 1 })),
      alias_name: opt(str()),
      pg_ig_maps: req(arr(obj({ pg_tag: req(tag()), ig_tag: req(tag()) }), { minItems: 1 })),
      luns: req(arr(lun, { minItems: 1 })),
      queue_depth: req(int({ min: 1 })),
      ...chapFlags,
      header_digest: opt(bool()),
      data_digest: opt(bool()),
    }),
    async handler(p) {
      const owner = nextOwner % Math.max(1, ctl.count);
      await everywhere(iscsiCreateTargetNode, { params: p, owner }, (i) =>
        ctl.call(i, iscsiDeleteTargetNode, { name: p.name }),
      );
      nextOwner++;
      return true;
    },
  });
  add({
    name: 'iscsi_delete_target_node',
    description: 'Delete a target node (its sessions are dropped)',
    positional: ['name'],
    params: obj({ name: req(str({ minLength: 1 })) }),
    handler: (p) => everywhere(iscsiDeleteTargetNode, p),
  });
  add({
    name: 'iscsi_get_target_nodes',
    description: 'List target nodes',
    params: obj({}),
    handler: () => get(iscsiGet.target_nodes),
  });
  add({
    name: 'iscsi_target_node_add_lun',
    description: 'Add a LUN to a target node (initiators get REPORTED LUNS DATA HAS CHANGED)',
    positional: ['name', 'bdev_name'],
    params: obj({
      name: req(str({ minLength: 1 })),
      bdev_name: req(str({ minLength: 1 })),
      lun_id: opt(int({ min: 0, max: 1023 })),
    }),
    async handler(p) {
      // Pick the LUN id once so every reactor uses the same one.
      if (p.lun_id === undefined) {
        const nodes = await get(iscsiGet.target_nodes);
        const n = nodes.find((x) => x.name === p.name || x.name.endsWith(`:${p.name}`));
        if (!n) throw RpcError.errno('ENOENT', `target node ${p.name} not found`);
        let id = 0;
        while (n.luns.some((l) => l.lun_id === id)) id++;
        p = { ...p, lun_id: id };
      }
      return apply(iscsiApply.iscsi_target_node_add_lun, p);
    },
  });
  add({
    name: 'iscsi_target_node_set_auth',
    description: 'CHAP settings of a target node',
    positional: ['name'],
    params: obj({ name: req(str({ minLength: 1 })), ...chapFlags }),
    handler: (p) => apply(iscsiApply.iscsi_target_node_set_auth, p),
  });
  add({
    name: 'iscsi_get_connections',
    description: 'Connections in full feature phase, on every reactor',
    params: obj({}),
    async handler() {
      return (await all(iscsiGet.connections)).flat();
    },
  });
  add({
    name: 'iscsi_get_stats',
    description: 'Connection counts by state, over every reactor',
    params: obj({}),
    async handler() {
      const sum = { invalid: 0, running: 0, exiting: 0, exited: 0 };
      for (const s of await all(iscsiGet.stats))
        for (const k of ['invalid', 'running', 'exiting', 'exited'] as const) sum[k] += s[k];
      return sum;
    },
  });

  return {
    name: 'iscsi',
    dependsOn: ['bdev'],
    methods,
    async start() {
      const engine = pick(options ?? {}, (k) => ENGINE_OPTIONS.has(k));
      // max_sessions is target-wide: every reactor's copy of the target counts its sessions in
      // this one shared counter (Atomics, no locks; see @storkit/iscsi's SessionCount).
      const sessions = new SessionCount().sab;
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, iscsiInit, { options: engine, sessions });
      const file = options?.auth_file;
      if (typeof file === 'string') {
        // SPDK goes on without a file it cannot read; one that does not parse fails the start.
        const groups = readAuthFile(file);
        if (groups === null)
          log?.notice('iscsi', `CHAP secret file ${file} not found: no auth groups from it`);
        for (const g of groups ?? [])
          await apply(iscsiApply.iscsi_create_auth_group, g, [
            iscsiApply.iscsi_delete_auth_group,
            { tag: g.tag },
          ]);
        fileGroups = groups ?? [];
      }
    },
    async writeConfig(): Promise<ConfigEntry[]> {
      const out: ConfigEntry[] = [];
      if (options) out.push({ method: 'iscsi_set_options', params: { ...options } });
      if (discoveryAuth) {
        const d = await get(iscsiGet.discovery_auth);
        out.push({ method: 'iscsi_set_discovery_auth', params: d });
      }
      // A group the auth file made, unchanged since, is left to auth_file (written above): both
      // would make it twice on load (SPDK writes both, and then cannot load its own config).
      const fromFile = new Map(fileGroups.map((g) => [g.tag, JSON.stringify(g.secrets)]));
      for (const g of await get(iscsiGet.auth_groups))
        if (fromFile.get(g.tag) !== JSON.stringify(g.secrets))
          out.push({ method: 'iscsi_create_auth_group', params: g });
      for (const g of await get(iscsiGet.initiator_groups))
        out.push({ method: 'iscsi_create_initiator_group', params: g });
      for (const g of await get(iscsiGet.portal_groups))
        out.push({ method: 'iscsi_create_portal_group', params: g });
      for (const n of await get(iscsiGet.target_nodes)) {
        const { name, alias_name, ...rest } = n;
        out.push({
          method: 'iscsi_create_target_node',
          params: { name, ...(alias_name ? { alias_name } : {}), ...rest },
        });
      }
      return out;
    },
  };
}

function pick(o: Saved, keep: (k: string) => boolean): Saved {
  return Object.fromEntries(Object.entries(o).filter(([k]) => keep(k)));
}
