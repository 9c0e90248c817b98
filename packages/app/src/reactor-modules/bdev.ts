// Imported by every reactor worker of the target app: the control operations behind the bdev RPCs.
// The main thread validates params, runs a create on reactor 0, then replays it on the others.
import {
  type Bdev,
  BdevError,
  bdevEnableHistogram,
  bdevExamine,
  bdevGetAll,
  bdevGetByName,
  bdevGetChannelIostats,
  bdevGetIostat,
  bdevInfoJson,
  bdevSetQosLimit,
  bdevWaitForExamine,
  histogramSpdkJson,
  type IoStatJson,
  setBdevOptions,
} from '@storkit/bdev';
import * as m from '@storkit/bdev/modules';
import { tickRate } from '@storkit/native';
import { type Control, defineControl } from '@storkit/reactor';

import {
  bdevChannelIostat,
  bdevCreate,
  bdevDelete,
  bdevExamineOp,
  bdevGetBdevs,
  bdevGetHistogram,
  bdevHistogram,
  bdevIostat,
  bdevRaidAddBaseBdev,
  bdevRaidGetBdevs,
  bdevRaidRemoveBaseBdev,
  bdevSetOptions,
  bdevSetQos,
  bdevUpdate,
  bdevWaitExamine,
  type Created,
} from '../controls/bdev.js';

/** A create: answers with the name(s) and the params to replay on the other reactors. */
function creates<P>(op: Control<P, Created<P>>, fn: (p: P) => Created<P>): void {
  defineControl(op, (p, done) => done(null, fn(p)));
}

function one<P>(c: { name: string; replay: P }): Created<P> {
  return { names: [c.name], replay: c.replay };
}

function file<P>(c: m.FileCreated<P>): Created<P> {
  return { names: [c.name], replay: c.replay, info: { direct: c.direct, fallback: c.fallback } };
}

creates(bdevCreate.bdev_malloc_create, (p) => one(m.bdevMallocCreate(p)));
creates(bdevCreate.bdev_null_create, (p) => one(m.bdevNullCreate(p)));
creates(bdevCreate.bdev_passthru_create, (p) => one(m.bdevPassthruCreate(p)));
creates(bdevCreate.bdev_delay_create, (p) => one(m.bdevDelayCreate(p)));
creates(bdevCreate.bdev_error_create, (p) => one(m.bdevErrorCreate(p)));
creates(bdevCreate.bdev_raid_create, (p) => one(m.bdevRaidCreate(p)));
creates(bdevCreate.bdev_split_create, (p) => ({ names: m.bdevSplitCreate(p), replay: p }));
creates(bdevCreate.bdev_aio_create, (p) => file(m.bdevAioCreate(p)));
creates(bdevCreate.bdev_uring_create, (p) => file(m.bdevUringCreate(p)));

/** A delete: answers once the bdev is gone on this reactor. */
function deletes<P>(op: Control<P, true>, fn: (p: P, done: () => void) => void): void {
  defineControl(op, (p, done) => fn(p, () => done(null, true)));
}

deletes(bdevDelete.bdev_malloc_delete, (p, d) => m.bdevMallocDelete(p, () => d()));
deletes(bdevDelete.bdev_null_delete, (p, d) => m.bdevNullDelete(p, () => d()));
deletes(bdevDelete.bdev_passthru_delete, m.bdevPassthruDelete);
deletes(bdevDelete.bdev_delay_delete, m.bdevDelayDelete);
deletes(bdevDelete.bdev_error_delete, m.bdevErrorDelete);
deletes(bdevDelete.bdev_raid_delete, m.bdevRaidDelete);
deletes(bdevDelete.bdev_split_delete, m.bdevSplitDelete);
deletes(bdevDelete.bdev_aio_delete, m.bdevAioDelete);
deletes(bdevDelete.bdev_uring_delete, m.bdevUringDelete);

defineControl(bdevUpdate.bdev_null_resize, (p, done) => {
  m.bdevNullResize(p);
  done(null, true);
});
defineControl(bdevUpdate.bdev_delay_update_latency, (p, done) => {
  m.bdevDelayUpdateLatency(p);
  done(null, true);
});
defineControl(bdevUpdate.bdev_error_inject_error, (p, done) => done(null, m.bdevErrorInjectError(p)));

function need(name: unknown): Bdev {
  const b = typeof name === 'string' ? bdevGetByName(name) : undefined;
  if (b === undefined) throw new BdevError('ENODEV', `no bdev named ${String(name)}`);
  return b;
}

/** bdev_raid_remove_base_bdev on this reactor: answers once the base has left its slot here. */
defineControl(bdevRaidRemoveBaseBdev, (p, done) => {
  m.bdevRaidRemoveBaseBdev(p, () => done(null, true));
});

defineControl(bdevGetBdevs, ({ name }, done) => {
  const list = name === undefined ? bdevGetAll() : [need(name)];
  done(null, list.map(bdevInfoJson));
});

defineControl(bdevIostat, ({ name }, done) => {
  const list = name === undefined ? [...bdevGetAll()] : [need(name)];
  const out: { name: string; stat: IoStatJson }[] = [];
  const next = (i: number) => {
    if (i === list.length) return done(null, out);
    bdevGetIostat(list[i], (stat) => {
      out.push({ name: list[i].name, stat: stat.toJSON() });
      next(i + 1);
    });
  };
  next(0);
});

defineControl(bdevChannelIostat, ({ name }, done) => {
  bdevGetChannelIostats(need(name), (channels) => done(null, channels));
});

defineControl(bdevGetHistogram, ({ name }, done) => {
  const bdev = need(name);
  if (!bdev.histogramEnabled) return done(null, null);
  bdevGetIostat(bdev, (_stat, hist) => done(null, hist ? histogramSpdkJson(hist.buckets, tickRate) : null));
});

defineControl(bdevSetQos, (p, done) => {
  const replay = bdevSetQosLimit(need(p.name), p, () => done(null, replay));
});

defineControl(bdevHistogram, ({ name, enable }, done) => {
  bdevEnableHistogram(need(name), enable, () => done(null, true));
});

defineControl(bdevRaidGetBdevs, (p, done) => done(null, m.bdevRaidGetBdevs(p)));

// On one reactor only: the rebuild runs here and reaches the other reactors' raid objects and
// channels through its own walks. Answers once the copy started, as SPDK's RPC does.
defineControl(bdevRaidAddBaseBdev, (p, done) => {
  m.bdevRaidAddBaseBdev(p, (err) => {
    if (err !== null) console.warn(`bdev_raid_add_base_bdev: ${err.message}`);
  });
  done(null, true);
});

defineControl(bdevSetOptions, (p, done) => {
  setBdevOptions(p);
  done(null, true);
});

defineControl(bdevWaitExamine, (_p, done) => bdevWaitForExamine(() => done(null, true)));

defineControl(bdevExamineOp, (p, done) => {
  bdevExamine(p.name);
  done(null, true);
});
