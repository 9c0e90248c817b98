// The subsystems of the target app, in init order (a subsystem after those it depends on), and
// the modules every reactor imports for them. Adding a subsystem is one line in each list.
import { accelSubsystem } from './accel-subsystem.js';
import { bdevNvmeSubsystem } from './bdev-nvme-subsystem.js';
import { bdevSubsystem } from './bdev-subsystem.js';
import { bdevVirtioSubsystem } from './bdev-virtio-subsystem.js';
import type { ReactorControl } from './control.js';
import { iobufSubsystem } from './iobuf-subsystem.js';
import { iscsiSubsystem } from './iscsi-subsystem.js';
import { lvolSubsystem } from './lvol-subsystem.js';
import { nvmfSubsystem } from './nvmf-subsystem.js';
import type { AppSubsystem, SubsystemOptions } from './subsystem.js';
import { vhostBlkSubsystem, vhostScsiSubsystem } from './vhost-subsystem.js';

export const SUBSYSTEMS: readonly ((ctl: ReactorControl, opts?: SubsystemOptions) => AppSubsystem)[] = [
  iobufSubsystem,
  (ctl, o) => accelSubsystem(ctl, { ioatDevices: o?.ioatDevices }),
  (ctl, o) => bdevSubsystem(ctl, o?.bdevMethods),
  lvolSubsystem,
  bdevNvmeSubsystem,
  nvmfSubsystem,
  (ctl, o) => iscsiSubsystem(ctl, o?.log),
  (ctl, o) => vhostBlkSubsystem(ctl, { socketDir: o?.vhostDir }),
  (ctl, o) => vhostScsiSubsystem(ctl, { socketDir: o?.vhostDir }),
  bdevVirtioSubsystem,
];

export const REACTOR_MODULES: readonly URL[] = [
  new URL('./reactor-modules/iobuf.js', import.meta.url),
  new URL('./reactor-modules/accel.js', import.meta.url),
  new URL('./reactor-modules/bdev.js', import.meta.url),
  new URL('./reactor-modules/lvol.js', import.meta.url),
  new URL('./reactor-modules/nvmf.js', import.meta.url),
  new URL('./reactor-modules/iscsi.js', import.meta.url),
  new URL('./reactor-modules/vhost.js', import.meta.url),
  new URL('./reactor-modules/virtio.js', import.meta.url),
];
