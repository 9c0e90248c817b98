// The accel subsystem's control operations, declared once: accel-subsystem.ts (main thread) calls
// them, reactor-modules/accel.ts defines them in every reactor.
import type { AccelSettings, AccelStats } from '@storkit/accel';
import type { PciDeviceShare } from '@storkit/native';
import { declareControl } from '@storkit/reactor';

/** What every reactor starts its framework with. */
export interface AccelStartParams {
  settings: AccelSettings;
  /** The I/OAT channels this reactor gets (functions the main thread opened). */
  ioatShares: PciDeviceShare[];
}

/** What a reactor's framework answers at runtime. */
export interface AccelInfo {
  assignments: Record<string, string>;
  modules: { module: string; 'supported ops': string[] }[];
}

export const accelStart = declareControl<AccelStartParams, true>('accel.start');
export const accelStop = declareControl<undefined, true>('accel.stop');
export const accelStats = declareControl<undefined, AccelStats>('accel.stats');
export const accelInfo = declareControl<undefined, AccelInfo>('accel.info');
