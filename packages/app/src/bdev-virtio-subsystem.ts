// The virtio bdev module's RPCs on the main thread (SPDK's bdev_virtio_attach_controller with
// trtype "user" and dev_type "blk", bdev_virtio_detach_controller, bdev_virtio_get_devices).
// Each attached device gets an owner reactor (round robin) holding the one vhost-user connection;
// the bdev is then created on every other reactor, forwarding to the owner
// (reactor-modules/virtio.ts). Saved in the `bdev` config section, as SPDK does (virtio devices
// are base bdevs), so a saved config loads in spdk_tgt; as there, a virtio bdev over one of this
// target's own vhost controllers does not reload (bdevs are created before vhost controllers).
import { int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { type VirtioInfo, virtioAttach, virtioDetach, virtioJoin } from './controls/virtio.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

interface Attached {
  id: number;
  owner: number;
  /** The attach params as given (written back by save_config). */
  params: {
    name: string;
    trtype: string;
    traddr: string;
    dev_type: string;
    vq_count?: number;
    vq_size?: number;
  };
  info: VirtioInfo;
}

export function bdevVirtioSubsystem(ctl: ReactorControl): AppSubsystem {
  const attached = new Map<string, Attached>();
  const pending = new Set<string>();
  let nextId = 1;
  let nextOwner = 0;
  const { methods, add } = methodList();

  add({
    name: 'bdev_virtio_attach_controller',
    description: 'Attach a vhost-user-blk device (trtype user, traddr = its socket) as bdev <name>',
    positional: ['name'],
    params: obj({
      name: req(str({ minLength: 1, description: 'bdev name' })),
      trtype: req(
        str({ enum: ['user'], ignoreCase: true, description: 'transport: user (vhost-user socket)' }),
      ),
      traddr: req(
        str({ minLength: 1, maxLength: 107, description: 'socket path of the vhost-user-blk device' }),
      ),
      dev_type: req(str({ enum: ['blk'], description: 'device type: blk' })),
      vq_count: opt(int({ min: 1, max: 16, description: 'request queues (default 1)' })),
      vq_size: opt(int({ min: 2, max: 1024, description: 'ring size, a power of two (default 128)' })),
    }),
    async handler(p) {
      const vqSize = p.vq_size ?? 128;
      if ((vqSize & (vqSize - 1)) !== 0)
        throw RpcError.invalidParams(`vq_size ${vqSize} is not a power of two`);
      if (attached.has(p.name) || pending.has(p.name))
        throw RpcError.errno('EEXIST', `virtio device ${p.name} already exists`);
      const id = nextId++;
      const owner = nextOwner % Math.max(1, ctl.count);
      pending.add(p.name);
      try {
        const info = await ctl.call(owner, virtioAttach, {
          id,
          name: p.name,
          traddr: p.traddr,
          vq_count: p.vq_count ?? 1,
          vq_size: vqSize,
          reactors: ctl.count,
        });
        const done = [owner];
        try {
          for (let i = 0; i < ctl.count; i++) {
            if (i === owner) continue;
            await ctl.call(i, virtioJoin, info);
            done.push(i);
          }
        } catch (e) {
          for (const i of done.reverse()) await ctl.call(i, virtioDetach, { id }).catch(() => {});
          throw e;
        }
        nextOwner++;
        attached.set(p.name, { id, owner, params: { ...p }, info });
      } finally {
        pending.delete(p.name);
      }
      return [p.name];
    },
  });
  add({
    name: 'bdev_virtio_detach_controller',
    description:
      'Detach a virtio device (its bdev is unregistered on every reactor, then the connection closes)',
    positional: ['name'],
    params: obj({ name: req(str({ minLength: 1 })) }),
    async handler(p) {
      const a = attached.get(p.name);
      if (a === undefined) throw RpcError.errno('ENODEV', `no virtio device ${p.name}`);
      attached.delete(p.name);
      // Forwarding reactors first, the owner (which hangs up) last.
      for (let i = 0; i < ctl.count; i++) if (i !== a.owner) await ctl.call(i, virtioDetach, { id: a.id });
      await ctl.call(a.owner, virtioDetach, { id: a.id });
      return true;
    },
  });
  add({
    name: 'bdev_virtio_get_devices',
    description: 'List attached virtio devices',
    params: obj({}),
    handler: () =>
      [...attached.entries()].map(([name, a]) => ({
        name,
        bdev_name: name,
        trtype: 'user',
        traddr: a.params.traddr,
        dev_type: 'blk',
        vq_count: a.info.vq_count,
        vq_size: a.info.vq_size,
        owner_reactor: a.owner,
        block_size: a.info.blockSize,
        num_blocks: a.info.numBlocks,
      })),
  });

  return {
    name: 'bdev_virtio',
    configSection: 'bdev',
    dependsOn: ['bdev'],
    methods,
    async writeConfig(): Promise<ConfigEntry[]> {
      return [...attached.values()].map((a) => ({
        method: 'bdev_virtio_attach_controller',
        params: { ...a.params },
      }));
    },
  };
}
