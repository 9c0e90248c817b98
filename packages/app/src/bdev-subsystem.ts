// The bdev subsystem on the main thread: RPC schemas (SPDK's names and params), creation replayed
// on every reactor with rollback, and a journal of what was created for save_config.
import type { IoStatJson } from '@storkit/bdev';
import type { Control } from '@storkit/reactor';
import {
  type AnyMethodDef,
  arr,
  bool,
  type Fits,
  inert,
  int,
  type MethodDef,
  type MethodSpec,
  methodList,
  type ObjectSchema,
  obj,
  opt,
  RpcError,
  req,
  str,
  withoutInert,
} from '@storkit/rpc';

import type { ReactorControl } from './control.js';
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
} from './controls/bdev.js';
import type { BdevMethods } from './plugin.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

/** bdev_ios a channel makes when bdev_io_cache_size is not set (@storkit/bdev's default). */
const BDEV_IO_CACHE_DEFAULT = 1024;

/** Params as saved by save_config (plain JSON). */
type Saved = Record<string, unknown>;

const name = (d = 'bdev name') => str({ minLength: 1, description: d });
const uuid = () =>
  str({ pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, description: 'UUID' });
const blockSize = () => int({ min: 512, max: 65536, description: 'block size in bytes (power of two)' });

/** Runs a create on every reactor (see bdevSubsystem) and answers the created names. */
type Creator = <P>(method: string, op: Control<P, Created<P>>, params: P) => Promise<string[]>;

/**
 * A create method: its schema (whose validated params must fit the module's own params type), and
 * which params are positional for `storkit rpc`.
 */
function creator<P, S extends ObjectSchema>(
  op: Control<P, Created<P>>,
  spec: Omit<MethodSpec, 'params'> & { params: Fits<S, P> },
): (create: Creator) => AnyMethodDef {
  return (create): MethodDef<P> => ({
    ...spec,
    async handler(p) {
      // Parameters storkit accepts without acting on them stay out of the module's params.
      const names = await create(spec.name, op, withoutInert(spec.params, p));
      return spec.name === 'bdev_split_create' ? names : names[0];
    },
  });
}

