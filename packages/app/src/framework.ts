// framework_* and thread_* methods, spdk_kill_instance and save_config.
import { readdirSync } from 'node:fs';

import type { ReactorSnapshot } from '@storkit/reactor';
import { type AnyMethodDef, bool, inert, int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import { saveConfig, sectionConfig } from './config.js';
import type { AppSubsystem } from './subsystem.js';

export interface FrameworkHost {
  /** Start the reactors and subsystems (framework_start_init); idempotent. */
  startInit(): Promise<void>;
  /** Resolves once initialization finished. */
  waitInit(): Promise<void>;
  snapshots(): Promise<ReactorSnapshot[]>;
  subsystems(): readonly AppSubsystem[];
  /** Orderly shutdown, as SIGINT/SIGTERM would. */
  kill(signal: string): void;
  readonly tickRate: number;
}

export function frameworkMethods(host: FrameworkHost): AnyMethodDef[] {
  const { methods: out, add } = methodList();
  const snap = async <K extends keyof ReactorSnapshot>(key: K) =>
    (await host.snapshots()).flatMap((s) => s[key] as unknown as unknown[]);

  add({
    name: 'framework_start_init',
    description: 'Start the reactors and subsystems (after --wait-for-rpc)',
    state: 'startup',
    handler: () => host.startInit().then(() => true),
  });
  add({
    name: 'framework_wait_init',
    description: 'Answer once the framework has initialized',
    state: 'both',
    handler: () => host.waitInit().then(() => true),
  });
  add({
    name: 'framework_get_subsystems',
    description: 'The subsystems and what each depends on',
    state: 'both',
    handler: () =>
      host
        .subsystems()
        .filter((s) => s.configSection === undefined)
        .map((s) => ({ subsystem: s.name, depends_on: [...s.dependsOn] })),
  });
  add({
    name: 'framework_get_config',
    description: "A subsystem's current configuration, as the calls that rebuild it",
    positional: ['name'],
    params: obj({ name: req(str({ minLength: 1 })) }),
    handler(p) {
      const s = host.subsystems().find((x) => x.name === p.name && x.configSection === undefined);
      if (!s) throw RpcError.errno('ENOENT', `no subsystem named ${p.name}`);
      return sectionConfig(host.subsystems(), p.name);
    },
  });
  add({
    name: 'save_config',
    description: "The whole configuration in SPDK's JSON config format (load it with --json)",
    handler: () => saveConfig(host.subsystems()),
  });
  add({
    name: 'framework_get_reactors',
    description: 'Reactors with busy/idle ticks and their lightweight threads',
    handler: async () => ({
      tick_rate: host.tickRate,
      pid: process.pid,
      reactors: (await host.snapshots()).map((s) => s.reactor),
    }),
  });
  add({
    name: 'storkit_get_memory',
    description:
      "The process's memory and open file descriptors, and each reactor's V8 heap (bytes): what leak checks and soaks watch",
    handler: async () => {
      const m = process.memoryUsage();
      return {
        pid: process.pid,
        rss: m.rss,
        main_heap_used: m.heapUsed,
        external: m.external,
        array_buffers: m.arrayBuffers,
        open_fds: readdirSync('/proc/self/fd').length,
        reactors: (await host.snapshots()).map((s) => ({
          lcore: s.reactor.lcore,
          heap_used: s.heap.used,
          heap_total: s.heap.total,
          external: s.heap.external,
        })),
      };
    },
  });
  add({
    name: 'thread_get_stats',
    description: 'Busy/idle ticks and poller counts of every thread',
    handler: async () => ({ tick_rate: host.tickRate, threads: await snap('threads') }),
  });
  add({
    name: 'thread_get_pollers',
    description: 'The pollers of every thread with run counts and periods',
    handler: async () => ({ tick_rate: host.tickRate, threads: await snap('pollers') }),
  });
  add({
    name: 'thread_get_io_channels',
    description: 'The io_channels every thread holds, with reference counts',
    handler: async () => ({ tick_rate: host.tickRate, threads: await snap('channels') }),
  });
  add({
    name: 'framework_set_scheduler',
    description: "Choose the reactor scheduler (storkit has one: 'static', threads stay where created)",
    params: obj({
      name: req(str({ enum: ['static'] })),
      period: inert(int({ min: 0, description: 'µs between scheduling passes' }), 1000000),
      isolated_core_mask: inert(str(), ''),
    }),
    handler: () => true,
  });
  add({
    name: 'framework_get_scheduler',
    description: 'The reactor scheduler in use',
    handler: () => ({ scheduler_name: 'static' }),
  });
  add({
    name: 'spdk_kill_instance',
    description: 'Shut the target down in order, as a signal would',
    state: 'both',
    positional: ['sig_name'],
    params: obj({
      sig_name: req(str({ enum: ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGKILL'], ignoreCase: true })),
    }),
    handler(p) {
      setImmediate(() => host.kill(p.sig_name));
      return true;
    },
  });
  add({
    name: 'framework_disable_cpumask_locks',
    description: 'Accepted for SPDK compatibility: storkit takes no CPU core locks',
    state: 'both',
    params: obj({ enable: opt(bool()) }),
    handler: () => true,
  });
  return out;
}
