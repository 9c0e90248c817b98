// bdev_nvme_* on the main thread: attach an NVMe controller (NVMe/TCP, or PCIe: a local controller
// bound to vfio-pci/uio) on reactor 0 (its admin queue, keep alive), register the same bdevs `<name>n<nsid>` on the other reactors from its replay
// (each reactor's threads then open their own I/O qpair), detach, list. Saved under its own config
// section `bdev_nvme` (after `bdev`, before `nvmf`); an SPDK config that has these methods in its
// `bdev` section loads too (methods are called by name).
import type { NvmeAttachParams } from '@storkit/nvme/bdev';
import { bool, int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { bdevNvmeAttach, bdevNvmeDetach, bdevNvmeGet, bdevNvmeReplica } from './controls/nvmf.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

export function bdevNvmeSubsystem(ctl: ReactorControl): AppSubsystem {
  const attached = new Map<string, NvmeAttachParams>();
  const { methods, add } = methodList();

  add({
    name: 'bdev_nvme_attach_controller',
    description:
      'Attach an NVMe controller (TCP, or PCIe by PCI address): one bdev <name>n<nsid> per active namespace',
    positional: ['name'],
    params: obj({
      name: req(str({ minLength: 1 })),
      trtype: req(str({ enum: ['TCP', 'PCIe'], ignoreCase: true, description: 'transport: TCP or PCIe' })),
      traddr: req(
        str({ minLength: 1, description: 'TCP: the address; PCIe: the PCI address (0000:04:00.0)' }),
      ),
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
    }),
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
      const first = await ctl.call(0, bdevNvmeAttach, p);
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
      attached.set(p.name, { ...p });
      return first.names;
    },
  });

  add({
    name: 'bdev_nvme_detach_controller',
    description: 'Detach an NVMe controller and delete its bdevs',
    positional: ['name'],
    params: obj({
      name: req(str({ minLength: 1 })),
      trtype: opt(str()),
      traddr: opt(str()),
      adrfam: opt(str()),
      trsvcid: opt(str()),
      subnqn: opt(str()),
    }),
    async handler(p) {
      if (!attached.has(p.name)) throw RpcError.errno('ENODEV', `no nvme controller ${p.name}`);
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

  return {
    name: 'bdev_nvme',
    configSection: 'bdev',
    dependsOn: ['bdev'],
    methods,
    async writeConfig(): Promise<ConfigEntry[]> {
      // Controllers that were removed (PCIe hot remove) are gone from the reactors: not saved.
      const live = new Set((await ctl.call(0, bdevNvmeGet, {})).map((c) => (c as { name: string }).name));
      return [...attached.values()]
        .filter((p) => live.has(p.name))
        .map((params) => ({
          method: 'bdev_nvme_attach_controller',
          params: { ...params },
        }));
    },
  };
}
