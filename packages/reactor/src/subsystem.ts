import { ReactorError } from './errors.js';

/**
 * A unit of startup and shutdown work (SPDK's spdk_subsystem), defined per worker at module load.
 * Every reactor runs `init` on its first thread, in definition order, before main starts; at
 * shutdown `fini` runs in reverse order, for the subsystems whose init succeeded on that reactor.
 * Each calls `done()` when finished (now or later), or `done(err)` to fail: a failed init stops the
 * app with exit code 1.
 */
export interface Subsystem {
  name: string;
  init?(done: (err?: Error) => void): void;
  fini?(done: () => void): void;
}

const subsystems: Subsystem[] = [];

export function defineSubsystem(s: Subsystem): Subsystem {
  if (typeof s?.name !== 'string' || s.name === '')
    throw new ReactorError('EINVAL', 'a subsystem needs a name');
  if (subsystems.some((x) => x.name === s.name)) {
    throw new ReactorError('EEXIST', `subsystem ${s.name} is already defined`);
  }
  subsystems.push(s);
  return s;
}

/** Subsystems of this worker, in init order. */
export function localSubsystems(): readonly Subsystem[] {
  return subsystems;
}
