import { ReactorError } from './errors.js';

/**
 * Control operations: named functions every reactor worker defines at module load, which the main
 * thread runs on a reactor's first thread through comlink (`App.control`). This is how the control
 * plane reaches objects that live on every reactor (a bdev_malloc_create is replayed on each).
 * Never on the I/O path.
 *
 * An operation is declared once with `declareControl<Params, Result>(name)` in a module both sides
 * import (it holds no worker code), defined in the workers with `defineControl(op, fn)`, and
 * called with `App.control(i, op, params)`: params and result are typed on both sides, as a
 * message handler's payload is by its codec. Params and result cross as structured clones.
 */
declare const types: unique symbol;

/** A declared control operation: its name, and (for the compiler) its params and result types. */
export interface Control<P, R> {
  readonly name: string;
  /**
   * Never set: carries the types from the declaration to `defineControl` and `App.control`
   * (params as a function parameter, so an operation taking more accepts less).
   */
  readonly [types]?: { params: (p: P) => void; result: R };
}

/** The params type of a control operation. */
export type ControlParams<C> = C extends Control<infer P, unknown> ? P : never;
/** The result type of a control operation. */
export type ControlResultOf<C> = C extends Control<never, infer R> ? R : never;

/** Completes a control operation once (now, or later on the thread it ran on). */
export type ControlDone<R> = (err: Error | null, value?: R) => void;

/** The function behind a control operation in a worker. */
export type ControlFn<P = unknown, R = unknown> = (params: P, done: ControlDone<R>) => void;

/** What crosses back to the main thread: comlink would drop an error's `code`, so errors travel as data. */
export type ControlResult = { ok: true; value: unknown } | { ok: false; code: string; message: string };

/** Declare a control operation (in a module without worker code, imported by both sides). */
export function declareControl<P = void, R = true>(name: string): Control<P, R> {
  if (typeof name !== 'string' || name === '')
    throw new ReactorError('EINVAL', 'a control operation needs a name');
  return { name };
}

const controls = new Map<string, ControlFn>();

/** Define a declared control operation in this worker (at module load, so every reactor has it). */
export function defineControl<P, R>(op: Control<P, R>, fn: ControlFn<P, R>): void {
  if (controls.has(op.name))
    throw new ReactorError('EEXIST', `control operation ${op.name} is already defined`);
  controls.set(op.name, fn as ControlFn);
}

/** @internal Run a control operation; `reply` gets exactly one result. */
export function runControl(name: string, params: unknown, reply: (r: ControlResult) => void): void {
  const fn = controls.get(name);
  if (fn === undefined) {
    reply({ ok: false, code: 'ENOENT', message: `no control operation ${name} on this reactor` });
    return;
  }
  let replied = false;
  const done = (err: Error | null, value?: unknown) => {
    if (replied) return;
    replied = true;
    if (err) {
      const code = (err as { code?: unknown }).code;
      reply({ ok: false, code: typeof code === 'string' ? code : 'EIO', message: err.message });
    } else reply({ ok: true, value: value ?? null });
  };
  try {
    fn(params, done);
  } catch (e) {
    done(e instanceof Error ? e : new Error(String(e)));
  }
}

/** Error a failed control result stands for, with its code. */
export class ControlError extends Error {
  readonly code: string;
  readonly reactor: number;
  constructor(reactor: number, code: string, message: string) {
    super(message);
    this.name = 'ControlError';
    this.code = code;
    this.reactor = reactor;
  }
}
