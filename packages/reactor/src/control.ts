import { ReactorError } from './errors.js';

/**
 * Control operations: named functions every reactor worker defines at module load, which the main
 * thread runs on a reactor's first thread through comlink (`App.control`). This is how the control
 * plane reaches objects that live on every reactor (a bdev_malloc_create is replayed on each).
 * Never on the I/O path.
 *
 * A control function gets plain-JSON params and calls `done(err, value)` once (now or later, on the
 * thread it ran on); `value` must be structured-clone safe.
 */
export type ControlFn = (params: unknown, done: (err: Error | null, value?: unknown) => void) => void;

/** What crosses back to the main thread: comlink would drop an error's `code`, so errors travel as data. */
export type ControlResult = { ok: true; value: unknown } | { ok: false; code: string; message: string };

const controls = new Map<string, ControlFn>();

/** Define a control operation in this worker (at module load, so every reactor has it). */
export function defineControl(name: string, fn: ControlFn): void {
  if (typeof name !== 'string' || name === '')
    throw new ReactorError('EINVAL', 'a control operation needs a name');
  if (controls.has(name)) throw new ReactorError('EEXIST', `control operation ${name} is already defined`);
  controls.set(name, fn);
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
