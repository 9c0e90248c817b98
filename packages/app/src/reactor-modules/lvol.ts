// Imported by every reactor worker of the target app: the lvol bdev module (lvstores found by
// examine) and, on reactor 0 (the lvstores' owner), the control operations behind bdev_lvol_*.

import { registerConfigMethod } from '@storkit/bdev/perf';
import * as l from '@storkit/lvol';
import { defineControl, defineSubsystem, getThread } from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';

import { lvolGetLvols, lvolGetLvstores, lvolOps } from '../controls/lvol.js';

l.registerLvolModule();

defineControl(lvolOps.bdev_lvol_create_lvstore, (p, done) =>
  l.bdevLvolCreateLvstore(p, (e, v) => done(e, v)),
);
defineControl(lvolOps.bdev_lvol_delete_lvstore, (p, done) =>
  l.bdevLvolDeleteLvstore(p, (e, v) => done(e, v)),
);
defineControl(lvolOps.bdev_lvol_rename_lvstore, (p, done) =>
  l.bdevLvolRenameLvstore(p, (e, v) => done(e, v)),
);
defineControl(lvolOps.bdev_lvol_grow_lvstore, (p, done) => l.bdevLvolGrowLvstore(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_create, (p, done) => l.bdevLvolCreate(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_snapshot, (p, done) => l.bdevLvolSnapshot(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_clone, (p, done) => l.bdevLvolClone(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_clone_bdev, (p, done) => l.bdevLvolCloneBdev(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_rename, (p, done) => l.bdevLvolRename(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_resize, (p, done) => l.bdevLvolResize(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_set_read_only, (p, done) => l.bdevLvolSetReadOnly(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_delete, (p, done) => l.bdevLvolDelete(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_inflate, (p, done) => l.bdevLvolInflate(p, (e, v) => done(e, v)));
defineControl(lvolOps.bdev_lvol_decouple_parent, (p, done) =>
  l.bdevLvolDecoupleParent(p, (e, v) => done(e, v)),
);
defineControl(lvolGetLvstores, (p, done) => done(null, l.bdevLvolGetLvstores(p)));
defineControl(lvolGetLvols, (p, done) => done(null, l.bdevLvolGetLvols(p)));

// Shutdown, after the targets' fini and before the bdev layer's (definition order): every reactor
// drops its own share of each lvstore, reactor 0 unloads them cleanly. No message crosses reactors,
// which are finishing too.
defineSubsystem({
  name: 'lvol',
  fini(done) {
    const t = l.lvolShutdownThread();
    if (t === null) return done();
    t.sendMsg(() => l.lvolShutdown(done));
  },
});

// bdevperf and dd (storkit bdevperf/dd --json) load the same methods from their config: reactor 0
// (the owner) runs them and tells the others; nothing is replayed.
const perfMethod = <P>(name: string, f: (p: P, done: (e: Error | null, v?: unknown) => void) => void) =>
  registerConfigMethod(name, (p) => {
    const t = getThread();
    return new Promise((res, rej) => {
      f(p as P, (e) => {
        setCurrentThread(t);
        if (e !== null) rej(e);
        else res(null);
      });
    });
  });
perfMethod('bdev_lvol_create_lvstore', l.bdevLvolCreateLvstore);
perfMethod('bdev_lvol_create', l.bdevLvolCreate);
perfMethod('bdev_lvol_snapshot', l.bdevLvolSnapshot);
perfMethod('bdev_lvol_clone', l.bdevLvolClone);
perfMethod('bdev_lvol_clone_bdev', l.bdevLvolCloneBdev);
