// Apply the bdev subsystem of an SPDK JSON config on this reactor, and replay it on others.

import { getThread } from '@storkit/reactor';
import { setCurrentThread } from '@storkit/reactor/module';
import type { Bdev } from '../bdev.js';
import { bdevSetQosLimit, type QosParams } from '../control.js';
import { BdevError } from '../errors.js';
import {
  bdevAioCreate,
  bdevDelayCreate,
  bdevErrorCreate,
  bdevErrorInjectError,
  bdevMallocCreate,
  bdevNullCreate,
  bdevPassthruCreate,
  bdevRaidCreate,
  bdevSplitCreate,
  bdevUringCreate,
} from '../modules/index.js';
import { bdevGetByName, setBdevOptions } from '../registry.js';

/** One `{method, params}` entry of a config's bdev subsystem. */
export interface ConfigCall {
  method: string;
  params?: Record<string, unknown>;
}

type Apply = (p: never) => { replay: unknown } | unknown;

const METHODS: Record<string, Apply> = {
  bdev_set_options: (p: Record<string, unknown>) => {
    const o: { bdev_io_cache_size?: number } = {};
    if (typeof p.bdev_io_cache_size === 'number') o.bdev_io_cache_size = p.bdev_io_cache_size;
    setBdevOptions(o);
    return p;
  },
  bdev_malloc_create: (p: never) => bdevMallocCreate(p).replay,
  bdev_null_create: (p: never) => bdevNullCreate(p).replay,
  bdev_aio_create: (p: never) => bdevAioCreate(p).replay,
  bdev_uring_create: (p: never) => bdevUringCreate(p).replay,
  bdev_split_create: (p: never) => {
    bdevSplitCreate(p);
    return p;
  },
  bdev_delay_create: (p: never) => bdevDelayCreate(p).replay,
  bdev_error_create: (p: never) => bdevErrorCreate(p).replay,
  bdev_error_inject_error: (p: never) => bdevErrorInjectError(p),
  bdev_passthru_create: (p: never) => bdevPassthruCreate(p).replay,
  bdev_raid_create: (p: never) => bdevRaidCreate(p).replay,
  bdev_set_qos_limit: (p: QosParams) => {
    const b: Bdev | undefined = bdevGetByName(p.name);
    if (b === undefined) throw new BdevError('ENODEV', `bdev_set_qos_limit: no bdev ${p.name}`);
    return bdevSetQosLimit(b, p);
  },
};

/** The `bdev` subsystem's calls of an SPDK JSON config (other subsystems are ignored here). */
export function bdevCalls(config: unknown): ConfigCall[] {
  const subs = (config as { subsystems?: { subsystem: string; config?: ConfigCall[] }[] })?.subsystems;
  if (!Array.isArray(subs)) throw new BdevError('EINVAL', 'config has no "subsystems" array');
  const bdev = subs.find((s) => s.subsystem === 'bdev');
  return bdev?.config ?? [];
}

/**
 * A config method a module adds (one that lives outside this package, e.g. bdev_virtio over the
 * vhost initiator). It may finish asynchronously (a connection to open); it returns the call every
 * other reactor runs to make its own instance, or null when they have nothing to do.
 */
export type ConfigMethod = (
  params: Record<string, unknown>,
) => ConfigCall | null | Promise<ConfigCall | null>;

const added = new Map<string, ConfigMethod>();

/** Make `method` loadable from a bdevperf config in this worker (import the module in every reactor). */
export function registerConfigMethod(method: string, apply: ConfigMethod): void {
  if (METHODS[method] !== undefined || added.has(method))
    throw new BdevError('EEXIST', `config method ${method} is already defined`);
  added.set(method, apply);
}

/**
 * Run each call here, in order, each finished before the next starts (as SPDK's config loader
 * waits for every RPC's answer); returns the calls to replay on other reactors (with shared
 * handles, uuids).
 */
export async function applyBdevConfig(calls: readonly ConfigCall[]): Promise<ConfigCall[]> {
  const out: ConfigCall[] = [];
  // An await resumes outside any reactor thread; bdevs are made on (and bound to) the caller's.
  const thread = getThread();
  for (const c of calls) {
    const params = c.params ?? {};
    const f = METHODS[c.method];
    if (f !== undefined) {
      const replay = (f as (p: unknown) => unknown)(params);
      out.push({ method: c.method, params: replay as Record<string, unknown> });
      continue;
    }
    const g = added.get(c.method);
    if (g === undefined)
      throw new BdevError('ENOTSUP', `config method ${c.method} is not supported by the bdev layer`);
    let replay: ConfigCall | null;
    try {
      replay = await g(params);
    } finally {
      setCurrentThread(thread);
    }
    if (replay !== null) out.push(replay);
  }
  return out;
}
