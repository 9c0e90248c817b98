import { type MethodSpec, RpcServer, registerBuiltins } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { frameworkMethods } from './framework.js';
import type { TargetPlugin } from './plugin.js';
import { SUBSYSTEMS } from './registry.js';
import { VERSION } from './version.js';

const idle: ReactorControl = {
  count: 0,
  tickRate: 1,
  ticks: () => 0,
  call: () => Promise.reject(new Error('catalog only')),
};

/**
 * Every method the target answers (with `plugins`' methods), without starting anything: for
 * `storkit rpc METHOD --help` and its positional params.
 */
export function methodCatalog(plugins: readonly TargetPlugin[] = []): MethodSpec[] {
  const s = new RpcServer();
  registerBuiltins(s, VERSION);
  for (const m of frameworkMethods({
    startInit: async () => {},
    waitInit: async () => {},
    snapshots: async () => [],
    subsystems: () => [],
    kill: () => {},
    tickRate: 1,
  }))
    s.register(m);
  const bdevMethods = plugins.flatMap((p) => p.bdevMethods ?? []);
  for (const f of SUBSYSTEMS) for (const m of f(idle, { bdevMethods }).methods) s.register(m);
  return s.methods();
}
