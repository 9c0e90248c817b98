import type { PciDevice } from '@storkit/native';
import type { AnyMethodDef } from '@storkit/rpc';

import type { Logger } from './log.js';
import type { BdevMethods } from './plugin.js';

/** Target-wide settings a subsystem may need (from the command line). */
export interface SubsystemOptions {
  /** Directory of vhost controllers' sockets (SPDK's `-S`). */
  vhostDir?: string;
  /** I/OAT functions already open (the device model) that ioat_scan_accel_module also finds. */
  ioatDevices?: () => readonly PciDevice[];
  /** Bdev modules' methods from plugins (`storkit tgt --plugin`). */
  // biome-ignore lint/suspicious/noExplicitAny: each plugin module has its own params type
  bdevMethods?: readonly BdevMethods<any>[];
  /** The target's log (notices a subsystem gives while it starts). */
  log?: Logger;
}

/** One entry of an SPDK JSON config's subsystem section. */
export interface ConfigEntry {
  method: string;
  /** The method's params as plain JSON. */
  params?: object;
}

/**
 * What a subsystem contributes to the target app (SPDK's spdk_subsystem plus its RPCs): RPC
 * methods, and a config writer that describes the current state as the calls that rebuild it.
 */
export interface AppSubsystem {
  /** SPDK's subsystem name: `bdev`, `nvmf`, `iscsi`, `vhost_blk`, `vhost_scsi`, ... */
  readonly name: string;
  /**
   * Save this subsystem's entries in another subsystem's config section, ahead of that section's
   * own (SPDK keeps bdev_nvme_* in `bdev`: remote controllers are base devices). Such a subsystem
   * is not listed by framework_get_subsystems.
   */
  readonly configSection?: string;
  readonly dependsOn: readonly string[];
  readonly methods: readonly AnyMethodDef[];
  /** Runs once the reactors are up, before runtime methods (applies startup options). */
  start?(): Promise<void>;
  /** The calls that recreate this subsystem's current state, in an order that works on load. */
  writeConfig(): Promise<ConfigEntry[]>;
}

/**
 * Subsystems SPDK configs commonly carry that storkit has no counterpart for (their methods only
 * tune SPDK internals: socket implementations, buffer pools). Their sections are
 * skipped with a notice so a config saved by spdk_tgt still loads here.
 */
export const FOREIGN_SUBSYSTEMS: ReadonlySet<string> = new Set([
  'sock',
  'vmd',
  'keyring',
  'scheduler',
  'vfio_user_target',
  'ublk',
  'nbd',
  'fsdev',
  // SPDK's SCSI layer has a subsystem of its own with no methods (spdk_tgt saves it as an empty
  // section); storkit's SCSI layer lives inside its iSCSI and vhost-scsi subsystems.
  'scsi',
]);
