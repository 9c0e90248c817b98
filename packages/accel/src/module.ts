// @storkit/accel/module: for module authors (SPDK's accel_module.h). A module is one object that
// registers itself; the framework hands it tasks for the opcodes assigned to it.
import type { Thread } from '@storkit/reactor';

import { AccelError } from './errors.js';
import type { AccelTask } from './task.js';

export { AccelIovecs } from './iovecs.js';
export { AccelTask } from './task.js';

/** One entry of the accel section of an SPDK JSON config. */
export interface AccelConfigEntry {
  method: string;
  params?: Record<string, unknown>;
}

export interface AccelModule<MC = unknown> {
  readonly name: string;
  /**
   * Order of assignment (SPDK: every opcode goes to software first, then to hardware modules as
   * they initialize): opcodes a module supports go to the one with the highest priority among
   * enabled modules; 0 never takes anything unasked (accel_assign_opc only).
   */
  readonly priority: number;
  supportsOpcode(op: number): boolean;
  /** Whether the module takes part (hardware modules: once scanned for and found). */
  enabled(): boolean;
  /** Runs on every isolate that starts the framework, before assignments (probe devices). */
  init?(): Promise<void>;
  fini?(): Promise<void>;
  /** Per-thread context: a claimed device channel, a completion list. */
  createChannel(thread: Thread): MC;
  destroyChannel?(mc: MC): void;
  /**
   * Take a task: 0 when accepted (it completes later through task.complete, never inside this
   * call's caller), or a negative errno when refused (nothing was started).
   */
  submit(mc: MC, task: AccelTask): number;
  /**
   * Do `task` now, on this CPU, if this module does so for it (software always; others for what
   * their engine would not take): complete it before returning true. False: it must be submitted.
   * Lets a data path keep a synchronous fast path while an engine, once assigned, gets the work.
   */
  inline?(mc: MC, task: AccelTask): boolean;
  /** Hand everything submitted since the last flush to the engine (one doorbell per batch). */
  flush?(mc: MC): void;
  /** Poll for completions; returns work done. Called by each accel channel's poller. */
  poll?(mc: MC): number;
  /** Extra counters for accel_get_stats (per channel, summed). */
  stats?(mc: MC): Record<string, number>;
}

const modules: AccelModule[] = [];

/** Register a module in this isolate (SPDK_ACCEL_MODULE_REGISTER). */
export function accelModuleRegister(m: AccelModule): void {
  if (modules.some((x) => x.name === m.name)) {
    throw new AccelError('EEXIST', `an accel module named ${m.name} is registered`);
  }
  modules.push(m);
}

/** Registered modules, in registration order. */
export function accelModules(): readonly AccelModule[] {
  return modules;
}