const CREATES = [
  creator(bdevCreate.bdev_malloc_create, {
    name: 'bdev_malloc_create',
    description: 'Create a RAM disk shared by every reactor',
    positional: ['num_blocks', 'block_size'],
    params: obj({
      name: opt(name()),
      num_blocks: req(int({ min: 1, description: 'number of blocks' })),
      block_size: req(blockSize()),
      physical_block_size: opt(int({ min: 0 })),
      uuid: opt(uuid()),
      optimal_io_boundary: opt(int({ min: 0, description: 'split I/O at this many blocks' })),
      md_size: opt(int({ min: 0, max: 0, description: 'metadata size (not supported: 0)' })),
      md_interleave: opt(bool()),
      dif_type: opt(int({ min: 0, max: 0, description: 'DIF type (not supported: 0)' })),
      dif_is_head_of_md: opt(bool()),
      dif_pi_format: inert(int({ min: 0, max: 2, description: 'protection information format' }), 0),
      numa_id: inert(int({ min: -1, description: 'NUMA node of the memory (-1: any)' }), -1),
    }),
  }),
  creator(bdevCreate.bdev_null_create, {
    name: 'bdev_null_create',
    description: 'Create a null bdev (reads return zeroes, writes are dropped)',
    positional: ['name', 'num_blocks', 'block_size'],
    params: obj({
      name: req(name()),
      num_blocks: req(int({ min: 1 })),
      block_size: req(blockSize()),
      physical_block_size: opt(int({ min: 0 })),
      uuid: opt(uuid()),
      md_size: opt(int({ min: 0, max: 0 })),
      dif_type: opt(int({ min: 0, max: 0 })),
      dif_is_head_of_md: opt(bool()),
      dif_pi_format: inert(int({ min: 0, max: 2 }), 0),
      numa_id: inert(int({ min: -1 }), -1),
      preferred_write_alignment: inert(int({ min: 0 }), 0),
      preferred_write_granularity: inert(int({ min: 0 }), 0),
      optimal_write_size: inert(int({ min: 0 }), 0),
    }),
  }),
  creator(bdevCreate.bdev_aio_create, {
    name: 'bdev_aio_create',
    description: 'Create a file-backed bdev (io_uring, O_DIRECT where the filesystem allows)',
    positional: ['filename', 'name', 'block_size'],
    params: obj({
      filename: req(str({ minLength: 1 })),
      name: req(name()),
      block_size: opt(blockSize()),
      readonly: opt(bool()),
      fallocate: opt(bool()),
      uuid: opt(uuid()),
    }),
  }),
  creator(bdevCreate.bdev_uring_create, {
    name: 'bdev_uring_create',
    description: 'Create an io_uring file-backed bdev',
    positional: ['filename', 'name', 'block_size'],
    params: obj({
      filename: req(str({ minLength: 1 })),
      name: req(name()),
      block_size: opt(blockSize()),
      uuid: opt(uuid()),
    }),
  }),
  creator(bdevCreate.bdev_split_create, {
    name: 'bdev_split_create',
    description: 'Split a bdev into equal parts',
    positional: ['base_bdev', 'split_count'],
    params: obj({
      base_bdev: req(name('base bdev')),
      split_count: req(int({ min: 1, max: 1024 })),
      split_size_mb: opt(int({ min: 0 })),
    }),
  }),
  creator(bdevCreate.bdev_delay_create, {
    name: 'bdev_delay_create',
    description: 'Add latency (microseconds) to a bdev',
    positional: ['base_bdev_name', 'name'],
    params: obj({
      base_bdev_name: req(name('base bdev')),
      name: req(name()),
      avg_read_latency: req(int({ min: 0 })),
      p99_read_latency: req(int({ min: 0 })),
      avg_write_latency: req(int({ min: 0 })),
      p99_write_latency: req(int({ min: 0 })),
      uuid: opt(uuid()),
    }),
  }),
  creator(bdevCreate.bdev_error_create, {
    name: 'bdev_error_create',
    description: 'Create an error-injection bdev EE_<base_name> over a base bdev',
    positional: ['base_name'],
    params: obj({ base_name: req(name('base bdev')), uuid: opt(uuid()) }),
  }),
  creator(bdevCreate.bdev_passthru_create, {
    name: 'bdev_passthru_create',
    description: 'Create a pass-through bdev over a base bdev',
    positional: [],
    params: obj({ base_bdev_name: req(name('base bdev')), name: req(name()), uuid: opt(uuid()) }),
  }),
  creator(bdevCreate.bdev_raid_create, {
    name: 'bdev_raid_create',
    description: 'Create a RAID bdev (raid0, raid1, concat)',
    positional: [],
    params: obj({
      name: req(name()),
      raid_level: req(str({ enum: ['raid0', '0', 'raid1', '1', 'concat'], ignoreCase: true })),
      base_bdevs: req(arr(name('base bdev'), { minItems: 1 })),
      strip_size_kb: opt(int({ min: 0 })),
      uuid: opt(uuid()),
      superblock: opt(bool({ description: 'on-disk superblock (not supported: false)' })),
    }),
  }),
];

