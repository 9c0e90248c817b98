// A per-core NVMe/TCP target inside your own process, from @storkit/app's public API alone.
// `Target` starts one pinned reactor per core of a mask; each reactor is one NVMe-oF poll group
// (SPDK's nvmf_tgt_poll_group_NNN) with its own SO_REUSEPORT listening socket, so the kernel spreads
// connections over the cores, and each queue pair lives, with its commands, on the reactor that
// accepted it. `target.call` runs SPDK's methods in-process with the JSON-RPC socket's schemas.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger, Target } from '@storkit/app';

export interface NvmfTargetOptions {
  /** Core mask, SPDK style (`0x3`, `[0,1]`): one reactor, and so one poll group, per core. */
  mask: string;
  /** The listener's address and port. */
  address: string;
  port: number;
  /** Size of the RAM disk (a malloc bdev, namespace 1) in MiB. */
  mib: number;
  nqn: string;
  /** The JSON-RPC socket; default: a temp dir. */
  rpcSocket?: string;
}

export interface RunningNvmfTarget {
  target: Target;
  /** The poll groups, one per reactor, as nvmf_get_stats names them. */
  pollGroups: string[];
  /** SPDK's transport ID string for this subsystem (spdk_nvme_identify -r, storkit nvme-perf -r). */
  trid: string;
  rpcSocket: string;
  /** Host command lines that reach this target. */
  connect: string[];
}

const DISCOVERY = 'nqn.2014-08.org.nvmexpress.discovery';

export async function startNvmfTarget(o: NvmfTargetOptions): Promise<RunningNvmfTarget> {
  const rpcSocket = o.rpcSocket ?? join(mkdtempSync(join(tmpdir(), 'nvmf-target-')), 'rpc.sock');
  const target = new Target({ mask: o.mask, rpcSocket, log: new Logger('warn') });
  await target.start();
  const listen_address = { trtype: 'TCP', adrfam: 'IPv4', traddr: o.address, trsvcid: String(o.port) };
  try {
    await target.call('nvmf_create_transport', { trtype: 'TCP', max_queue_depth: 128 });
    await target.call('bdev_malloc_create', {
      name: 'Malloc0',
      num_blocks: (o.mib << 20) / 512,
      block_size: 512,
    });
    await target.call('nvmf_create_subsystem', {
      nqn: o.nqn,
      allow_any_host: true,
      serial_number: 'STORKIT-EXAMPLE-01',
      model_number: 'storkit nvmf-target example',
    });
    await target.call('nvmf_subsystem_add_ns', { nqn: o.nqn, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
    await target.call('nvmf_subsystem_add_listener', { nqn: o.nqn, listen_address });
    // `nvme discover` asks the discovery subsystem on the same address.
    await target.call('nvmf_subsystem_add_listener', { nqn: DISCOVERY, listen_address });
  } catch (e) {
    await target.stop(1);
    throw e;
  }
  const stats = await target.call<{ poll_groups: { name: string }[] }>('nvmf_get_stats');
  const a = `-t tcp -a ${o.address} -s ${o.port}`;
  const trid = `trtype:TCP adrfam:IPv4 traddr:${o.address} trsvcid:${o.port} subnqn:${o.nqn}`;
  return {
    target,
    pollGroups: stats.poll_groups.map((g) => g.name),
    trid,
    rpcSocket,
    connect: [`nvme discover ${a}`, `nvme connect ${a} -n ${o.nqn}`, `spdk_nvme_identify -r '${trid}'`],
  };
}
