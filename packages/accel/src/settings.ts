// The accel subsystem's startup settings as plain data (what SPDK's accel config section holds):
// options, per-opcode overrides, whether ioat_scan_accel_module was called, the offload module's
// options. A control plane keeps its own copy (one per target), validates each call against it,
// writes save_config from it, and installs it in every isolate that starts the framework.
import { AccelError } from './errors.js';
import {
  type AccelOptions,
  accelAssignOpc,
  accelCheckOptions,
  accelGetOptions,
  accelSetOptions,
  clearOverrides,
  overridesNow,
} from './framework.js';
import type { AccelConfigEntry } from './module.js';
import { accelIoatScan, accelIoatScanned } from './modules/ioat.js';
import {
  type AccelOffloadOptions,
  accelOffloadCheckOptions,
  accelOffloadGetOptions,
  accelOffloadSetOptions,
  OFFLOAD_DEFAULTS,
} from './modules/offload.js';
import { ACCEL_OPC_NAMES, accelOpcodeByName } from './opcodes.js';

export interface AccelSettings {
  options: AccelOptions;
  /** Module by opcode name (save_config writes them in opcode order, as SPDK does). */
  overrides: Record<string, string>;
  ioatScan: boolean;
  offload: AccelOffloadOptions;
}

export function accelSettingsDefault(): AccelSettings {
  return { options: accelCheckOptions({}), overrides: {}, ioatScan: false, offload: { ...OFFLOAD_DEFAULTS } };
}

/** The methods of the accel config section, in the order save_config writes them. */
export const ACCEL_CONFIG_METHODS = [
  'accel_set_options',
  'ioat_scan_accel_module',
  'storkit_accel_offload_set_options',
  'accel_assign_opc',
] as const;

/**
 * `s` after one config call (params as the RPC takes them), or AccelError when the call is bad.
 * Modules named by accel_assign_opc are checked when the framework starts, as SPDK does.
 */
export function accelSettingsApply(
  s: AccelSettings,
  method: string,
  params: Record<string, unknown> = {},
): AccelSettings {
  switch (method) {
    case 'accel_set_options':
      return { ...s, options: accelCheckOptions(params, s.options) };
    case 'ioat_scan_accel_module':
      return { ...s, ioatScan: true };
    case 'storkit_accel_offload_set_options':
      return {
        ...s,
        offload: accelOffloadCheckOptions(
          {
            ...(params.threads !== undefined ? { threads: params.threads as number } : {}),
            ...(params.min_bytes !== undefined ? { minBytes: params.min_bytes as number } : {}),
            ...(params.max_queue !== undefined ? { maxQueue: params.max_queue as number } : {}),
          },
          s.offload,
        ),
      };
    case 'accel_assign_opc': {
      const op = String(params.opname);
      if (accelOpcodeByName(op) < 0) throw new AccelError('ENOENT', `no accel operation named ${op}`);
      return { ...s, overrides: { ...s.overrides, [op]: String(params.module) } };
    }
  }
  throw new AccelError('EINVAL', `${method} is not an accel config method`);
}

/** The accel section of save_config for `s`. */
export function accelSettingsEntries(s: AccelSettings): AccelConfigEntry[] {
  const out: AccelConfigEntry[] = [];
  const d = accelSettingsDefault();
  if (
    s.options.task_count !== d.options.task_count ||
    s.options.sequence_count !== d.options.sequence_count
  ) {
    out.push({ method: 'accel_set_options', params: { ...s.options } });
  }
  if (s.ioatScan) out.push({ method: 'ioat_scan_accel_module' });
  const o = s.offload;
  if (
    o.threads !== d.offload.threads ||
    o.minBytes !== d.offload.minBytes ||
    o.maxQueue !== d.offload.maxQueue
  ) {
    out.push({
      method: 'storkit_accel_offload_set_options',
      params: { threads: o.threads, min_bytes: o.minBytes, max_queue: o.maxQueue },
    });
  }
  for (const opname of ACCEL_OPC_NAMES) {
    const module = s.overrides[opname];
    if (module !== undefined) out.push({ method: 'accel_assign_opc', params: { opname, module } });
  }
  return out;
}

/** This isolate's accel section of save_config. */
export function accelWriteConfig(): AccelConfigEntry[] {
  return accelSettingsEntries(accelSettingsNow());
}

/** Make `s` this isolate's settings, replacing what was set (before the framework starts here). */
export function accelSettingsInstall(s: AccelSettings): void {
  accelSetOptions({ ...s.options });
  clearOverrides();
  for (const [op, m] of Object.entries(s.overrides)) accelAssignOpc(op, m);
  accelOffloadSetOptions(s.offload);
  accelIoatScan(s.ioatScan);
}

/** This isolate's current settings. */
export function accelSettingsNow(): AccelSettings {
  const ov = overridesNow();
  const overrides: Record<string, string> = {};
  for (const [op, m] of ov) overrides[ACCEL_OPC_NAMES[op]] = m;
  return {
    options: accelGetOptions(),
    overrides,
    ioatScan: accelIoatScanned(),
    offload: accelOffloadGetOptions(),
  };
}
