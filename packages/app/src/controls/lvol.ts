// The lvol module's control operations, declared once: lvol-subsystem.ts (main thread) calls them
// on reactor 0 (the lvstores' owner), reactor-modules/lvol.ts defines them there. Params and
// answers are @storkit/lvol's, with SPDK's names.
import type * as l from '@storkit/lvol';
import { declareControl } from '@storkit/reactor';

type Arg<F extends (...a: never[]) => unknown> = Parameters<F>[0];
/** The value an SPDK-style `(params, done(err, value))` function answers. */
type Answer<F> = F extends (p: never, done: (err: Error | null, value?: infer R) => void) => void ? R : never;
const op = <F extends (p: never, done: never) => void>(name: string) =>
  declareControl<Arg<F>, Answer<F>>(`lvol.${name}`);

export const lvolOps = {
  bdev_lvol_create_lvstore: op<typeof l.bdevLvolCreateLvstore>('create_lvstore'),
  bdev_lvol_delete_lvstore: op<typeof l.bdevLvolDeleteLvstore>('delete_lvstore'),
  bdev_lvol_rename_lvstore: op<typeof l.bdevLvolRenameLvstore>('rename_lvstore'),
  bdev_lvol_grow_lvstore: op<typeof l.bdevLvolGrowLvstore>('grow_lvstore'),
  bdev_lvol_create: op<typeof l.bdevLvolCreate>('create'),
  bdev_lvol_snapshot: op<typeof l.bdevLvolSnapshot>('snapshot'),
  bdev_lvol_clone: op<typeof l.bdevLvolClone>('clone'),
  bdev_lvol_clone_bdev: op<typeof l.bdevLvolCloneBdev>('clone_bdev'),
  bdev_lvol_rename: op<typeof l.bdevLvolRename>('rename'),
  bdev_lvol_resize: op<typeof l.bdevLvolResize>('resize'),
  bdev_lvol_set_read_only: op<typeof l.bdevLvolSetReadOnly>('set_read_only'),
  bdev_lvol_delete: op<typeof l.bdevLvolDelete>('delete'),
  bdev_lvol_inflate: op<typeof l.bdevLvolInflate>('inflate'),
  bdev_lvol_decouple_parent: op<typeof l.bdevLvolDecoupleParent>('decouple_parent'),
};

export const lvolGetLvstores = declareControl<Arg<typeof l.bdevLvolGetLvstores>, l.LvstoreJson[]>(
  'lvol.get_lvstores',
);
export const lvolGetLvols = declareControl<Arg<typeof l.bdevLvolGetLvols>, l.LvolJson[]>('lvol.get_lvols');
