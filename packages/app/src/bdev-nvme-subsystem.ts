// bdev_nvme_* on the main thread: attach an NVMe controller (NVMe/TCP, or PCIe: a local controller
// bound to vfio-pci/uio) on reactor 0 (its admin queue, keep alive), register the same bdevs `<name>n<nsid>` on the other reactors from its replay
// (each reactor's threads then open their own I/O qpair), detach, list. Saved under its own config
// section `bdev_nvme` (after `bdev`, before `nvmf`); an SPDK config that has these methods in its
// `bdev` section loads too (methods are called by name).
import { isIP } from 'node:net';

import { parseTransportId } from '@storkit/nvme';
import type { NvmeAttachParams } from '@storkit/nvme/bdev';
import { any, bool, inert, int, methodList, obj, opt, RpcError, req, str, withoutInert } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { bdevNvmeAttach, bdevNvmeDetach, bdevNvmeGet, bdevNvmeReplica } from './controls/nvmf.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

/**
 * bdev_nvme_set_options: SPDK's NVMe driver tunables, none of which storkit's host acts on (its
 * keep alive, retries and reconnects are per controller, from bdev_nvme_attach_controller).
 * Each is accepted at SPDK's default; another value is named in a warning.
 */
const nvmeOptions = obj({
  action_on_timeout: inert(str({ enum: ['none', 'reset', 'abort'] }), 'none'),
  timeout_us: inert(int({ min: 0 }), 0),
  timeout_admin_us: inert(int({ min: 0 }), 0),
  keep_alive_timeout_ms: inert(int({ min: 0 }), 10000),
  retry_count: inert(int({ min: 0 }), 4),
  transport_retry_count: inert(int({ min: 0 }), 4),
  arbitration_burst: inert(int({ min: 0, max: 7 }), 0),
  low_priority_weight: inert(int({ min: 0, max: 255 }), 0),
  medium_priority_weight: inert(int({ min: 0, max: 255 }), 0),
  high_priority_weight: inert(int({ min: 0, max: 255 }), 0),
  nvme_adminq_poll_period_us: inert(int({ min: 0 }), 10000),
  nvme_ioq_poll_period_us: inert(int({ min: 0 }), 0),
  io_queue_requests: inert(int({ min: 0 }), 0),
  delay_cmd_submit: inert(bool(), true),
  bdev_retry_count: inert(int({ min: -1 }), 3),
  transport_ack_timeout: inert(int({ min: 0, max: 31 }), 0),
  ctrlr_loss_timeout_sec: inert(int({ min: -1 }), 0),
  reconnect_delay_sec: inert(int({ min: 0 }), 0),
  fast_io_fail_timeout_sec: inert(int({ min: 0 }), 0),
  disable_auto_failback: inert(bool(), false),
  generate_uuids: inert(bool(), false),
  transport_tos: inert(int({ min: 0, max: 255 }), 0),
  nvme_error_stat: inert(bool(), false),
  rdma_srq_size: inert(int({ min: 0 }), 0),
  io_path_stat: inert(bool(), false),
  allow_accel_sequence: inert(bool(), false),
  rdma_max_cq_size: inert(int({ min: 0 }), 0),
  rdma_cm_event_timeout_ms: inert(int({ min: 0 }), 0),
  dhchap_digests: inert(any(), ['sha256', 'sha384', 'sha512']),
  dhchap_dhgroups: inert(any(), ['null', 'ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192']),
  rdma_umr_per_io: inert(bool(), false),
  tcp_connect_timeout_ms: inert(int({ min: 0 }), 0),
  enable_flush: inert(bool(), false),
});

/** bdev_nvme_attach_controller's params (SPDK's; the multipath and PI ones accepted at their defaults). */
const nvmeAttachParams = obj({
  name: req(str({ minLength: 1 })),
  trtype: req(str({ enum: ['TCP', 'PCIe'], ignoreCase: true, description: 'transport: TCP or PCIe' })),
  traddr: req(str({ minLength: 1, description: 'TCP: the address; PCIe: the PCI address (0000:04:00.0)' })),
  adrfam: opt(str({ enum: ['IPv4', 'IPv6'], ignoreCase: true })),
  trsvcid: opt(str({ pattern: /^\d{1,5}$/ })),
  subnqn: opt(str({ minLength: 11, maxLength: 223 })),
  hostnqn: opt(str({ minLength: 11, maxLength: 223 })),
  hdgst: opt(bool()),
  ddgst: opt(bool()),
  ctrlr_loss_timeout_sec: opt(
    int({ min: -1, description: 'keep reconnecting this long after a loss (-1 forever, 0 one reset)' }),
  ),
  reconnect_delay_sec: opt(int({ min: 0, description: 'seconds between reconnect attempts' })),
  fast_io_fail_timeout_sec: opt(
    int({ min: 0, description: 'fail I/O after this long unreachable (0 = hold until loss)' }),
  ),
  prchk_reftag: inert(bool({ description: 'check the reference tag (storkit: no PI)' }), false),
  prchk_guard: inert(bool({ description: 'check the guard (storkit: no PI)' }), false),
  hostaddr: opt(
    str({ minLength: 1, description: 'TCP: the source address of every connection (an IP literal)' }),
  ),
  hostsvcid: opt(
    str({ pattern: /^\d{1,5}$/, description: 'TCP: a source port (refused: one port, several connections)' }),
  ),
  priority: opt(str({ pattern: /^\d{1,9}$/, description: 'TCP: SO_PRIORITY of every connection' })),
  multipath: inert(str({ enum: ['disable', 'failover', 'multipath'] }), 'failover'),
  num_io_queues: inert(int({ min: 1 }), 1024),
  allow_unrecognized_csi: inert(bool(), false),
});