/** Deletes: the RPC's one param, which names the bdev (split: its base). */
const DELETES = [
  { method: 'bdev_malloc_delete', key: 'name', op: bdevDelete.bdev_malloc_delete },
  { method: 'bdev_null_delete', key: 'name', op: bdevDelete.bdev_null_delete },
  { method: 'bdev_aio_delete', key: 'name', op: bdevDelete.bdev_aio_delete },
  { method: 'bdev_uring_delete', key: 'name', op: bdevDelete.bdev_uring_delete },
  { method: 'bdev_split_delete', key: 'base_bdev', op: bdevDelete.bdev_split_delete },
  { method: 'bdev_delay_delete', key: 'name', op: bdevDelete.bdev_delay_delete },
  { method: 'bdev_error_delete', key: 'name', op: bdevDelete.bdev_error_delete },
  { method: 'bdev_passthru_delete', key: 'name', op: bdevDelete.bdev_passthru_delete },
  { method: 'bdev_raid_delete', key: 'name', op: bdevDelete.bdev_raid_delete },
] as const;

/** A delete method: its name, the one param that names the bdev, the control behind it. */
interface DeleteDef {
  readonly method: string;
  readonly key: 'name' | 'base_bdev';
  readonly op: Control<never, true>;
}
type DeleteParams = { name: string } | { base_bdev: string };

interface Journaled {
  method: string;
  /** Params to write back in save_config: what the user gave, plus the generated name and uuid. */
  params: Saved;
  names: string[];
  /** For split: the base the parts came from (bdev_split_delete names it). */
  base?: string;
  /** For raid: bases removed and not yet replaced by bdev_raid_add_base_bdev, oldest first. */
  removed?: string[];
}

/** storkit-internal handles (shared memory) never go into a saved config. */
function publicParams(p: object): Saved {
  return Object.fromEntries(Object.entries(p).filter(([k]) => !k.startsWith('storkit_')));
}

/**
 * The bdev subsystem; `plugins` are bdev modules from outside the app (see plugin.ts), whose create
 * and delete methods are served exactly like the built-in modules'.
 */
