// The NVMe-oF target's and the nvme bdev module's control operations, declared once:
// nvmf-subsystem.ts and bdev-nvme-subsystem.ts (main thread) call them, reactor-modules/nvmf.ts
// defines them in every reactor. Each nvmf operation is the NvmfTarget method of the same name,
// with its params and result.
import type {
  bdevNvmeAttachController,
  bdevNvmeAttachReplica,
  bdevNvmeGetControllers,
  NvmeAttachParams,
  NvmeAttachReplay,
} from '@storkit/nvme/bdev';
import type { NvmfTarget, SharedSubsystemState } from '@storkit/nvmf';
import { type Control, declareControl } from '@storkit/reactor';

type Method = keyof NvmfTarget & `nvmf_${string}`;
type Fn<K extends Method> = NvmfTarget[K] extends (...a: infer A) => infer R
  ? { a: A; r: Awaited<R> }
  : never;
/** The method's params (none: undefined). */
type Arg<K extends Method> = Fn<K>['a'] extends [] ? undefined : Fn<K>['a'][0];
/** The method's result (none: true, as SPDK answers). */
type Res<K extends Method> = Fn<K>['r'] extends object | number | string | boolean ? Fn<K>['r'] : true;

const op = <K extends Method>(k: K): Control<Arg<K>, Res<K>> => declareControl(`nvmf.${k.slice(5)}`);

export const nvmfOps = {
  nvmf_create_transport: op('nvmf_create_transport'),
  nvmf_get_transports: op('nvmf_get_transports'),
  nvmf_create_subsystem: declareControl<
    { params: Arg<'nvmf_create_subsystem'>; shared: SharedSubsystemState },
    true
  >('nvmf.create_subsystem'),
  nvmf_delete_subsystem: op('nvmf_delete_subsystem'),
  nvmf_subsystem_add_ns: op('nvmf_subsystem_add_ns'),
  nvmf_subsystem_remove_ns: op('nvmf_subsystem_remove_ns'),
  nvmf_subsystem_add_host: op('nvmf_subsystem_add_host'),
  nvmf_subsystem_remove_host: op('nvmf_subsystem_remove_host'),
  nvmf_subsystem_allow_any_host: op('nvmf_subsystem_allow_any_host'),
  nvmf_subsystem_add_listener: op('nvmf_subsystem_add_listener'),
  nvmf_subsystem_remove_listener: op('nvmf_subsystem_remove_listener'),
  nvmf_subsystem_get_listeners: op('nvmf_subsystem_get_listeners'),
  nvmf_discovery_add_referral: op('nvmf_discovery_add_referral'),
  nvmf_discovery_remove_referral: op('nvmf_discovery_remove_referral'),
  nvmf_get_subsystems: op('nvmf_get_subsystems'),
  /** With stand-ins for controllers owned by other reactors (`owner` set). */
  nvmf_subsystem_get_controllers: op('nvmf_subsystem_get_controllers'),
  nvmf_subsystem_get_qpairs: op('nvmf_subsystem_get_qpairs'),
  nvmf_get_stats: op('nvmf_get_stats'),
};

/** Attach on one reactor (admin queue, keep alive); the others get the replay. */
export const bdevNvmeAttach = declareControl<
  NvmeAttachParams,
  Awaited<ReturnType<typeof bdevNvmeAttachController>>
>('bdev_nvme.attach');
export const bdevNvmeReplica = declareControl<NvmeAttachReplay, ReturnType<typeof bdevNvmeAttachReplica>>(
  'bdev_nvme.replica',
);
export const bdevNvmeDetach = declareControl<{ name: string }, true>('bdev_nvme.detach');
export const bdevNvmeGet = declareControl<{ name?: string }, ReturnType<typeof bdevNvmeGetControllers>>(
  'bdev_nvme.get',
);
