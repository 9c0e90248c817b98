// accel_* and ioat_scan_accel_module on the main thread (SPDK's accel subsystem). Startup methods
// are checked and recorded in this target's accel settings; start() finds the I/OAT channels,
// gives each reactor its own, and starts the framework on every reactor with those settings. The
// runtime answers come from reactor 0's framework, stats are summed over the reactors, and
// save_config writes the settings.
import {
  type ACCEL_CONFIG_METHODS,
  type AccelStats,
  accelOpcodeByName,
  accelSettingsApply,
  accelSettingsDefault,
  accelSettingsEntries,
  accelStatsJson,
  accelStatsSum,
} from '@storkit/accel';
import { IOAT_PCI_IDS } from '@storkit/ioat';
import { openPciDevice, type PciDevice, type PciDeviceShare, PciSysfs } from '@storkit/native';
import { int, methodList, obj, opt, RpcError, req, str } from '@storkit/rpc';

import type { ReactorControl } from './control.js';
import { accelInfo, accelStart, accelStats, accelStop } from './controls/accel.js';
import type { AppSubsystem, ConfigEntry } from './subsystem.js';

export interface AccelSubsystemOptions {
  /** I/OAT functions already open (the device model), offered to ioat_scan_accel_module with sysfs's. */
  ioatDevices?: () => readonly PciDevice[];
  /** The sysfs to probe (tests); default /sys. */
  sysfs?: PciSysfs;
}

export function accelSubsystem(ctl: ReactorControl, opts: AccelSubsystemOptions = {}): AppSubsystem {
  let settings = accelSettingsDefault();
  const opened: PciDevice[] = [];
  const { methods, add } = methodList();
  const info = () => ctl.call(0, accelInfo, undefined);
  /** Record a startup call in the settings (a bad one throws, and changes nothing). */
  const record = (method: (typeof ACCEL_CONFIG_METHODS)[number], p: Record<string, unknown> = {}): true => {
    const defined = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
    settings = accelSettingsApply(settings, method, defined);
    return true;
  };

  add({
    name: 'accel_get_opc_assignments',
    description: 'Get the module each accel operation is assigned to',
    handler: async () => (await info()).assignments,
  });

  add({
    name: 'accel_get_module_info',
    description: 'Get the accel modules taking part and the operations each supports',
    aliases: ['accel_get_engine_info'],
    handler: async () => (await info()).modules,
  });

  add({
    name: 'accel_assign_opc',
    description: 'Assign an accel operation to a module (before framework_start_init)',
    state: 'startup',
    params: obj({ opname: req(str({ minLength: 1 })), module: req(str({ minLength: 1 })) }),
    handler(p) {
      if (accelOpcodeByName(p.opname) < 0)
        throw RpcError.invalidParams(`no accel operation named ${p.opname}`);
      return record('accel_assign_opc', p);
    },
  });

  add({
    name: 'accel_set_options',
    description: 'Set accel framework options (before framework_start_init)',
    state: 'startup',
    params: obj({
      small_cache_size: opt(int({ min: 0 })),
      large_cache_size: opt(int({ min: 0 })),
      task_count: opt(int({ min: 1, max: 1 << 20 })),
      sequence_count: opt(int({ min: 1, max: 1 << 20 })),
      buf_count: opt(int({ min: 0 })),
    }),
    handler: (p) => record('accel_set_options', p),
  });

  add({
    name: 'ioat_scan_accel_module',
    description:
      'Enable the I/OAT accel module: copy and fill on I/OAT DMA channels (before framework_start_init)',
    state: 'startup',
    handler: () => record('ioat_scan_accel_module'),
  });

  add({
    name: 'storkit_accel_offload_set_options',
    description: 'Set the piscina offload module options (before framework_start_init)',
    state: 'startup',
    params: obj({
      threads: opt(int({ min: 1, max: 64, description: 'pool threads' })),
      min_bytes: opt(int({ min: 0, description: 'smaller jobs run on the reactor' })),
      max_queue: opt(int({ min: 1, description: 'jobs queued in the pool before ENOMEM' })),
    }),
    handler: (p) => record('storkit_accel_offload_set_options', p),
  });

  add({
    name: 'accel_get_stats',
    description: 'Get accel framework statistics, summed over every reactor',
    async handler() {
      const all: AccelStats[] = [];
      for (let i = 0; i < ctl.count; i++) all.push(await ctl.call(i, accelStats, undefined));
      return accelStatsJson(accelStatsSum(all), (await info()).assignments);
    },
  });

  /** The I/OAT functions for ioat_scan_accel_module: sysfs's (opened here) and any given. */
  function ioatDevices(): PciDevice[] {
    const sysfs = opts.sysfs ?? new PciSysfs();
    const out: PciDevice[] = [];
    for (const f of sysfs.probe({ ids: IOAT_PCI_IDS })) {
      const d = openPciDevice(f.address, { sysfs, what: 'an I/OAT DMA channel' });
      opened.push(d);
      out.push(d);
    }
    return [...out, ...(opts.ioatDevices?.() ?? [])];
  }

  return {
    name: 'accel',
    dependsOn: [],
    methods,
    async start() {
      const shares: PciDeviceShare[][] = Array.from({ length: ctl.count }, () => []);
      if (settings.ioatScan) {
        const devs = ioatDevices();
        if (devs.length < ctl.count) {
          throw Object.assign(
            new Error(
              `ioat: ${devs.length} I/OAT channel(s) for ${ctl.count} reactor(s); each reactor needs one of its own`,
            ),
            { code: 'ENODEV' },
          );
        }
        devs.forEach((d, i) => {
          d.enableBusMaster();
          shares[i % ctl.count].push(d.share());
        });
      }
      const started: number[] = [];
      try {
        for (let i = 0; i < ctl.count; i++) {
          await ctl.call(i, accelStart, { settings, ioatShares: shares[i] });
          started.push(i);
        }
      } catch (e) {
        for (const i of started) await ctl.call(i, accelStop, undefined).catch(() => {});
        throw e;
      }
    },
    async writeConfig(): Promise<ConfigEntry[]> {
      return accelSettingsEntries(settings);
    },
  };
}
