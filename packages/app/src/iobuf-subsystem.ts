// iobuf_* on the main thread (SPDK's iobuf subsystem): iobuf_set_options before
// framework_start_init sizes the data buffer pools (counts for the whole process, divided among
// the reactors: see @storkit/block's iobuf), start() hands them to every reactor before the targets
// start, iobuf_get_stats sums each module's counters over the reactors, save_config writes the
// options.
import { type IobufOptions, iobufOptions } from '@storkit/block';
import { int, methodList, obj, opt, RpcError } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { type IobufModuleStats, iobufStart, iobufStats } from './controls/iobuf.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

export function iobufSubsystem(ctl: ReactorControl): AppSubsystem {
  let set: Partial<IobufOptions> | null = null;
  let options = iobufOptions();
  const { methods, add } = methodList();

  add({
    name: 'iobuf_set_options',
    description: 'Size the data buffer pools (before framework_start_init): counts for the whole process',
    state: 'startup',
    params: obj({
      small_pool_count: opt(int({ min: 64 })),
      large_pool_count: opt(int({ min: 8 })),
      small_bufsize: opt(int({ min: 4096 })),
      large_bufsize: opt(int({ min: 8192 })),
    }),
    handler(p) {
      const next = {
        ...(set ?? {}),
        ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)),
      };
      try {
        options = iobufOptions(next);
      } catch (e) {
        throw RpcError.invalidParams((e as Error).message);
      }
      set = next;
      return true;
    },
  });

  add({
    name: 'iobuf_get_stats',
    description: 'Per module: buffers served from its caches, from the pools, and gets that had to wait',
    async handler() {
      const sum = new Map<string, IobufModuleStats>();
      for (let i = 0; i < ctl.count; i++) {
        for (const s of await ctl.call(i, iobufStats, undefined)) {
          const t = sum.get(s.module);
          if (t === undefined) sum.set(s.module, structuredClone(s));
          else
            for (const k of ['small_pool', 'large_pool'] as const)
              for (const f of ['cache', 'main', 'retry'] as const) t[k][f] += s[k][f];
        }
      }
      return [...sum.values()];
    },
  });

  return {
    name: 'iobuf',
    dependsOn: [],
    methods,
    async start() {
      for (let i = 0; i < ctl.count; i++) await ctl.call(i, iobufStart, { options, reactors: ctl.count });
    },
    async writeConfig(): Promise<ConfigEntry[]> {
      return set === null ? [] : [{ method: 'iobuf_set_options', params: { ...options } }];
    },
  };
}
