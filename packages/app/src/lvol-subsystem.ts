// SPDK's bdev_lvol_* RPCs on the main thread: each runs on reactor 0, the lvstores' owner, which
// tells the other reactors. Lvstores and lvols are not written by save_config (as in SPDK: they
// are found again by examine when their base bdev is created); a config that calls these methods
// still loads. At shutdown each reactor drops its share and reactor 0 unloads every lvstore cleanly
// (reactor-modules/lvol.ts).
import { bool, int, methodList, obj, opt, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { lvolGetLvols, lvolGetLvstores, lvolOps } from './controls/lvol.js';
import type { AppSubsystem } from './subsystem.js';

const name = (d: string) => str({ minLength: 1, description: d });
const uuid = () =>
  str({ pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, description: 'UUID' });
const clear = () => str({ enum: ['none', 'unmap', 'write_zeroes'], description: 'clear method' });

export function lvolSubsystem(ctl: ReactorControl): AppSubsystem {
  const { methods, add } = methodList();

  add({
    name: 'bdev_lvol_create_lvstore',
    description: 'Create a logical volume store on a bdev; answers its UUID',
    positional: ['bdev_name', 'lvs_name'],
    params: obj({
      bdev_name: req(name('base bdev')),
      lvs_name: req(name('lvstore name')),
      cluster_sz: opt(int({ min: 4096, description: 'cluster size in bytes (default 4 MiB)' })),
      clear_method: opt(clear()),
      num_md_pages_per_cluster_ratio: opt(
        int({ min: 1, max: 1000, description: 'metadata pages per 100 clusters' }),
      ),
    }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_create_lvstore, p),
  });
  add({
    name: 'bdev_lvol_rename_lvstore',
    description: 'Rename a logical volume store',
    positional: ['old_name', 'new_name'],
    params: obj({ old_name: req(name('lvstore name')), new_name: req(name('new lvstore name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_rename_lvstore, p),
  });
  add({
    name: 'bdev_lvol_grow_lvstore',
    description: 'Grow a logical volume store to fill its (grown) base bdev',
    params: obj({ uuid: opt(uuid()), lvs_name: opt(name('lvstore name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_grow_lvstore, p),
  });
  add({
    name: 'bdev_lvol_delete_lvstore',
    description: 'Delete a logical volume store and its volumes',
    params: obj({ uuid: opt(uuid()), lvs_name: opt(name('lvstore name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_delete_lvstore, p),
  });
  add({
    name: 'bdev_lvol_get_lvstores',
    description: 'List logical volume stores',
    params: obj({ uuid: opt(uuid()), lvs_name: opt(name('lvstore name')) }),
    handler: (p) => ctl.call(0, lvolGetLvstores, p),
  });
  add({
    name: 'bdev_lvol_create',
    description: 'Create a logical volume (size_in_mib rounded up to clusters); answers its bdev name',
    positional: ['lvol_name', 'size_in_mib'],
    params: obj({
      lvol_name: req(name('lvol name')),
      size_in_mib: req(int({ min: 0, description: 'size in MiB' })),
      thin_provision: opt(bool()),
      uuid: opt(uuid()),
      lvs_name: opt(name('lvstore name')),
      clear_method: opt(clear()),
    }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_create, p),
  });
  add({
    name: 'bdev_lvol_snapshot',
    description: 'Snapshot a logical volume; answers the snapshot bdev name',
    positional: ['lvol_name', 'snapshot_name'],
    params: obj({ lvol_name: req(name('lvol bdev')), snapshot_name: req(name('snapshot name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_snapshot, p),
  });
  add({
    name: 'bdev_lvol_clone',
    description: 'Clone a snapshot; answers the clone bdev name',
    positional: ['snapshot_name', 'clone_name'],
    params: obj({ snapshot_name: req(name('snapshot bdev')), clone_name: req(name('clone name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_clone, p),
  });
  add({
    name: 'bdev_lvol_clone_bdev',
    description: 'Clone a bdev (its external snapshot) into an lvstore; answers the clone bdev name',
    positional: ['bdev', 'lvs_name', 'clone_name'],
    params: obj({
      bdev: req(name('bdev to clone')),
      lvs_name: req(name('lvstore name')),
      clone_name: req(name('clone name')),
    }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_clone_bdev, p),
  });
  add({
    name: 'bdev_lvol_rename',
    description: 'Rename a logical volume',
    positional: ['old_name', 'new_name'],
    params: obj({ old_name: req(name('lvol bdev')), new_name: req(name('new lvol name')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_rename, p),
  });
  add({
    name: 'bdev_lvol_resize',
    description: 'Resize a logical volume (size_in_mib rounded up to clusters)',
    positional: ['name', 'size_in_mib'],
    params: obj({ name: req(name('lvol bdev')), size_in_mib: req(int({ min: 0 })) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_resize, p),
  });
  add({
    name: 'bdev_lvol_set_read_only',
    description: 'Mark a logical volume read-only',
    positional: ['name'],
    params: obj({ name: req(name('lvol bdev')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_set_read_only, p),
  });
  add({
    name: 'bdev_lvol_delete',
    description: 'Delete a logical volume (a snapshot with more than one clone is refused)',
    positional: ['name'],
    params: obj({ name: req(name('lvol bdev')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_delete, p),
  });
  add({
    name: 'bdev_lvol_inflate',
    description: 'Allocate every cluster of a logical volume and drop its snapshot',
    positional: ['name'],
    params: obj({ name: req(name('lvol bdev')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_inflate, p),
  });
  add({
    name: 'bdev_lvol_decouple_parent',
    description: "Copy what a clone reads from its snapshot and read through the snapshot's snapshot",
    positional: ['name'],
    params: obj({ name: req(name('lvol bdev')) }),
    handler: (p) => ctl.call(0, lvolOps.bdev_lvol_decouple_parent, p),
  });
  add({
    name: 'bdev_lvol_get_lvols',
    description: 'List logical volumes',
    params: obj({ lvs_uuid: opt(uuid()), lvs_name: opt(name('lvstore name')) }),
    handler: (p) => ctl.call(0, lvolGetLvols, p),
  });

  return {
    name: 'bdev_lvol',
    configSection: 'bdev',
    dependsOn: ['bdev'],
    methods,
    async writeConfig() {
      return [];
    },
  };
}
