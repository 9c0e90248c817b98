// The iSCSI target's control operations, declared once: iscsi-subsystem.ts (main thread) calls
// them, reactor-modules/iscsi.ts defines them in every reactor. Params are SPDK's RPC params.
import type {
  ChapSecret,
  DiscoveryAuthParams,
  InitiatorGroupParams,
  IscsiOptions,
  IscsiStats,
  IscsiTarget,
  PortalGroupParams,
  TargetNodeParams,
} from '@storkit/iscsi';
import { declareControl } from '@storkit/reactor';

type Tag = { tag: number };

/** Once per reactor at start: the engine's options and the target-wide session count. */
export const iscsiInit = declareControl<
  { options: Partial<IscsiOptions>; sessions: SharedArrayBuffer },
  true
>('iscsi.init');

/** Config applied the same way on every reactor (synchronous, all-or-nothing per reactor). */
export const iscsiApply = {
  iscsi_set_discovery_auth: declareControl<DiscoveryAuthParams>('iscsi.set_discovery_auth'),
  iscsi_create_auth_group: declareControl<Tag & { secrets?: ChapSecret[] }>('iscsi.create_auth_group'),
  iscsi_delete_auth_group: declareControl<Tag>('iscsi.delete_auth_group'),
  iscsi_auth_group_add_secret: declareControl<Tag & ChapSecret>('iscsi.auth_group_add_secret'),
  iscsi_auth_group_remove_secret: declareControl<Tag & { user: string }>('iscsi.auth_group_remove_secret'),
  iscsi_create_initiator_group: declareControl<InitiatorGroupParams>('iscsi.create_initiator_group'),
  iscsi_delete_initiator_group: declareControl<Tag>('iscsi.delete_initiator_group'),
  iscsi_target_node_add_lun: declareControl<{ name: string; bdev_name: string; lun_id?: number }>(
    'iscsi.target_node_add_lun',
  ),
  iscsi_target_node_set_auth: declareControl<{ name: string } & DiscoveryAuthParams>(
    'iscsi.target_node_set_auth',
  ),
};

/** Creates the group and listens on its portals (SO_REUSEPORT) plus this reactor's private ports. */
export const iscsiCreatePortalGroup = declareControl<
  PortalGroupParams,
  { ports: string[]; private_ports: number[] }
>('iscsi.create_portal_group');
export const iscsiDeletePortalGroup = declareControl<Tag>('iscsi.delete_portal_group');
/** Every reactor's private ports (login redirects to a node's owner), by portal group. */
export const iscsiSetPeers = declareControl<Tag & { ports: number[][] }>('iscsi.set_peers');
/** A target node, with the reactor owning its LUN state; answers its full name. */
export const iscsiCreateTargetNode = declareControl<{ params: TargetNodeParams; owner: number }, string>(
  'iscsi.create_target_node',
);
export const iscsiDeleteTargetNode = declareControl<{ name: string }>('iscsi.delete_target_node');

/** Read-only views of a reactor's state. */
export const iscsiGet = {
  options: declareControl<void, IscsiOptions>('iscsi.get_options'),
  discovery_auth: declareControl<void, DiscoveryAuthParams>('iscsi.get_discovery_auth'),
  auth_groups: declareControl<void, ReturnType<IscsiTarget['getAuthGroups']>>('iscsi.get_auth_groups'),
  initiator_groups: declareControl<void, ReturnType<IscsiTarget['getInitiatorGroups']>>(
    'iscsi.get_initiator_groups',
  ),
  portal_groups: declareControl<void, ReturnType<IscsiTarget['getPortalGroups']>>('iscsi.get_portal_groups'),
  target_nodes: declareControl<void, ReturnType<IscsiTarget['getTargetNodes']>>('iscsi.get_target_nodes'),
  connections: declareControl<
    void,
    (ReturnType<IscsiTarget['getConnections']>[number] & { lcore_id: number; reactor: number })[]
  >('iscsi.get_connections'),
  stats: declareControl<void, IscsiStats>('iscsi.get_stats'),
  /** storkit: where connections landed (for tests and diagnostics). */
  placement: declareControl<
    void,
    { accepted: number; redirected: number; moved_out: number; moved_in: number; adopt_failed: number }
  >('iscsi.get_placement'),
  /** storkit: this reactor's sessions, and the target-wide count max_sessions is checked against. */
  sessions: declareControl<void, { local: number; target: number }>('iscsi.get_sessions'),
  /** storkit: every reactor's private ports (login redirects), by portal group tag. */
  peers: declareControl<void, Record<string, number[][]>>('iscsi.get_peers'),
};
