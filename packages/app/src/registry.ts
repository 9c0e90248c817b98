// The subsystems of the target app, in init order (a subsystem after those it depends on), and
// the modules every reactor imports for them. Adding a subsystem is one line in each list.
import { bdevSubsystem } from './bdev-subsystem.js';
import type { ReactorControl } from './control.js';
import { iscsiSubsystem } from './iscsi-subsystem.js';
import { nvmfSubsystem } from './nvmf-subsystem.js';
import type { AppSubsystem } from './subsystem.js';

export const SUBSYSTEMS: readonly ((ctl: ReactorControl) => AppSubsystem)[] = [
  bdevSubsystem,
  nvmfSubsystem,
  iscsiSubsystem,
];

export const REACTOR_MODULES: readonly URL[] = [
  new URL('./reactor-modules/bdev.js', import.meta.url),
  new URL('./reactor-modules/nvmf.js', import.meta.url),
  new URL('./reactor-modules/iscsi.js', import.meta.url),
];
