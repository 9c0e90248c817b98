// The framework's state in one isolate (SPDK lib/accel/accel.c): options, per-opcode overrides,
// which module each opcode goes to, and the io_device whose channels carry the operations. In the
// target app every reactor worker starts its own instance from the same settings.
import { getIoChannel, type IoChannel, ioDeviceRegister, ioDeviceUnregister } from '@storkit/reactor';

import { AccelChannel } from './channel.js';
import { AccelError } from './errors.js';
import { type AccelModule, accelModules } from './module.js';
import { ACCEL_OPC_COUNT, ACCEL_OPC_NAMES, accelOpcodeByName } from './opcodes.js';
import { type AccelStats, accelStatsOf, accelStatsSum } from './stats.js';

/** accel_set_options: SPDK's names. The buffer pools (iobuf caches, buf_count) storkit has not. */
export interface AccelOptions {
  /** Tasks per channel: operations one thread may have in flight (default 2048). */
  task_count: number;
  /** Sequences per channel (default 2048). */
  sequence_count: number;
}

const DEFAULTS: AccelOptions = { task_count: 2048, sequence_count: 2048 };
/** SPDK's defaults of the options storkit accepts only at their default (it has no accel buffers). */
const FIXED = { small_cache_size: 128, large_cache_size: 16, buf_count: 2048 } as const;

let options: AccelOptions = { ...DEFAULTS };
const overrides: (string | null)[] = new Array(ACCEL_OPC_COUNT).fill(null);
let assigned: AccelModule[] | null = null;
let stopping = false;

/** The io_device key of the framework in this isolate. */
const DEVICE = { name: 'accel' };
/** Channels alive in this isolate, and what channels already gone had counted (SPDK's g_stats). */
const live = new Set<AccelChannel>();
let retired: AccelStats | null = null;

/** Whether accelInitialize() has run (assignments are fixed from then on). */
export function accelStarted(): boolean {
  return assigned !== null;
}

/** SPDK's accel_set_options (startup only). Unknown or unsupported settings throw. */
export function accelSetOptions(p: Partial<AccelOptions> & Record<string, unknown>): void {
  if (assigned !== null) throw new AccelError('EBUSY', 'accel options are startup-only');
  options = accelCheckOptions(p, options);
}

/** `base` with accel_set_options params `p` applied, or AccelError for a bad or unsupported one. */
export function accelCheckOptions(p: Record<string, unknown>, base: AccelOptions = DEFAULTS): AccelOptions {
  const next = { ...base };
  for (const [k, v] of Object.entries(p)) {
    if (k === 'task_count' || k === 'sequence_count') {
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 1 << 20) {
        throw new AccelError('EINVAL', `${k} must be an integer in 1..${1 << 20}`);
      }
      next[k] = v as number;
    } else if (k in FIXED) {
      if (v !== FIXED[k as keyof typeof FIXED]) {
        throw new AccelError(
          'ENOTSUP',
          `${k}: storkit's accel framework has no accel buffers; only the default ${FIXED[k as keyof typeof FIXED]} is accepted`,
        );
      }
    } else {
      throw new AccelError('EINVAL', `unknown accel option ${k}`);
    }
  }
  return next;
}

export function accelGetOptions(): AccelOptions {
  return { ...options };
}

/**
 * SPDK's accel_assign_opc: run `opname` on module `module` (startup only). The module is checked
 * when the framework starts, as SPDK does: an unknown or unable one makes the start fail.
 */
export function accelAssignOpc(opname: string, module: string): void {
  const op = accelOpcodeByName(opname);
  if (op < 0) throw new AccelError('ENOENT', `no accel operation named ${opname}`);
  if (assigned !== null)
    throw new AccelError('EBUSY', 'operations can be assigned only before the framework starts');
  overrides[op] = module;
}

/** The module each opcode goes to once started (or would go to now), by opcode name. */
export function accelGetOpcAssignments(): Record<string, string> {
  const mods = assigned ?? resolve(false);
  const out: Record<string, string> = {};
  for (let op = 0; op < ACCEL_OPC_COUNT; op++) out[ACCEL_OPC_NAMES[op]] = mods[op].name;
  return out;
}

/** SPDK's accel_get_module_info: every module taking part and the operations it supports. */
export function accelGetModuleInfo(): { module: string; 'supported ops': string[] }[] {
  return accelModules()
    .filter((m) => m.enabled())
    .map((m) => ({
      module: m.name,
      'supported ops': ACCEL_OPC_NAMES.filter((_n, op) => m.supportsOpcode(op)),
    }));
}

/**
 * Resolve every opcode to a module: an override must name an enabled module that supports it;
 * otherwise the enabled module of highest priority that supports it.
 */
