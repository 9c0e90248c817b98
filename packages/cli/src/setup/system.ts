// What `storkit setup` reads and changes on the machine, in SPDK scripts/setup.sh's spirit:
// hugepage reservation, NVMe controllers and whether the kernel is using them (mounted
// filesystems, swap, holders such as device-mapper), and which driver they are bound to.
// Every path hangs off a sysfs and a procfs root, so tests run against a fake machine.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { PCI_CLASS_NVME, type PciFunctionInfo, PciSysfs } from '@storkit/native';

export interface SystemRoots {
  sys: string;
  proc: string;
  /** Where block device nodes are named in /proc/mounts (default /dev). */
  dev?: string;
}

export const REAL_SYSTEM: SystemRoots = { sys: '/sys', proc: '/proc' };

/** An NVMe controller as setup sees it. */
export interface NvmeDeviceState extends PciFunctionInfo {
  /** Block devices of its namespaces and their partitions (kernel driver only). */
  blockDevices: string[];
  /** Why the kernel is using it (`mount@nvme0n1p1:/mnt`, `swap@nvme0n1`, `holder@nvme0n1:dm-0`); empty when free. */
  inUse: string[];
}

export class SystemView {
  readonly roots: SystemRoots;
  readonly pci: PciSysfs;

  constructor(roots: SystemRoots = REAL_SYSTEM, pci: PciSysfs = new PciSysfs(roots.sys)) {
    this.roots = roots;
    this.pci = pci;
  }

  /** NVMe controllers (class 0x010802), all or those at `addresses` (ENODEV for a missing one). */
  nvmeDevices(addresses?: readonly string[]): NvmeDeviceState[] {
    const fns =
      addresses === undefined || addresses.length === 0
        ? this.pci.probe({ classCode: PCI_CLASS_NVME })
        : addresses.map((a) => this.pci.info(a));
    return fns.map((f) => {
      const blockDevices = this.blockDevices(f.address);
      return { ...f, blockDevices, inUse: this.#usage(blockDevices) };
    });
  }

  /**
   * Block devices behind a controller: `nvme0n1` and `nvme0n1p1`; with native multipath the
   * path device `nvme0c0n1` belongs to the head `nvme0n1`.
   */
  blockDevices(address: string): string[] {
    const ctrlDir = join(this.pci.devicePath(address), 'nvme');
    if (!existsSync(ctrlDir)) return [];
    const disks = new Set<string>();
    for (const ctrl of readdirSync(ctrlDir)) {
      for (const e of readdirSync(join(ctrlDir, ctrl))) {
        const plain = /^nvme\d+n\d+$/.exec(e);
        const path = /^nvme(\d+)c\d+n(\d+)$/.exec(e);
        if (plain) disks.add(e);
        else if (path) disks.add(`nvme${path[1]}n${path[2]}`);
      }
    }
    const out: string[] = [];
    for (const d of [...disks].sort()) {
      out.push(d);
      const dir = join(this.roots.sys, 'block', d);
      if (existsSync(dir))
        out.push(
          ...readdirSync(dir)
            .filter((p) => p.startsWith(`${d}p`))
            .sort(),
        );
    }
    return out;
  }

  #usage(blocks: readonly string[]): string[] {
    if (blocks.length === 0) return [];
    const dev = this.roots.dev ?? '/dev';
    const reasons: string[] = [];
    const mounts = readLines(join(this.roots.proc, 'mounts'));
    for (const m of mounts) {
      const [src, target] = m.split(' ');
      const b = blocks.find((x) => src === `${dev}/${x}`);
      if (b !== undefined) reasons.push(`mount@${b}:${unescapeMount(target ?? '')}`);
    }
    for (const s of readLines(join(this.roots.proc, 'swaps')).slice(1)) {
      const b = blocks.find((x) => s.split(/\s+/)[0] === `${dev}/${x}`);
      if (b !== undefined) reasons.push(`swap@${b}`);
    }
    for (const b of blocks) {
      const disk = /^(nvme\d+n\d+)p\d+$/.exec(b)?.[1];
      const holders = disk
        ? join(this.roots.sys, 'block', disk, b, 'holders')
        : join(this.roots.sys, 'block', b, 'holders');
      if (existsSync(holders)) for (const h of readdirSync(holders)) reasons.push(`holder@${b}:${h}`);
    }
    return reasons;
  }

  /** The user-space driver to bind to: vfio-pci with an IOMMU, uio_pci_generic without. */
  defaultDriver(): 'vfio-pci' | 'uio_pci_generic' {
    return this.pci.iommuPresent() ? 'vfio-pci' : 'uio_pci_generic';
  }

  /** 2 MiB hugepages: reserved and free, system-wide and per NUMA node. */
  hugepages(): { total: number; free: number; nodes: { node: number; total: number; free: number }[] } {
    const base = join(this.roots.sys, 'kernel/mm/hugepages/hugepages-2048kB');
    const num = (p: string): number => (existsSync(p) ? Number(readFileSync(p, 'utf8').trim()) : 0);
    const nodesDir = join(this.roots.sys, 'devices/system/node');
    const nodes = existsSync(nodesDir)
      ? readdirSync(nodesDir)
          .filter((n) => /^node\d+$/.test(n))
          .map((n) => {
            const d = join(nodesDir, n, 'hugepages/hugepages-2048kB');
            return {
              node: Number(n.slice(4)),
              total: num(join(d, 'nr_hugepages')),
              free: num(join(d, 'free_hugepages')),
            };
          })
          .sort((a, b) => a.node - b.node)
      : [];
    return { total: num(join(base, 'nr_hugepages')), free: num(join(base, 'free_hugepages')), nodes };
  }

  /** Ask for `count` 2 MiB hugepages; returns how many the kernel reserved (fewer when memory is short or fragmented). */
  reserveHugepages(count: number): number {
    const p = join(this.roots.sys, 'kernel/mm/hugepages/hugepages-2048kB/nr_hugepages');
    writeFileSync(p, String(count));
    return Number(readFileSync(p, 'utf8').trim());
  }
}

function readLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

// /proc/mounts escapes space, tab, newline and backslash as octal.
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}
