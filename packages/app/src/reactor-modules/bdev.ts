// Imported by every reactor worker of the target app: the control operations behind the bdev RPCs.
// The main thread validates params, runs a create on reactor 0, then replays it on the others.
import {
  type Bdev,
  BdevError,
  bdevEnableHistogram,
  bdevGetAll,
  bdevGetByName,
  bdevGetIostat,
  bdevInfoJson,
  bdevSetQosLimit,
  histogramSpdkJson,
  type QosParams,
  setBdevOptions,
} from '@storkit/bdev';
import * as m from '@storkit/bdev/modules';
import { tickRate } from '@storkit/native';
import { defineControl } from '@storkit/reactor';

type Done = (err: Error | null, value?: unknown) => void;
type P = Record<string, unknown>;

/** Create functions by RPC method: each returns the name(s) and the params to replay elsewhere. */
const CREATE: Record<string, (p: P) => { names: string[]; replay: P; info?: P }> = {
  bdev_malloc_create: (p) => one(m.bdevMallocCreate(p as never)),
  bdev_null_create: (p) => one(m.bdevNullCreate(p as never)),
  bdev_passthru_create: (p) => one(m.bdevPassthruCreate(p as never)),
  bdev_delay_create: (p) => one(m.bdevDelayCreate(p as never)),
  bdev_error_create: (p) => one(m.bdevErrorCreate(p as never)),
  bdev_raid_create: (p) => one(m.bdevRaidCreate(p as never)),
  bdev_split_create: (p) => ({ names: m.bdevSplitCreate(p as never), replay: p }),
  bdev_aio_create: (p) => file(m.bdevAioCreate(p as never)),
  bdev_uring_create: (p) => file(m.bdevUringCreate(p as never)),
};

function one(c: { name: string; replay: unknown }) {
  return { names: [c.name], replay: c.replay as P };
}

function file(c: m.FileCreated<unknown>) {
  return { names: [c.name], replay: c.replay as P, info: { direct: c.direct, fallback: c.fallback } };
}

/** Delete functions by RPC method; all complete through `done`. */
const DELETE: Record<string, (p: P, done: () => void) => void> = {
  bdev_malloc_delete: (p, d) => m.bdevMallocDelete(p as never, () => d()),
  bdev_null_delete: (p, d) => m.bdevNullDelete(p as never, () => d()),
  bdev_passthru_delete: (p, d) => m.bdevPassthruDelete(p as never, d),
  bdev_delay_delete: (p, d) => m.bdevDelayDelete(p as never, d),
  bdev_error_delete: (p, d) => m.bdevErrorDelete(p as never, d),
  bdev_raid_delete: (p, d) => m.bdevRaidDelete(p as never, d),
  bdev_split_delete: (p, d) => m.bdevSplitDelete(p as never, d),
  bdev_aio_delete: (p, d) => m.bdevAioDelete(p as never, d),
  bdev_uring_delete: (p, d) => m.bdevUringDelete(p as never, d),
};

/** Updates applied the same way on every reactor. */
const UPDATE: Record<string, (p: P) => unknown> = {
  bdev_null_resize: (p) => m.bdevNullResize(p as never),
  bdev_delay_update_latency: (p) => m.bdevDelayUpdateLatency(p as never),
  bdev_error_inject_error: (p) => m.bdevErrorInjectError(p as never),
};

function need(name: unknown): Bdev {
  const b = typeof name === 'string' ? bdevGetByName(name) : undefined;
  if (b === undefined) throw new BdevError('ENODEV', `no bdev named ${String(name)}`);
  return b;
}

defineControl('bdev.create', (arg, done: Done) => {
  const { method, params } = arg as { method: string; params: P };
  const fn = CREATE[method];
  if (!fn) throw new BdevError('EINVAL', `unknown bdev create method ${method}`);
  done(null, fn(params));
});

defineControl('bdev.delete', (arg, done: Done) => {
  const { method, params } = arg as { method: string; params: P };
  const fn = DELETE[method];
  if (!fn) throw new BdevError('EINVAL', `unknown bdev delete method ${method}`);
  fn(params, () => done(null, true));
});

defineControl('bdev.update', (arg, done: Done) => {
  const { method, params } = arg as { method: string; params: P };
  const fn = UPDATE[method];
  if (!fn) throw new BdevError('EINVAL', `unknown bdev update method ${method}`);
  done(null, fn(params) ?? true);
});

/** bdev_raid_remove_base_bdev on this reactor: answers once the base has left its slot here. */
defineControl('bdev.raid_remove_base_bdev', (arg, done: Done) => {
  m.bdevRaidRemoveBaseBdev(arg as never, () => done(null, true));
});

defineControl('bdev.get_bdevs', (arg, done: Done) => {
  const { name } = (arg ?? {}) as { name?: string };
  const list = name === undefined ? bdevGetAll() : [need(name)];
  done(null, list.map(bdevInfoJson));
});

defineControl('bdev.iostat', (arg, done: Done) => {
  const { name } = (arg ?? {}) as { name?: string };
  const list = name === undefined ? [...bdevGetAll()] : [need(name)];
  const out: P[] = [];
  const next = (i: number) => {
    if (i === list.length) return done(null, out);
    bdevGetIostat(list[i], (stat) => {
      out.push({ name: list[i].name, stat: stat.toJSON() });
      next(i + 1);
    });
  };
  next(0);
});

defineControl('bdev.get_histogram', (arg, done: Done) => {
  const { name } = arg as { name: string };
  const bdev = need(name);
  if (!bdev.histogramEnabled) return done(null, null);
  bdevGetIostat(bdev, (_stat, hist) => done(null, hist ? histogramSpdkJson(hist.buckets, tickRate) : null));
});

defineControl('bdev.set_qos', (arg, done: Done) => {
  const p = arg as QosParams;
  const replay = bdevSetQosLimit(need(p.name), p, () => done(null, replay));
});

defineControl('bdev.histogram', (arg, done: Done) => {
  const { name, enable } = arg as { name: string; enable: boolean };
  bdevEnableHistogram(need(name), enable, () => done(null, true));
});

defineControl('bdev.raid_get_bdevs', (arg, done: Done) => done(null, m.bdevRaidGetBdevs(arg as never)));

// On one reactor only: the rebuild runs here and reaches the other reactors' raid objects and
// channels through its own walks. Answers once the copy started, as SPDK's RPC does.
defineControl('bdev.raid_add_base_bdev', (arg, done: Done) => {
  m.bdevRaidAddBaseBdev(arg as never, (err) => {
    if (err !== null) console.warn(`bdev_raid_add_base_bdev: ${err.message}`);
  });
  done(null, true);
});

defineControl('bdev.set_options', (arg, done: Done) => {
  setBdevOptions(arg as { bdev_io_cache_size?: number });
  done(null, true);
});