function resolve(strict: boolean): AccelModule[] {
  const mods = accelModules();
  const out: AccelModule[] = [];
  for (let op = 0; op < ACCEL_OPC_COUNT; op++) {
    const name = overrides[op];
    let pick: AccelModule | undefined;
    if (name !== null) {
      pick = mods.find((m) => m.name === name);
      const why =
        pick === undefined
          ? `no accel module named ${name}`
          : !pick.enabled()
            ? `accel module ${name} is not enabled`
            : !pick.supportsOpcode(op)
              ? `accel module ${name} does not support ${ACCEL_OPC_NAMES[op]}`
              : '';
      if (why !== '') {
        if (strict) throw new AccelError(pick === undefined ? 'ENOENT' : 'ENOTSUP', why);
        pick = undefined;
      }
    }
    if (pick === undefined) {
      for (const m of mods) {
        if (
          m.priority > 0 &&
          m.enabled() &&
          m.supportsOpcode(op) &&
          (pick === undefined || m.priority > pick.priority)
        ) {
          pick = m;
        }
      }
    }
    if (pick === undefined) throw new AccelError('ENODEV', `no accel module can run ${ACCEL_OPC_NAMES[op]}`);
    out.push(pick);
  }
  return out;
}

/**
 * Start the framework in this isolate (SPDK's spdk_accel_initialize): initialize the enabled
 * modules, fix the assignments, register the io_device. Fails (and starts nothing) when an
 * override names an unknown, disabled or unable module, or a module's init fails.
 */
export async function accelInitialize(): Promise<void> {
  if (assigned !== null) throw new AccelError('EBUSY', 'the accel framework is already started');
  const inited: AccelModule[] = [];
  try {
    for (const m of accelModules()) {
      if (!m.enabled()) continue;
      await m.init?.();
      inited.push(m);
    }
    register(resolve(true));
  } catch (e) {
    for (const m of inited.reverse()) await m.fini?.();
    throw e;
  }
}

/**
 * Start it now with what needs no setup (the software and offload modules): what a library
 * user gets without the target app's accel subsystem (the malloc bdev starts it so). EBUSY when a
 * module needs its init (an I/OAT scan): start that with accelInitialize().
 */
export function accelStartDefault(): void {
  if (assigned !== null) throw new AccelError('EBUSY', 'the accel framework is already started');
  const waiting = accelModules().filter((m) => m.enabled() && m.init !== undefined);
  if (waiting.length > 0) {
    throw new AccelError(
      'EBUSY',
      `start with accelInitialize(): ${waiting.map((m) => m.name).join(', ')} must probe first`,
    );
  }
  register(resolve(true));
}

function register(mods: AccelModule[]): void {
  ioDeviceRegister(DEVICE, {
    name: 'accel',
    create: (ch) => {
      const c = new AccelChannel(ch.thread, mods, options);
      live.add(c);
      return c;
    },
    destroy: (ch) => {
      const c = ch.ctx as AccelChannel;
      c.destroy();
      live.delete(c);
      retired = accelStatsSum(retired === null ? [accelStatsOf(c)] : [retired, accelStatsOf(c)]);
    },
  });
  assigned = mods;
  stopping = false;
}

/**
 * Stop it: the io_device goes once every channel is put (call from a thread), then the modules
 * finish. Overrides and options stay for the next start.
 */
export async function accelFinish(): Promise<void> {
  if (assigned === null || stopping) return;
  stopping = true;
  await new Promise<void>((resolve) => ioDeviceUnregister(DEVICE, resolve));
  const mods = accelModules().filter((m) => m.enabled());
  assigned = null;
  for (const m of mods.reverse()) await m.fini?.();
}

/** Counters of every channel of this isolate, live or gone (accel_get_stats sums the reactors'). */
export function accelLocalStats(): AccelStats {
  const all = [...live].map(accelStatsOf);
  if (retired !== null) all.push(retired);
  return accelStatsSum(all);
}

/** This thread's channel to the framework (spdk_accel_get_io_channel); put() it when done. */
export function accelGetIoChannel(): IoChannel<AccelChannel> {
  if (assigned === null) throw new AccelError('ENODEV', 'the accel framework is not started');
  return getIoChannel<AccelChannel>(DEVICE);
}

/** @internal drop every override (before a start) */
export function clearOverrides(): void {
  if (assigned !== null)
    throw new AccelError('EBUSY', 'operations can be assigned only before the framework starts');
  overrides.fill(null);
}

/** @internal the overrides, as (opcode, module) in opcode order */
export function overridesNow(): [number, string][] {
  const out: [number, string][] = [];
  for (let op = 0; op < ACCEL_OPC_COUNT; op++) {
    const m = overrides[op];
    if (m !== null) out.push([op, m]);
  }
  return out;
}

/** @internal tests: back to a fresh framework (not started). */
export function accelResetForTests(): void {
  if (assigned !== null) throw new AccelError('EBUSY', 'stop the framework first');
  options = { ...DEFAULTS };
  overrides.fill(null);
}
