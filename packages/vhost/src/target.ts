import { join } from 'node:path';
import type { BlockBackend } from '@storkit/block';
import { getThread, parseCoreMask, type Thread } from '@storkit/reactor';

import { BlkDevice } from './blk.js';
import { VhostController } from './controller.js';
import { VhostError } from './errors.js';
import { VhostScsiDevice } from './scsi.js';

export interface VhostTargetOptions {
  /** Directory of the controllers' sockets (SPDK's `-S`); default the working directory. */
  socketDir?: string;
  /** Find a block device by name (the bdev layer's lookup). */
  lookupBdev(name: string): BlockBackend | undefined;
  /**
   * The reactor thread that polls a controller with this cpumask (SPDK picks one inside the mask).
   * Default: the calling thread. The returned thread must live in this isolate.
   */
  threadFor?(cpumask: string | undefined): Thread;
}

/** vhost_create_blk_controller params (SPDK names). */
export interface CreateBlkParams {
  ctrlr: string;
  dev_name: string;
  cpumask?: string;
  readonly?: boolean;
  packed_ring?: boolean;
  /** storkit: request queues offered (SPDK takes the bdev's channel count). */
  num_queues?: number;
}

export interface CreateScsiParams {
  ctrlr: string;
  cpumask?: string;
  /** storkit: request queues offered. */
  num_queues?: number;
}

interface Entry {
  ctrl: VhostController;
  thread: Thread | null;
  /** Blk: the bdev served. */
  bdev?: string;
  readonly?: boolean;
  /** Scsi: bdev name per target. */
  targets?: (string | null)[];
}

/**
 * SPDK's vhost subsystem surface: controllers created, configured and deleted by the RPC methods
 * of the same names and parameters (vhost_create_blk_controller, vhost_create_scsi_controller,
 * vhost_scsi_controller_add_target / remove_target, vhost_controller_set_coalescing,
 * vhost_delete_controller, vhost_get_controllers). `rpcHandlers()` maps each method name to its
 * handler for the RPC layer. Errors are VhostError with stable codes.
 */
export class VhostTarget {
  readonly socketDir: string;
  readonly #opts: VhostTargetOptions;
  readonly #ctrls = new Map<string, Entry>();

  constructor(opts: VhostTargetOptions) {
    this.#opts = opts;
    this.socketDir = opts.socketDir ?? process.cwd();
  }

  controller(name: string): VhostController {
    return this.#entry(name).ctrl;
  }

