// Imported by every reactor worker of the target app, before the targets that take data buffers
// (NVMe-oF, iSCSI): this reactor's iobuf pool, made with the main thread's iobuf_set_options at
// start ('iobuf.start'), each reactor holding its share of the counts. Counted by 'iobuf.stats'.
import { IobufPool, iobufOptions } from '@storkit/block';
import { defineControl } from '@storkit/reactor';

import { iobufStart, iobufStats } from '../controls/iobuf.js';

let pool: IobufPool | null = null;
let options = iobufOptions();
let share = 1;

defineControl(iobufStart, (p, done) => {
  if (pool !== null) {
    done(Object.assign(new Error('iobuf: the pool is made already'), { code: 'EBUSY' }));
    return;
  }
  options = iobufOptions(p.options);
  share = 1 / Math.max(1, p.reactors);
  done(null, true);
});

defineControl(iobufStats, (_p, done) => done(null, pool?.stats() ?? []));

/** This reactor's pool (made on first use, with the options the start gave). */
export function reactorIobuf(): IobufPool {
  if (pool === null) pool = new IobufPool(options, share);
  return pool;
}
