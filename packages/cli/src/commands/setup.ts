import { execFileSync } from 'node:child_process';

import { NativeError, USER_SPACE_DRIVERS } from '@storkit/native';

import { type Command, UsageError } from '../command.js';
import { type NvmeDeviceState, REAL_SYSTEM, type SystemRoots, SystemView } from '../setup/system.js';

const USAGE = `usage: storkit setup [config|status|reset] [options]

Prepares the machine for storkit's user-space NVMe driver, like SPDK's scripts/setup.sh.
  config (default)  reserve hugepages and bind NVMe controllers to vfio-pci (uio_pci_generic
                    when there is no IOMMU); controllers the kernel is using (a mounted
                    filesystem, swap, a device-mapper holder) are left alone, and named ones
                    are refused
  status            hugepages, and every NVMe controller with its driver and users
  reset             give controllers back to the kernel's nvme driver

options:
  -a, --allow BDF   only this controller (repeatable; env PCI_ALLOWED, space separated)
  --hugemem MIB     hugepage memory to have reserved (env HUGEMEM; default 2048; 0: leave it)
  --driver NAME     vfio-pci or uio_pci_generic (env DRIVER_OVERRIDE)
  --sysfs DIR, --procfs DIR   another machine's view (tests)`;

export interface SetupArgs {
  action: 'config' | 'status' | 'reset';
  allowed: string[];
  hugemem: number;
  driver: string | undefined;
  roots: SystemRoots;
}

