// The vhost targets' control operations, declared once: vhost-subsystem.ts (main thread) calls
// them on the reactor that owns a controller, reactor-modules/vhost.ts defines them.
import { declareControl } from '@storkit/reactor';

/** What every create gets besides its RPC params: where the socket goes, the resolved cpumask. */
interface Placed {
  ctrlr: string;
  socket: string;
  cpumask: string;
  num_queues?: number;
}

/** A controller as SPDK's vhost_get_controllers shows it (plus storkit's reactor_core and stats). */
export interface VhostControllerInfo {
  ctrlr: string;
  cpumask: string;
  delay_base_us: number;
  iops_threshold: number;
  socket: string;
  sessions: { vid: number; id: number; name: string; started: boolean }[];
  backend_specific:
    | {
        scsi: {
          scsi_dev_num: number;
          id: number;
          target_name: string;
          luns: { id: number; bdev_name: string }[];
        }[];
      }
    | { block: { readonly: boolean; bdev: string | null; packed_ring: boolean; transport: string } };
  reactor_core: number;
  /** False for a controller created with `delay` until vhost_start_scsi_controller. */
  started: boolean;
  stats: Record<string, number>;
}

/** The core a reactor runs on (controllers are placed by cpumask). */
export const vhostCore = declareControl<void, number>('vhost.core');
export const vhostCreateBlk = declareControl<
  Placed & { dev_name: string; readonly?: boolean; packed_ring?: boolean }
>('vhost.create_blk');
/** With `delay`, the controller serves nobody until vhostStart (SPDK's vhost_start_scsi_controller). */
export const vhostCreateScsi = declareControl<Placed & { delay?: boolean }>('vhost.create_scsi');
export const vhostStart = declareControl<{ ctrlr: string }>('vhost.start');
/** Answers the target number used (-1 picks the first free). */
export const vhostAddTarget = declareControl<
  { ctrlr: string; scsi_target_num: number; bdev_name: string },
  number
>('vhost.add_target');
export const vhostRemoveTarget = declareControl<{ ctrlr: string; scsi_target_num: number }>(
  'vhost.remove_target',
);
export const vhostSetCoalescing = declareControl<{
  ctrlr: string;
  delay_base_us: number;
  iops_threshold: number;
}>('vhost.set_coalescing');
export const vhostDelete = declareControl<{ ctrlr: string }>('vhost.delete');
export const vhostGet = declareControl<{ name?: string }, VhostControllerInfo[]>('vhost.get');