/** The transport ID of attach params, as the host parses it (defaults filled in). */
function tridString(p: NvmeAttachParams): string {
  const kv = [`trtype:${p.trtype}`, `traddr:${p.traddr}`];
  if (p.adrfam !== undefined) kv.push(`adrfam:${p.adrfam}`);
  if (p.trsvcid !== undefined) kv.push(`trsvcid:${p.trsvcid}`);
  if (p.subnqn !== undefined && p.subnqn !== '') kv.push(`subnqn:${p.subnqn}`);
  return kv.join(' ');
}

export function bdevNvmeSubsystem(ctl: ReactorControl): AppSubsystem {
  const attached = new Map<string, NvmeAttachParams>();
  let options: Record<string, unknown> | null = null;
  let hotplug: Record<string, unknown> | null = null;
  const { methods, add } = methodList();

  add({
    name: 'bdev_nvme_attach_controller',
    description:
      'Attach an NVMe controller (TCP, or PCIe by PCI address): one bdev <name>n<nsid> per active namespace',
    positional: ['name'],
    params: nvmeAttachParams,
    async handler(p) {
      const loss = p.ctrlr_loss_timeout_sec ?? 0;
      const delay = p.reconnect_delay_sec ?? 0;
      const ff = p.fast_io_fail_timeout_sec ?? 0;
      // SPDK's rules for the three timeouts.
      if (loss !== 0 && delay === 0)
        throw RpcError.invalidParams('reconnect_delay_sec must be non-zero when ctrlr_loss_timeout_sec is');
      if (loss === 0 && (delay !== 0 || ff !== 0))
        throw RpcError.invalidParams(
          'reconnect_delay_sec and fast_io_fail_timeout_sec need a non-zero ctrlr_loss_timeout_sec',
        );
      if (loss > 0 && delay > loss)
        throw RpcError.invalidParams('reconnect_delay_sec must not exceed ctrlr_loss_timeout_sec');
      if (ff !== 0 && (ff < delay || (loss > 0 && ff > loss)))
        throw RpcError.invalidParams(
          'fast_io_fail_timeout_sec must lie between reconnect_delay_sec and ctrlr_loss_timeout_sec',
        );
      if (attached.has(p.name)) throw RpcError.errno('EEXIST', `nvme controller ${p.name} exists`);
      // The source address and the socket priority are TCP's (spdk_sock_opts): nothing to do them
      // with on PCIe.
      if (p.trtype.toUpperCase() !== 'TCP')
        for (const k of ['hostaddr', 'hostsvcid', 'priority'] as const)
          if (p[k] !== undefined) throw RpcError.invalidParams(`${k} applies to trtype TCP only`);
      if (p.hostaddr !== undefined && isIP(p.hostaddr) === 0)
        throw RpcError.invalidParams(`hostaddr '${p.hostaddr}' is not an IPv4 or IPv6 address`);
      // A fixed source port allows one connection to the target's address and port at a time, and
      // a controller has an admin connection and an I/O connection a thread: the second would
      // fail to bind (and a reconnect would find the port in TIME_WAIT). Refused, not half done.
      if (p.hostsvcid !== undefined)
        throw RpcError.invalidParams(
          'hostsvcid: a fixed source port allows one connection, a controller needs several (admin and I/O)',
        );
      const given = withoutInert(nvmeAttachParams, p);
      const first = await ctl.call(0, bdevNvmeAttach, given);
      const done = [0];
      try {
        for (let i = 1; i < ctl.count; i++) {
          await ctl.call(i, bdevNvmeReplica, first.replay);
          done.push(i);
        }
      } catch (e) {
        for (const i of done.reverse()) await ctl.call(i, bdevNvmeDetach, { name: p.name }).catch(() => {});
        throw e;
      }
      attached.set(p.name, { ...given });
      return first.names;
    },
  });

  add({
    name: 'bdev_nvme_detach_controller',
    description: 'Detach an NVMe controller and delete its bdevs',
    positional: ['name'],
    params: obj({
      name: req(str({ minLength: 1 })),
      trtype: opt(str({ minLength: 1 })),
      traddr: opt(str({ minLength: 1 })),
      adrfam: opt(str({ enum: ['IPv4', 'IPv6'], ignoreCase: true })),
      trsvcid: opt(str({ minLength: 1 })),
      subnqn: opt(str({ minLength: 1 })),
      hostaddr: opt(str({ minLength: 1 })),
      hostsvcid: opt(str({ minLength: 1 })),
    }),
    async handler(p) {
      const a = attached.get(p.name);
      if (a === undefined) throw RpcError.errno('ENODEV', `no nvme controller ${p.name}`);
      // SPDK's bdev_nvme_delete: each given field must match the controller's path (trtype and
      // adrfam as parsed, traddr and trsvcid ignoring case, the rest exactly), else nothing is
      // removed: ENXIO. storkit's controllers have one path, so a match detaches the controller.
      const t = parseTransportId(tridString(a));
      const path = {
        trtype: t.trtype.toUpperCase(),
        traddr: t.traddr.toLowerCase(),
        adrfam: ('adrfam' in t ? t.adrfam : '').toLowerCase(),
        trsvcid: ('trsvcid' in t ? t.trsvcid : '').toLowerCase(),
        subnqn: t.subnqn,
        hostaddr: a.hostaddr ?? '',
        hostsvcid: a.hostsvcid ?? '',
      };
      const want = {
        trtype: p.trtype?.toUpperCase(),
        traddr: p.traddr?.toLowerCase(),
        adrfam: p.adrfam?.toLowerCase(),
        trsvcid: p.trsvcid?.toLowerCase(),
        subnqn: p.subnqn,
        hostaddr: p.hostaddr,
        hostsvcid: p.hostsvcid,
      };
      for (const k of Object.keys(want) as (keyof typeof want)[])
        if (want[k] !== undefined && want[k] !== path[k])
          throw RpcError.errno('ENXIO', `nvme controller ${p.name} has no path with ${k} ${p[k]}`);
      const errs: string[] = [];
      for (let i = ctl.count - 1; i >= 0; i--)
        await ctl.call(i, bdevNvmeDetach, { name: p.name }).catch((e: Error) => errs.push(e.message));
      attached.delete(p.name);
      // A controller that went away by itself (PCIe hot remove) is already detached everywhere.
      if (errs.length === ctl.count) throw RpcError.errno('ENODEV', `no nvme controller ${p.name} (removed)`);
      if (errs.length) throw new RpcError(-5, `detached with errors: ${errs.join('; ')}`);
      return true;
    },
  });

  add({
    name: 'bdev_nvme_get_controllers',
    description: 'List attached NVMe controllers',
    positional: ['name'],
    params: obj({ name: opt(str({ minLength: 1 })) }),
    handler: (p) => ctl.call(0, bdevNvmeGet, p),
  });

  add({
    name: 'bdev_nvme_set_options',
    description: "SPDK's NVMe driver options (storkit's host takes its settings per controller)",
    state: 'both',
    params: nvmeOptions,
    handler(p) {
      options = { ...(options ?? {}), ...p };
      return true;
    },
  });

  add({
    name: 'bdev_nvme_set_hotplug',
    description: 'PCIe hot plug monitoring (storkit: NVMe/TCP controllers only, so nothing to monitor)',
    state: 'both',
    params: obj({
      enable: req(bool()),
      period_us: inert(int({ min: 0 }), 100000),
    }),
    handler(p) {
      if (p.enable)
        throw RpcError.errno('ENOTSUP', 'hot plug monitoring of PCIe NVMe devices is not supported');
      hotplug = { ...p };
      return true;
    },
  });

  return {
    name: 'bdev_nvme',
    configSection: 'bdev',
    dependsOn: ['bdev'],
    methods,
    async writeConfig(): Promise<ConfigEntry[]> {
      // Controllers that were removed (PCIe hot remove) are gone from the reactors: not saved.
      const live = new Set((await ctl.call(0, bdevNvmeGet, {})).map((c) => (c as { name: string }).name));
      const out: ConfigEntry[] = [];
      if (options) out.push({ method: 'bdev_nvme_set_options', params: { ...options } });
      for (const params of attached.values())
        if (live.has(params.name)) out.push({ method: 'bdev_nvme_attach_controller', params: { ...params } });
      if (hotplug) out.push({ method: 'bdev_nvme_set_hotplug', params: { ...hotplug } });
      return out;
    },
  };
}
