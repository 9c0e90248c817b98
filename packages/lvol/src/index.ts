// @storkit/lvol: SPDK's logical volumes (lib/lvol + module/bdev/lvol). Call registerLvolModule() in
// every reactor: lvstores are then found by examine. The bdev_lvol_* functions run on reactor 0's
// app thread, the lvstores' owner.
export { LvolError, type LvolErrorCode } from './errors.js';
export { type ClearMethodName, Lvol, Lvs, type LvsInitOptions } from './lvs.js';
export { attached, lvolModule, registerLvolModule, unregisterLvolModule } from './module.js';
export { loadLvs, lvolInfo, lvolShutdown, lvolShutdownThread, stores, unloadLvs } from './owner.js';
export {
  bdevLvolClone,
  bdevLvolCloneBdev,
  bdevLvolCreate,
  bdevLvolCreateLvstore,
  bdevLvolDecoupleParent,
  bdevLvolDelete,
  bdevLvolDeleteLvstore,
  bdevLvolGetLvols,
  bdevLvolGetLvstores,
  bdevLvolGrowLvstore,
  bdevLvolInflate,
  bdevLvolRename,
  bdevLvolRenameLvstore,
  bdevLvolResize,
  bdevLvolSetReadOnly,
  bdevLvolSnapshot,
  type CreateLvstoreParams,
  type CreateParams,
  findLvol,
  type LvolJson,
  type LvstoreJson,
} from './rpc.js';
