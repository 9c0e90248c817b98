// The vhost subsystems on the main thread (SPDK's `vhost_blk` and `vhost_scsi`): SPDK's vhost_*
// RPCs with SPDK's parameter names. A controller lives on ONE reactor, picked from its cpumask as
// SPDK does (the first core of the mask that the app runs on; no cpumask: the app's first core);
// its socket is `<vhost dir>/<ctrlr>` (SPDK's `-S dir`). The main thread keeps which reactor owns
// which controller and routes every method there (see reactor-modules/vhost.ts).
import { join } from 'node:path';
import type { Control } from '@storkit/reactor';
import { parseCoreMask } from '@storkit/reactor';
import { bool, inert, int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import {
  type VhostControllerInfo,
  vhostAddTarget,
  vhostCore,
  vhostCreateBlk,
  vhostCreateScsi,
  vhostDelete,
  vhostGet,
  vhostRemoveTarget,
  vhostSetCoalescing,
  vhostStart,
} from './controls/vhost.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

/** What every vhost create takes: the controller's name, where it may run, its queues. */
interface CreateParams {
  ctrlr: string;
  cpumask?: string;
  num_queues?: number;
  /** vhost-scsi: serve only from vhost_start_scsi_controller on. */
  delay?: boolean;
}

export interface VhostOptions {
  /** Directory of the controllers' sockets (SPDK's `-S`); default the working directory. */
  socketDir?: string;
}

interface Owned {
  kind: 'blk' | 'scsi';
  reactor: number;
  /** Create params as given (written back by save_config). */
  params: CreateParams;
}

/** State both vhost subsystems share (one per target). */
class VhostState {
  readonly ctl: ReactorControl;
  readonly socketDir: string;
  readonly ctrls = new Map<string, Owned>();
  /** Core of each reactor (by index), learned at start. */
  cores: number[] = [];
  /** Names being created (a second create of the same name while the first runs is refused). */
  readonly pending = new Set<string>();

  constructor(ctl: ReactorControl, o: VhostOptions) {
    this.ctl = ctl;
    this.socketDir = o.socketDir ?? process.cwd();
  }

  async start(): Promise<void> {
    this.cores = [];
    for (let i = 0; i < this.ctl.count; i++) this.cores.push(await this.ctl.call(i, vhostCore, undefined));
  }

  /** The reactor for a cpumask: the first core of the mask the app runs on. */
  reactorFor(cpumask: string | undefined): number {
    if (cpumask === undefined) return 0;
    let want: number[];
    try {
      want = parseCoreMask(cpumask);
    } catch (e) {
      throw RpcError.invalidParams(`cpumask ${cpumask}: ${(e as Error).message}`);
    }
    for (const core of want.sort((a, b) => a - b)) {
      const i = this.cores.indexOf(core);
      if (i >= 0) return i;
    }
    throw RpcError.errno(
      'EINVAL',
      `cpumask ${cpumask} has no core the app runs on (cores ${this.cores.join(',')})`,
    );
  }

  /** The app's core mask, SPDK style (what a controller without cpumask reports). */
  appMask(): string {
    let m = 0n;
    for (const c of this.cores) m |= 1n << BigInt(c);
    return `0x${m.toString(16)}`;
  }

  owner(name: string): Owned {
    const o = this.ctrls.get(name);
    if (o === undefined) throw RpcError.errno('ENODEV', `no vhost controller ${name}`);
    return o;
  }

  async create<P extends CreateParams>(
    kind: 'blk' | 'scsi',
    p: P,
    op: Control<P & { socket: string; cpumask: string }, true>,
  ): Promise<boolean> {
    const name = p.ctrlr;
    if (this.ctrls.has(name) || this.pending.has(name))
      throw RpcError.errno('EEXIST', `vhost controller ${name} already exists`);
    const reactor = this.reactorFor(p.cpumask);
    this.pending.add(name);
    try {
      await this.ctl.call(reactor, op, {
        ...p,
        socket: join(this.socketDir, name),
        cpumask: p.cpumask ?? this.appMask(),
      });
    } finally {
      this.pending.delete(name);
    }
    this.ctrls.set(name, { kind, reactor, params: { ...p } });
    return true;
  }

  async get(name?: string): Promise<VhostControllerInfo[]> {
    if (name !== undefined) return this.ctl.call(this.owner(name).reactor, vhostGet, { name });
    const out: VhostControllerInfo[] = [];
    const reactors = new Set([...this.ctrls.values()].map((o) => o.reactor));
    for (const r of [...reactors].sort()) out.push(...(await this.ctl.call(r, vhostGet, {})));
    return out;
  }

  async writeConfig(kind: 'blk' | 'scsi'): Promise<ConfigEntry[]> {
    const out: ConfigEntry[] = [];
    const live = new Map((await this.get()).map((c) => [c.ctrlr, c]));
    for (const [name, o] of this.ctrls) {
      const c = live.get(name);
      if (o.kind !== kind || c === undefined) continue;
      if (kind === 'blk') out.push({ method: 'vhost_create_blk_controller', params: { ...o.params } });
      else {
        out.push({ method: 'vhost_create_scsi_controller', params: { ...o.params } });
        for (const t of 'scsi' in c.backend_specific ? c.backend_specific.scsi : []) {
          out.push({
            method: 'vhost_scsi_controller_add_target',
            params: { ctrlr: name, scsi_target_num: t.scsi_dev_num, bdev_name: t.luns[0].bdev_name },
          });
        }
        // As SPDK writes it: a delayed controller is started after its targets are back.
        if (o.params.delay === true && c.started)
          out.push({ method: 'vhost_start_scsi_controller', params: { ctrlr: name } });
      }
      if (c.delay_base_us > 0 || c.iops_threshold > 0) {
        out.push({
          method: 'vhost_controller_set_coalescing',
          params: { ctrlr: name, delay_base_us: c.delay_base_us, iops_threshold: c.iops_threshold },
        });
      }
    }
    return out;
  }
}

const ctrlrName = () =>
  str({
    minLength: 1,
    maxLength: 64,
    pattern: /^[A-Za-z0-9._-]+$/,
    description: "controller name (letters, digits, '.', '_', '-'); also the socket's file name",
  });
const cpumask = () =>
  str({
    minLength: 1,
    description: 'cores the controller may run on (0x3, [0,1]); the first one the app has',
  });
const numQueues = () =>
  int({
    min: 1,
    max: 64,
    description: 'storkit: request queues offered (default 16; a frontend uses what it wants)',
  });

const states = new WeakMap<ReactorControl, VhostState>();

function stateOf(ctl: ReactorControl, o: VhostOptions): VhostState {
  let s = states.get(ctl);
  if (s === undefined) {
    s = new VhostState(ctl, o);
    states.set(ctl, s);
  }
  return s;
}

/**
 * `vhost_blk`: vhost_create_blk_controller, plus the methods SPDK's vhost library shares between
 * device types (vhost_controller_set_coalescing, vhost_delete_controller, vhost_get_controllers).
 */
export function vhostBlkSubsystem(ctl: ReactorControl, o: VhostOptions = {}): AppSubsystem {
  const s = stateOf(ctl, o);
  const { methods, add } = methodList();

  add({
    name: 'vhost_create_blk_controller',
    description: 'Create a vhost-user-blk controller serving a bdev on <vhost dir>/<ctrlr>',
    positional: ['ctrlr', 'dev_name'],
    params: obj({
      ctrlr: req(ctrlrName()),
      dev_name: req(str({ minLength: 1, description: 'bdev to serve' })),
      cpumask: opt(cpumask()),
      readonly: opt(bool({ description: 'serve the bdev read-only (VIRTIO_BLK_F_RO)' })),
      packed_ring: opt(bool({ description: 'offer packed virtqueues' })),
      packed_ring_recovery: inert(bool({ description: 'packed ring live recovery' }), false),
      transport: opt(str({ enum: ['vhost_user_blk'], description: 'transport (vhost_user_blk)' })),
      num_queues: opt(numQueues()),
    }),
    handler: (p) => s.create('blk', p, vhostCreateBlk),
  });
  add({
    name: 'vhost_controller_set_coalescing',
    description: 'Interrupt coalescing of a controller: hold interrupts up to delay_base_us on busy queues',
    positional: ['ctrlr', 'delay_base_us', 'iops_threshold'],
    params: obj({
      ctrlr: req(ctrlrName()),
      delay_base_us: req(int({ min: 0, max: 1_000_000, description: 'longest delay, µs (0: off)' })),
      iops_threshold: req(int({ min: 0, description: 'coalesce only above this many IOPS per queue' })),
    }),
    async handler(p) {
      await ctl.call(s.owner(p.ctrlr).reactor, vhostSetCoalescing, p);
      return true;
    },
  });
  add({
    name: 'vhost_delete_controller',
    description: 'Delete a vhost controller (refused while a frontend is connected)',
    positional: ['ctrlr'],
    params: obj({ ctrlr: req(ctrlrName()) }),
    async handler(p) {
      await ctl.call(s.owner(p.ctrlr).reactor, vhostDelete, p);
      s.ctrls.delete(p.ctrlr);
      return true;
    },
  });
  add({
    name: 'vhost_get_controllers',
    description: 'List vhost controllers (or one by name)',
    positional: ['name'],
    params: obj({ name: opt(ctrlrName()) }),
    handler: (p) => s.get(p.name),
  });

  return {
    name: 'vhost_blk',
    dependsOn: ['bdev'],
    methods,
    start: () => s.start(),
    writeConfig: () => s.writeConfig('blk'),
  };
}

/** `vhost_scsi`: controllers with up to 8 SCSI targets (LUN 0 each) over bdevs. */
export function vhostScsiSubsystem(ctl: ReactorControl, o: VhostOptions = {}): AppSubsystem {
  const s = stateOf(ctl, o);
  const { methods, add } = methodList();

  add({
    name: 'vhost_create_scsi_controller',
    description: 'Create a vhost-user-scsi controller on <vhost dir>/<ctrlr> (targets added later)',
    positional: ['ctrlr'],
    params: obj({
      ctrlr: req(ctrlrName()),
      cpumask: opt(cpumask()),
      delay: opt(bool({ description: 'make the socket only at vhost_start_scsi_controller' })),
      num_queues: opt(numQueues()),
    }),
    handler: (p) => s.create('scsi', p, vhostCreateScsi),
  });
  add({
    name: 'vhost_scsi_controller_add_target',
    description: 'Add a SCSI target (LUN 0 = bdev) to a vhost-scsi controller; -1 picks a free number',
    positional: ['ctrlr', 'scsi_target_num', 'bdev_name'],
    params: obj({
      ctrlr: req(ctrlrName()),
      scsi_target_num: req(
        int({ min: -1, max: 7, description: 'target number 0..7, or -1 for the first free' }),
      ),
      bdev_name: req(str({ minLength: 1 })),
    }),
    async handler(p) {
      const o = s.owner(p.ctrlr);
      if (o.kind !== 'scsi') throw RpcError.errno('EINVAL', `${p.ctrlr} is not a vhost-scsi controller`);
      return ctl.call(o.reactor, vhostAddTarget, p);
    },
  });
  add({
    name: 'vhost_scsi_controller_remove_target',
    description: 'Remove a SCSI target from a vhost-scsi controller (the guest is told)',
    positional: ['ctrlr', 'scsi_target_num'],
    params: obj({ ctrlr: req(ctrlrName()), scsi_target_num: req(int({ min: 0, max: 7 })) }),
    async handler(p) {
      const o = s.owner(p.ctrlr);
      if (o.kind !== 'scsi') throw RpcError.errno('EINVAL', `${p.ctrlr} is not a vhost-scsi controller`);
      await ctl.call(o.reactor, vhostRemoveTarget, p);
      return true;
    },
  });
  add({
    name: 'vhost_start_scsi_controller',
    description: 'Start serving a vhost-scsi controller created with delay',
    positional: ['ctrlr'],
    params: obj({ ctrlr: req(ctrlrName()) }),
    async handler(p) {
      const o = s.owner(p.ctrlr);
      if (o.kind !== 'scsi') throw RpcError.errno('EINVAL', `${p.ctrlr} is not a vhost-scsi controller`);
      await ctl.call(o.reactor, vhostStart, p);
      return true;
    },
  });

  return {
    name: 'vhost_scsi',
    dependsOn: ['bdev'],
    methods,
    writeConfig: () => s.writeConfig('scsi'),
  };
}
