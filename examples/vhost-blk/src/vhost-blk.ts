// vhost-user-blk disks for QEMU guests, served from your own process with @storkit/app's public API
// alone. `Target` starts one pinned reactor per core of a mask; each controller lives on one reactor
// (its cpumask): its socket, the guest's memory (mapped from the fds QEMU sends) and its virtqueue
// pollers all stay on that core. One controller per reactor here, each with a RAM disk of its own:
// two VMs on two cores share nothing.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger, Target } from '@storkit/app';

export interface VhostBlkOptions {
  /** Core mask, SPDK style (`0x3`, `[0,1]`): one reactor, and one controller, per core. */
  mask: string;
  /** Size of each RAM disk (a malloc bdev) in MiB. */
  mib: number;
  /** Directory of the controllers' sockets (SPDK's -S); default: a temp dir. */
  socketDir?: string;
  /** Request queues each controller offers (QEMU's num-queues may not exceed it). */
  queues: number;
}

export interface Controller {
  name: string;
  socket: string;
  bdev: string;
  core: number;
  /** QEMU arguments that attach this disk (the guest's memory must be shared: memfd, share=on). */
  qemu: string;
}

export interface RunningVhostBlk {
  target: Target;
  controllers: Controller[];
  socketDir: string;
}

export async function startVhostBlk(o: VhostBlkOptions): Promise<RunningVhostBlk> {
  const socketDir = o.socketDir ?? mkdtempSync(join(tmpdir(), 'vhost-blk-'));
  const target = new Target({
    mask: o.mask,
    rpcSocket: join(socketDir, 'rpc.sock'),
    vhostDir: socketDir,
    log: new Logger('warn'),
  });
  await target.start();
  const controllers: Controller[] = [];
  try {
    for (const [i, core] of (target.app?.cores ?? []).entries()) {
      const bdev = `Malloc${i}`;
      const name = `vhost.${i}`;
      await target.call('bdev_malloc_create', {
        name: bdev,
        num_blocks: (o.mib << 20) / 512,
        block_size: 512,
      });
      await target.call('vhost_create_blk_controller', {
        ctrlr: name,
        dev_name: bdev,
        cpumask: `0x${(1 << core).toString(16)}`,
        num_queues: o.queues,
      });
      const [c] = await target.call<{ reactor_core: number; socket: string }[]>('vhost_get_controllers', {
        name,
      });
      const socket = join(socketDir, name);
      controllers.push({
        name,
        socket,
        bdev,
        core: c.reactor_core,
        qemu: `-chardev socket,id=vhost${i},path=${socket} -device vhost-user-blk-pci,chardev=vhost${i},num-queues=${o.queues}`,
      });
    }
  } catch (e) {
    await target.stop(1);
    throw e;
  }
  return { target, controllers, socketDir };
}

/** The memory options every guest of a vhost-user device needs (the backend maps guest memory). */
export const QEMU_MEMORY =
  '-m 512 -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem';