// biome-ignore lint/suspicious/noExplicitAny: each plugin module has its own params type
export function bdevSubsystem(ctl: ReactorControl, plugins: readonly BdevMethods<any>[] = []): AppSubsystem {
  const deletes: readonly DeleteDef[] = [
    ...DELETES,
    ...plugins.map((m) => ({ method: m.delete.name, key: 'name' as const, op: m.ops.delete })),
  ];
  const journal: Journaled[] = [];
  const qos = new Map<string, Saved>();
  /** Bdevs whose latency histogram is on (save_config writes bdev_enable_histogram after them). */
  const histograms = new Set<string>();
  let options: Saved | null = null;

  /** A delete's params for the bdev a create made. */
  const deleteParams = (d: DeleteDef, created: { names: string[]; base?: string }): DeleteParams =>
    d.key === 'base_bdev' ? { base_bdev: created.base ?? '' } : { name: created.names[0] };

  /** Run a delete on reactor i (its op takes whichever key it names). */
  const callDelete = (i: number, d: DeleteDef, p: DeleteParams) =>
    ctl.call(i, d.op as Control<DeleteParams, true>, p);

  /** Create on reactor 0, replay on the others; undo everywhere if any reactor fails. */
  async function create<P>(method: string, op: Control<P, Created<P>>, params: P): Promise<string[]> {
    const first = await ctl.call(0, op, params);
    const base =
      method === 'bdev_split_create' ? String((params as { base_bdev: string }).base_bdev) : undefined;
    const done: number[] = [0];
    try {
      for (let i = 1; i < ctl.count; i++) {
        await ctl.call(i, op, first.replay);
        done.push(i);
      }
    } catch (e) {
      const del = deletes.find((d) => d.method === method.replace(/_create$/, '_delete'));
      if (del)
        for (const i of done.reverse())
          await callDelete(i, del, deleteParams(del, { names: first.names, base })).catch(() => {});
      throw e;
    }
    journal.push({ method, params: publicParams(first.replay as object), names: first.names, base });
    return first.names;
  }

  /** The bdev_raid_create entry whose bases include `base`. */
  function raidOf(base: string): Journaled | undefined {
    return journal.find(
      (x) =>
        x.method === 'bdev_raid_create' &&
        (x.params.base_bdevs as string[]).includes(base) &&
        !x.removed?.includes(base),
    );
  }

  async function remove(d: DeleteDef, params: DeleteParams): Promise<void> {
    const errs: string[] = [];
    for (let i = ctl.count - 1; i >= 0; i--)
      await callDelete(i, d, params).catch((e: Error) => errs.push(e.message));
    // A failure on every reactor (e.g. ENODEV) is the user's error; partial failure is ours to report.
    if (errs.length === ctl.count) throw RpcError.errno('ENODEV', errs[0]);
    const v = 'base_bdev' in params ? params.base_bdev : params.name;
    const idx = journal.findIndex((c) =>
      d.key === 'base_bdev'
        ? c.base === v
        : c.names[0] === v && c.method.replace(/_create$/, '_delete') === d.method,
    );
    if (idx >= 0) {
      for (const n of journal[idx].names) {
        qos.delete(n);
        histograms.delete(n);
      }
      journal.splice(idx, 1);
    }
    if (errs.length) throw new RpcError(-5, `deleted on some reactors only: ${errs.join('; ')}`);
  }

  /** Apply on reactor 0, then on the others with the params it returns (shared state is set once). */
  async function broadcast<P>(op: Control<P, P | true>, params: P): Promise<void> {
    const first = await ctl.call(0, op, params);
    const replay = first === true ? params : first;
    for (let i = 1; i < ctl.count; i++) await ctl.call(i, op, replay);
  }

  const { methods, add } = methodList();
  for (const c of CREATES) methods.push(c(create));
  for (const m of plugins) {
    const def: MethodDef<unknown> = {
      ...m.create,
      handler: async (p) => (await create(m.create.name, m.ops.create, p))[0],
    };
    methods.push(def);
  }

  for (const d of deletes) {
    add({
      name: d.method,
      description: `Delete a bdev made by ${d.method.replace(/_delete$/, '_create')}`,
      positional: [d.key],
      params: obj({ [d.key]: req(name()) }),
      handler: (p) => remove(d, d.key === 'name' ? { name: p.name } : { base_bdev: p.base_bdev }),
    });
  }
  add({
    name: 'bdev_null_resize',
    description: 'Resize a null bdev (new_size in MiB)',
    positional: ['name', 'new_size'],
    params: obj({ name: req(name()), new_size: req(int({ min: 1 })) }),
    async handler(p) {
      await broadcast(bdevUpdate.bdev_null_resize, p);
      const c = journal.find((x) => x.method === 'bdev_null_create' && x.names[0] === p.name);
      if (c) c.params.num_blocks = (p.new_size * 1024 * 1024) / (c.params.block_size as number);
      return true;
    },
  });
  add({
    name: 'bdev_delay_update_latency',
    description: 'Change one latency of a delay bdev',
    positional: ['delay_bdev_name', 'latency_type', 'latency_us'],
    params: obj({
      delay_bdev_name: req(name()),
      latency_type: req(str({ enum: ['avg_read', 'p99_read', 'avg_write', 'p99_write'] })),
      latency_us: req(int({ min: 0 })),
    }),
    async handler(p) {
      await broadcast(bdevUpdate.bdev_delay_update_latency, p);
      const c = journal.find((x) => x.method === 'bdev_delay_create' && x.names[0] === p.delay_bdev_name);
      if (c) c.params[`${p.latency_type}_latency`] = p.latency_us;
      return true;
    },
  });
  add({
    name: 'bdev_error_inject_error',
    description: 'Make the next num I/Os of a type fail (or be corrupted) on an error bdev',
    positional: ['name', 'io_type', 'error_type'],
    params: obj({
      name: req(name()),
      io_type: req(str({ enum: ['all', 'read', 'write', 'unmap', 'flush', 'clear'] })),
      error_type: req(str({ enum: ['failure', 'pending', 'corrupt_data', 'nomem'] })),
      num: opt(int({ min: 0 })),
      corrupt_offset: opt(int({ min: 0 })),
      corrupt_value: opt(int({ min: 0, max: 255 })),
    }),
    handler: (p) => broadcast(bdevUpdate.bdev_error_inject_error, p),
  });
  add({
    name: 'bdev_raid_remove_base_bdev',
    description: 'Remove a base bdev from its RAID bdev',
    positional: ['name'],
    params: obj({ name: req(name()) }),
    async handler(p) {
      // Each reactor answers once the base has left its slot there (SPDK answers after removal).
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, bdevRaidRemoveBaseBdev, p);
      // save_config keeps the removed name in its slot (a raid1 needs both names to load); the
      // base added next takes the slot.
      const c = raidOf(p.name);
      if (c) (c.removed ??= []).push(p.name);
      return true;
    },
  });
  add({
    name: 'bdev_raid_add_base_bdev',
    description: 'Add a base bdev to a degraded raid1 and rebuild onto it',
    positional: ['base_bdev', 'raid_bdev'],
    params: obj({ base_bdev: req(name()), raid_bdev: req(name()) }),
    async handler(p) {
      const r = await ctl.call(0, bdevRaidAddBaseBdev, p);
      const c = journal.find((x) => x.method === 'bdev_raid_create' && x.names[0] === p.raid_bdev);
      const gone = c?.removed?.shift();
      if (c && gone !== undefined) {
        const bases = c.params.base_bdevs as string[];
        c.params.base_bdevs = bases.map((b) => (b === gone ? p.base_bdev : b));
      }
      return r;
    },
  });
  add({
    name: 'bdev_raid_get_bdevs',
    description: 'List RAID bdevs by category',
    positional: ['category'],
    params: obj({ category: opt(str({ enum: ['all', 'online', 'configuring', 'offline'] }), 'all') }),
    handler: (p) => ctl.call(0, bdevRaidGetBdevs, p),
  });
  add({
    name: 'bdev_get_bdevs',
    description: 'List bdevs (or one by name)',
    positional: ['name'],
    params: obj({
      name: opt(name()),
      timeout: opt(int({ min: 0, description: 'ms to wait for the bdev (storkit: 0 only)' })),
    }),
    handler: (p) => ctl.call(0, bdevGetBdevs, { name: p.name }),
  });
  add({
    name: 'bdev_get_iostat',
    description: 'I/O statistics of bdevs, summed over every channel on every reactor',
    positional: ['name'],
    params: obj({
      name: opt(name()),
      per_channel: opt(bool({ description: 'each open channel of the bdev (named by name) on its own' })),
    }),
    async handler(p) {
      if (p.per_channel === true) {
        // SPDK: per-channel statistics are of one bdev; without a name it is EINVAL.
        if (p.name === undefined)
          throw RpcError.errno('EINVAL', 'bdev_get_iostat: per_channel needs a bdev name');
        const channels = await ctl.call(0, bdevChannelIostat, { name: p.name });
        return {
          tick_rate: ctl.tickRate,
          ticks: ctl.ticks(),
          name: p.name,
          channels: channels.map((c) => ({ thread_id: c.threadId, ...iostatSpdkJson(c.stat) })),
        };
      }
      const list = await ctl.call(0, bdevIostat, { name: p.name });
      return {
        tick_rate: ctl.tickRate,
        ticks: ctl.ticks(),
        bdevs: list.map((b) => ({ name: b.name, ...iostatSpdkJson(b.stat) })),
      };
    },
  });
  add({
    name: 'bdev_set_qos_limit',
    description: 'Set QoS limits (0 = unlimited), enforced across every reactor',
    positional: ['name'],
    params: obj({
      name: req(name()),
      rw_ios_per_sec: opt(int({ min: 0 })),
      rw_mbytes_per_sec: opt(int({ min: 0 })),
      r_mbytes_per_sec: opt(int({ min: 0 })),
      w_mbytes_per_sec: opt(int({ min: 0 })),
    }),
    async handler(p) {
      const replay = await ctl.call(0, bdevSetQos, p);
      for (let i = 1; i < ctl.count; i++) await ctl.call(i, bdevSetQos, replay);
      qos.set(p.name, publicParams(p));
      return true;
    },
  });
  add({
    name: 'bdev_enable_histogram',
    description: 'Start or stop latency histograms for a bdev',
    positional: ['name'],
    params: obj({ name: req(name()), enable: req(bool()) }),
    async handler(p) {
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, bdevHistogram, p);
      if (p.enable) histograms.add(p.name);
      else histograms.delete(p.name);
      return true;
    },
  });
  add({
    name: 'bdev_get_histogram',
    description:
      "A bdev's latency histogram over every channel, as SPDK returns it: histogram (base64 of spdk_histogram_data's buckets), bucket_shift, tsc_rate",
    positional: ['name'],
    params: obj({ name: req(name()) }),
    async handler(p) {
      const h = await ctl.call(0, bdevGetHistogram, { name: p.name });
      if (h === null)
        throw RpcError.errno('EINVAL', `histogram is not enabled on ${p.name} (bdev_enable_histogram)`);
      return h;
    },
  });
  add({
    name: 'bdev_wait_for_examine',
    description:
      'Answer once every bdev registered so far has been examined on every reactor (lvstores loaded)',
    async handler() {
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, bdevWaitExamine, undefined);
      return true;
    },
  });
  add({
    name: 'bdev_raid_set_options',
    description: 'RAID module options',
    state: 'both',
    params: obj({
      process_window_size_kb: inert(int({ min: 1, description: 'rebuild window (KiB)' }), 1024),
      process_max_bandwidth_mb_sec: inert(int({ min: 0, description: 'rebuild bandwidth cap (0: none)' }), 0),
    }),
    handler: () => true,
  });
  add({
    name: 'bdev_set_options',
    description: 'Set bdev layer options (before framework_start_init)',
    state: 'startup',
    params: obj({
      bdev_io_pool_size: opt(
        int({ min: 1, description: 'bdev_io objects in the whole process (each reactor makes its share)' }),
      ),
      bdev_io_cache_size: opt(int({ min: 1, description: 'bdev_io objects each channel makes up front' })),
      bdev_auto_examine: opt(
        bool({ description: 'false: modules examine only bdevs named by bdev_examine' }),
      ),
      iobuf_small_cache_size: opt(
        int({ min: 0, description: 'fixed at 128 (the bdev layer takes no iobuf)' }),
      ),
      iobuf_large_cache_size: opt(
        int({ min: 0, description: 'fixed at 16 (the bdev layer takes no iobuf)' }),
      ),
    }),
    handler(p) {
      // SPDK's bdev layer takes iobuf buffers for reads that bring none; storkit's callers always
      // bring theirs, so there is no cache to size: only SPDK's defaults are taken.
      for (const [k, def] of [
        ['iobuf_small_cache_size', 128],
        ['iobuf_large_cache_size', 16],
      ] as const) {
        const v = p[k];
        if (v !== undefined && v !== def)
          throw RpcError.invalidParams(
            `${k} ${v}: storkit's bdev layer takes no iobuf buffers (callers pass theirs), so only ${def} (SPDK's default) is taken`,
          );
      }
      options = { ...(options ?? {}), ...p };
      return true;
    },
  });

  add({
    name: 'bdev_examine',
    description: 'Let modules examine a bdev when bdev_auto_examine is false (now, or when it appears)',
    params: obj({ name: req(str({ minLength: 1 })) }),
    async handler(p) {
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, bdevExamineOp, p);
      return true;
    },
  });

  return {
    name: 'bdev',
    dependsOn: [],
    methods,
    async start() {
      if (options === null) return;
      const cache = options.bdev_io_cache_size;
      const pool = options.bdev_io_pool_size;
      const perChannel = typeof cache === 'number' ? cache : BDEV_IO_CACHE_DEFAULT;
      // As SPDK: the pool must fill every thread's cache and one more.
      if (typeof pool === 'number' && pool < perChannel * (ctl.count + 1))
        throw Object.assign(
          new Error(
            `bdev_set_options: bdev_io_pool_size ${pool} is not large enough for ${ctl.count} reactors with bdev_io_cache_size ${perChannel} (needs ${perChannel * (ctl.count + 1)})`,
          ),
          { code: 'EINVAL' },
        );
      const set = {
        bdev_io_cache_size: typeof cache === 'number' ? cache : undefined,
        bdev_io_pool_size: typeof pool === 'number' ? Math.ceil(pool / ctl.count) : undefined,
        bdev_auto_examine:
          typeof options.bdev_auto_examine === 'boolean' ? options.bdev_auto_examine : undefined,
      };
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, bdevSetOptions, set);
    },
    async writeConfig(): Promise<ConfigEntry[]> {
      const out: ConfigEntry[] = [];
      if (options) out.push({ method: 'bdev_set_options', params: { ...options } });
      for (const c of journal) out.push({ method: c.method, params: { ...c.params } });
      for (const [, p] of qos) out.push({ method: 'bdev_set_qos_limit', params: { ...p } });
      for (const name of histograms)
        out.push({ method: 'bdev_enable_histogram', params: { name, enable: true } });
      // Last, as SPDK writes it: what examine builds on these bdevs (lvstores) exists before the
      // subsystems after bdev load.
      out.push({ method: 'bdev_wait_for_examine' });
      return out;
    },
  };
}