  #entry(name: string): Entry {
    const e = this.#ctrls.get(name);
    if (e === undefined) throw new VhostError('ENOENT', `no vhost controller ${name}`);
    return e;
  }

  #checkNew(ctrlr: string, cpumask: string | undefined): void {
    if (typeof ctrlr !== 'string' || !/^[A-Za-z0-9._-]+$/.test(ctrlr)) {
      throw new VhostError(
        'EINVAL',
        `controller name ${JSON.stringify(ctrlr)} must be letters, digits, '.', '_' or '-'`,
      );
    }
    if (this.#ctrls.has(ctrlr)) throw new VhostError('EEXIST', `vhost controller ${ctrlr} already exists`);
    if (cpumask !== undefined) {
      try {
        if (parseCoreMask(cpumask).length === 0) throw new Error('empty');
      } catch (e) {
        throw new VhostError('EINVAL', `bad cpumask ${cpumask}: ${(e as Error).message}`);
      }
    }
  }

  #bdev(name: string): BlockBackend {
    const b = this.#opts.lookupBdev(name);
    if (b === undefined) throw new VhostError('ENOENT', `no bdev ${name}`);
    return b;
  }

  #launch(entry: Entry, cpumask: string | undefined): void {
    const thread = this.#opts.threadFor?.(cpumask) ?? getThread();
    entry.thread = thread;
    this.#ctrls.set(entry.ctrl.name, entry);
    if (thread === null || thread === getThread()) entry.ctrl.start();
    else thread.sendMsg(() => entry.ctrl.start());
  }

  vhost_create_blk_controller(p: CreateBlkParams): boolean {
    this.#checkNew(p.ctrlr, p.cpumask);
    const backend = this.#bdev(p.dev_name);
    const device = new BlkDevice(backend, { readonly: p.readonly === true, numQueues: p.num_queues ?? 1 });
    const ctrl = new VhostController({
      name: p.ctrlr,
      socketPath: join(this.socketDir, p.ctrlr),
      cpumask: p.cpumask,
      device,
      packedRing: p.packed_ring === true,
    });
    this.#launch({ ctrl, thread: null, bdev: p.dev_name, readonly: device.readonly }, p.cpumask);
    return true;
  }

  vhost_create_scsi_controller(p: CreateScsiParams): boolean {
    this.#checkNew(p.ctrlr, p.cpumask);
    const device = new VhostScsiDevice({ name: p.ctrlr, numQueues: p.num_queues ?? 1 });
    const ctrl = new VhostController({
      name: p.ctrlr,
      socketPath: join(this.socketDir, p.ctrlr),
      cpumask: p.cpumask,
      device,
    });
    this.#launch({ ctrl, thread: null, targets: new Array(8).fill(null) }, p.cpumask);
    return true;
  }

  #scsi(name: string): { e: Entry; dev: VhostScsiDevice } {
    const e = this.#entry(name);
    if (!(e.ctrl.device instanceof VhostScsiDevice))
      throw new VhostError('EINVAL', `${name} is not a vhost-scsi controller`);
    return { e, dev: e.ctrl.device };
  }

  /** Returns the target number used (SPDK answers it). */
  vhost_scsi_controller_add_target(p: { ctrlr: string; scsi_target_num: number; bdev_name: string }): number {
    const { e, dev } = this.#scsi(p.ctrlr);
    const backend = this.#bdev(p.bdev_name);
    let num = p.scsi_target_num;
    if (num === -1) num = dev.targets.indexOf(null);
    dev.addTarget(num, backend);
    (e.targets as (string | null)[])[num] = p.bdev_name;
    return num;
  }

  vhost_scsi_controller_remove_target(p: { ctrlr: string; scsi_target_num: number }): boolean {
    const { e, dev } = this.#scsi(p.ctrlr);
    dev.removeTarget(p.scsi_target_num);
    (e.targets as (string | null)[])[p.scsi_target_num] = null;
    return true;
  }

  vhost_controller_set_coalescing(p: {
    ctrlr: string;
    delay_base_us: number;
    iops_threshold: number;
  }): boolean {
    const e = this.#entry(p.ctrlr);
    const c = { delayBaseUs: p.delay_base_us, iopsThreshold: p.iops_threshold };
    if (e.thread === null || e.thread === getThread()) e.ctrl.setCoalescing(c);
    else {
      // Validate here, apply on the controller's thread.
      if (
        !Number.isInteger(c.delayBaseUs) ||
        c.delayBaseUs < 0 ||
        !Number.isInteger(c.iopsThreshold) ||
        c.iopsThreshold < 0
      ) {
        throw new VhostError('EINVAL', 'delay_base_us and iops_threshold must be non-negative integers');
      }
      e.thread.sendMsg(() => e.ctrl.setCoalescing(c));
    }
    return true;
  }

  /** SPDK refuses (EBUSY) while a frontend is connected. */
  vhost_delete_controller(p: { ctrlr: string }): boolean {
    const e = this.#entry(p.ctrlr);
    if (e.ctrl.connected)
      throw new VhostError('EBUSY', `vhost controller ${p.ctrlr} has a connected frontend`);
    this.#ctrls.delete(p.ctrlr);
    if (e.thread === null || e.thread === getThread()) e.ctrl.close();
    else e.thread.sendMsg(() => e.ctrl.close());
    return true;
  }

  vhost_get_controllers(p: { name?: string } = {}): Record<string, unknown>[] {
    const list = p.name === undefined ? [...this.#ctrls.values()] : [this.#entry(p.name)];
    return list.map((e) => {
      const c = e.ctrl;
      const backend_specific =
        e.targets !== undefined
          ? {
              scsi: e.targets.flatMap((b, i) =>
                b === null
                  ? []
                  : [{ scsi_dev_num: i, id: i, target_name: `Target ${i}`, luns: [{ id: 0, bdev_name: b }] }],
              ),
            }
          : {
              block: {
                readonly: e.readonly === true,
                bdev: e.bdev,
                packed_ring: c.packedRing,
                transport: 'vhost_user_blk',
              },
            };
      return {
        ctrlr: c.name,
        cpumask: c.cpumask === '' ? '0x1' : c.cpumask,
        delay_base_us: c.coalescing.delayBaseUs,
        iops_threshold: c.coalescing.iopsThreshold,
        socket: c.socketPath,
        sessions: c.connected
          ? [{ vid: 0, id: 0, name: `${c.name}s0`, started: c.queues.some((q) => q.running) }]
          : [],
        backend_specific,
      };
    });
  }

  /** Method name → handler, for the RPC layer. */
  rpcHandlers(): Record<string, (params: never) => unknown> {
    return {
      vhost_create_blk_controller: (p: CreateBlkParams) => this.vhost_create_blk_controller(p),
      vhost_create_scsi_controller: (p: CreateScsiParams) => this.vhost_create_scsi_controller(p),
      vhost_scsi_controller_add_target: (p: { ctrlr: string; scsi_target_num: number; bdev_name: string }) =>
        this.vhost_scsi_controller_add_target(p),
      vhost_scsi_controller_remove_target: (p: { ctrlr: string; scsi_target_num: number }) =>
        this.vhost_scsi_controller_remove_target(p),
      vhost_controller_set_coalescing: (p: {
        ctrlr: string;
        delay_base_us: number;
        iops_threshold: number;
      }) => this.vhost_controller_set_coalescing(p),
      vhost_delete_controller: (p: { ctrlr: string }) => this.vhost_delete_controller(p),
      vhost_get_controllers: (p: { name?: string }) => this.vhost_get_controllers(p ?? {}),
    };
  }

  /** Delete every controller (shutdown), connected or not. */
  close(): void {
    for (const e of this.#ctrls.values()) {
      if (e.thread === null || e.thread === getThread()) e.ctrl.close();
      else e.thread.sendMsg(() => e.ctrl.close());
    }
    this.#ctrls.clear();
  }
}
