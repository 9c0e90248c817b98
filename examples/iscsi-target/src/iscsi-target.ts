// A per-core iSCSI target inside your own process, from @storkit/app's public API alone. `Target`
// starts one pinned reactor per core of a mask and answers SPDK's methods; `target.call` runs them
// in-process, with the same schemas as the JSON-RPC socket. The portal listens on every reactor
// (one SO_REUSEPORT socket each), so a connection is served by the reactor that accepted it, from
// that reactor's channel of the bdev: nothing crosses cores on the I/O path.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger, Target } from '@storkit/app';

export interface IscsiTargetOptions {
  /** Core mask, SPDK style (`0x3`, `[0,1]`): one reactor per core. */
  mask: string;
  /** The portal's address and port. */
  host: string;
  port: number;
  /** Size of the RAM disk (a malloc bdev) in MiB. */
  mib: number;
  /** The JSON-RPC socket (`storkit rpc -s PATH ...` reaches the running target); default: a temp dir. */
  rpcSocket?: string;
}

export interface RunningIscsiTarget {
  target: Target;
  /** The target node's name. */
  iqn: string;
  /** LUN 0 as libiscsi names it. */
  url: string;
  rpcSocket: string;
  /** Initiator command lines that reach this target. */
  connect: string[];
}

const NODE_BASE = 'iqn.2016-06.io.storkit';

export async function startIscsiTarget(o: IscsiTargetOptions): Promise<RunningIscsiTarget> {
  const rpcSocket = o.rpcSocket ?? join(mkdtempSync(join(tmpdir(), 'iscsi-target-')), 'rpc.sock');
  // SPDK's --wait-for-rpc order: startup-only options before framework_start_init starts the reactors.
  const target = new Target({ mask: o.mask, rpcSocket, waitForRpc: true, log: new Logger('warn') });
  await target.start();
  try {
    await target.call('iscsi_set_options', { node_base: NODE_BASE, max_queue_depth: 128 });
    await target.call('framework_start_init');
    await target.call('bdev_malloc_create', {
      name: 'Malloc0',
      num_blocks: (o.mib << 20) / 512,
      block_size: 512,
    });
    await target.call('iscsi_create_portal_group', {
      tag: 1,
      portals: [{ host: o.host, port: String(o.port) }],
    });
    await target.call('iscsi_create_initiator_group', { tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
    await target.call('iscsi_create_target_node', {
      name: 'disk1',
      alias_name: 'storkit example disk',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
      luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
      queue_depth: 64,
      disable_chap: true,
    });
  } catch (e) {
    await target.stop(1);
    throw e;
  }
  const iqn = `${NODE_BASE}:disk1`;
  const portal = `${o.host}:${o.port}`;
  const url = `iscsi://${portal}/${iqn}/0`;
  return {
    target,
    iqn,
    url,
    rpcSocket,
    connect: [
      `iscsi-ls -s iscsi://${portal}`,
      `iscsi-inq ${url}`,
      `iscsiadm -m discovery -t sendtargets -p ${portal} && iscsiadm -m node -T ${iqn} -p ${portal} --login`,
    ],
  };
}