export function parse(argv: string[]): SetupArgs {
  const a: SetupArgs = {
    action: 'config',
    allowed: (process.env.PCI_ALLOWED ?? '').split(/\s+/).filter(Boolean),
    hugemem: process.env.HUGEMEM !== undefined ? Number(process.env.HUGEMEM) : 2048,
    driver: process.env.DRIVER_OVERRIDE || undefined,
    roots: { ...REAL_SYSTEM },
  };
  let i = 0;
  if (argv[0] === 'config' || argv[0] === 'status' || argv[0] === 'reset')
    a.action = argv[i++] as SetupArgs['action'];
  const value = (opt: string): string => {
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${opt} needs a value`);
    return v;
  };
  for (; i < argv.length; i++) {
    const o = argv[i];
    if (o === '-a' || o === '--allow') a.allowed.push(value(o));
    else if (o === '--hugemem') a.hugemem = Number(value(o));
    else if (o === '--driver') a.driver = value(o);
    else if (o === '--sysfs') a.roots.sys = value(o);
    else if (o === '--procfs') a.roots.proc = value(o);
    else throw new UsageError(`unknown option '${o}'`);
  }
  if (!Number.isInteger(a.hugemem) || a.hugemem < 0) throw new UsageError('--hugemem takes a number of MiB');
  if (a.driver !== undefined && !(USER_SPACE_DRIVERS as readonly string[]).includes(a.driver)) {
    throw new UsageError(`--driver must be one of ${USER_SPACE_DRIVERS.join(', ')}`);
  }
  return a;
}

function ids(d: NvmeDeviceState): string {
  return `${d.vendor.toString(16).padStart(4, '0')} ${d.device.toString(16).padStart(4, '0')}`;
}

/** Load a driver's module on the real machine (a fake one must have it already). */
function ensureDriver(sys: SystemView, driver: string, real: boolean): void {
  if (sys.pci.driverLoaded(driver)) return;
  if (real) {
    try {
      execFileSync('modprobe', [driver], { stdio: 'ignore' });
    } catch {
      // Reported below if the driver is still missing.
    }
  }
  if (!sys.pci.driverLoaded(driver))
    throw new NativeError(`driver ${driver} is not available (modprobe ${driver})`, 'ENODEV');
}

export function config(a: SetupArgs, sys: SystemView, out: (s: string) => void): number {
  const real = a.roots.sys === REAL_SYSTEM.sys;
  if (a.hugemem > 0) {
    const want = Math.ceil(a.hugemem / 2);
    const have = sys.hugepages().total;
    if (have < want) {
      const got = sys.reserveHugepages(want);
      out(`hugepages: ${have} -> ${got} (2 MiB)${got < want ? `: asked for ${want}, memory is short` : ''}`);
    }
  }
  const driver = a.driver ?? sys.defaultDriver();
  const devices = sys.nvmeDevices(a.allowed);
  if (devices.length === 0) {
    out('no NVMe controllers found');
    return 0;
  }
  ensureDriver(sys, driver, real);
  let refused = 0;
  for (const d of devices) {
    if (d.classCode !== 0x010802) {
      out(
        `${d.address} (${ids(d)}): not an NVMe controller (class 0x${d.classCode.toString(16).padStart(6, '0')}), refused`,
      );
      refused++;
      continue;
    }
    if (d.driver === driver) {
      out(`${d.address} (${ids(d)}): already bound to ${driver}`);
      continue;
    }
    if (d.inUse.length > 0) {
      // SPDK skips a device the kernel is using; one named on the command line is an error.
      const what = `Active devices: ${d.inUse.join(', ')}`;
      if (a.allowed.length > 0) {
        out(`${d.address} (${ids(d)}): refused: ${what}; unmount or release it first`);
        refused++;
      } else {
        out(`${d.address} (${ids(d)}): ${what}, so not binding PCI dev`);
      }
      continue;
    }
    sys.pci.bind(d.address, driver);
    out(`${d.address} (${ids(d)}): ${d.driver ?? 'no driver'} -> ${driver}`);
  }
  return refused > 0 ? 1 : 0;
}

export function reset(a: SetupArgs, sys: SystemView, out: (s: string) => void): number {
  const real = a.roots.sys === REAL_SYSTEM.sys;
  if (real && !sys.pci.driverLoaded('nvme')) ensureDriver(sys, 'nvme', real);
  let failed = 0;
  for (const d of sys.nvmeDevices(a.allowed)) {
    if (d.driver !== null && !(USER_SPACE_DRIVERS as readonly string[]).includes(d.driver)) {
      out(`${d.address} (${ids(d)}): already bound to ${d.driver}`);
      continue;
    }
    try {
      sys.pci.bind(d.address, null);
    } catch (e) {
      out(`${d.address} (${ids(d)}): ${(e as Error).message}`);
      failed++;
      continue;
    }
    const now = sys.pci.info(d.address).driver;
    out(`${d.address} (${ids(d)}): ${d.driver ?? 'no driver'} -> ${now ?? 'no driver'}`);
  }
  return failed > 0 ? 1 : 0;
}

export function status(sys: SystemView, out: (s: string) => void): number {
  const h = sys.hugepages();
  out('Hugepages');
  out('node     hugesize     free /  total');
  const nodes = h.nodes.length > 0 ? h.nodes : [{ node: 0, total: h.total, free: h.free }];
  for (const n of nodes)
    out(`node${n.node}   2048kB ${String(n.free).padStart(8)} / ${String(n.total).padStart(6)}`);
  out('');
  out('Type     BDF             Vendor Device NUMA    Driver           Block devices / users');
  for (const d of sys.nvmeDevices()) {
    const users = d.inUse.length > 0 ? ` (${d.inUse.join(', ')})` : '';
    out(
      `NVMe     ${d.address.padEnd(15)} ${d.vendor.toString(16).padStart(4, '0')}   ${d.device.toString(16).padStart(4, '0')}   ${(d.numaNode < 0 ? 'unknown' : String(d.numaNode)).padEnd(7)} ${(d.driver ?? '-').padEnd(16)} ${d.blockDevices.join(' ') || '-'}${users}`,
    );
  }
  return 0;
}

export const setup: Command = {
  name: 'setup',
  summary: 'reserve hugepages and bind NVMe controllers to vfio-pci/uio (SPDK setup.sh)',
  usage: USAGE,
  async run(argv) {
    const a = parse(argv);
    const sys = new SystemView(a.roots);
    const out = (s: string): void => {
      process.stdout.write(`${s}\n`);
    };
    if (a.action === 'status') return status(sys, out);
    if (a.action === 'reset') return reset(a, sys, out);
    return config(a, sys, out);
  },
};