/** SPDK's names of the failed statuses, by -(status) - 1 (bdev_io_status_get_string). */
export const IO_ERROR_NAMES = [
  'failed',
  'nvme_error',
  'scsi_error',
  'nomem',
  'miscompare',
  'first_fused_failed',
  'aborted',
  'aio_error',
] as const;

/**
 * One bdev's (or channel's) statistics in bdev_get_iostat's shape and field order, as SPDK v24.01
 * prints them. Copies are SPDK's COPY I/O type, which no storkit bdev offers: always 0. storkit adds
 * num_other_ops and other_latency_ticks (flush, reset and the other types SPDK counts nowhere).
 */
export function iostatSpdkJson(j: IoStatJson): Record<string, unknown> {
  const ioError: Record<string, number> = {};
  const e = j.ioError ?? [];
  for (let i = 0; i < IO_ERROR_NAMES.length; i++) if ((e[i] ?? 0) > 0) ioError[IO_ERROR_NAMES[i]] = e[i];
  return {
    bytes_read: j.bytesRead,
    num_read_ops: j.numReadOps,
    bytes_written: j.bytesWritten,
    num_write_ops: j.numWriteOps,
    bytes_unmapped: j.bytesUnmapped,
    num_unmap_ops: j.numUnmapOps,
    bytes_copied: 0,
    num_copy_ops: 0,
    read_latency_ticks: j.readLatencyTicks,
    max_read_latency_ticks: j.maxReadLatencyTicks,
    min_read_latency_ticks: j.minReadLatencyTicks,
    write_latency_ticks: j.writeLatencyTicks,
    max_write_latency_ticks: j.maxWriteLatencyTicks,
    min_write_latency_ticks: j.minWriteLatencyTicks,
    unmap_latency_ticks: j.unmapLatencyTicks,
    max_unmap_latency_ticks: j.maxUnmapLatencyTicks,
    min_unmap_latency_ticks: j.minUnmapLatencyTicks,
    copy_latency_ticks: 0,
    max_copy_latency_ticks: 0,
    min_copy_latency_ticks: 0,
    io_error: ioError,
    num_other_ops: j.numOtherOps,
    other_latency_ticks: j.otherLatencyTicks,
  };
}
