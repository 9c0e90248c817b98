import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PciSysfs } from '@storkit/native';
import { expect } from 'chai';

import { config, parse, reset, status } from '../src/commands/setup.js';
import { SystemView } from '../src/setup/system.js';

/**
 * A fake machine: three NVMe controllers on the kernel's nvme driver (one with a mounted
 * partition, one under device-mapper, one free), a NIC, hugepage files, /proc/mounts. Its
 * "kernel" moves a device to the driver named in driver_override when drivers_probe is written.
 */
function machine(root: string, iommu: boolean): SystemView {
  const sys = join(root, 'sys');
  const proc = join(root, 'proc');
  mkdirSync(join(sys, 'bus/pci/devices'), { recursive: true });
  mkdirSync(proc, { recursive: true });
  for (const d of ['nvme', 'vfio-pci', 'uio_pci_generic', 'virtio-pci'])
    mkdirSync(join(sys, 'bus/pci/drivers', d), { recursive: true });
  if (iommu) mkdirSync(join(sys, 'kernel/iommu_groups/1'), { recursive: true });
  const hp = join(sys, 'kernel/mm/hugepages/hugepages-2048kB');
  mkdirSync(hp, { recursive: true });
  writeFileSync(join(hp, 'nr_hugepages'), '0\n');
  writeFileSync(join(hp, 'free_hugepages'), '0\n');
  writeFileSync(join(sys, 'bus/pci/drivers_probe'), '');
  const fn = (bdf: string, cls: string, driver: string, ctrl: string | null, entries: string[]) => {
    const d = join(sys, 'devices/pci0000:00', bdf);
    mkdirSync(d, { recursive: true });
    for (const [f, v] of Object.entries({
      vendor: '0x1b36',
      device: '0x0010',
      class: cls,
      driver_override: '(null)',
    })) {
      writeFileSync(join(d, f), `${v}\n`);
    }
    symlinkSync(join(sys, 'bus/pci/drivers', driver), join(d, 'driver'));
    if (ctrl !== null) for (const e of entries) mkdirSync(join(d, 'nvme', ctrl, e), { recursive: true });
    symlinkSync(d, join(sys, 'bus/pci/devices', bdf));
  };
  fn('0000:00:02.0', '0x020000', 'virtio-pci', null, []);
  fn('0000:00:03.0', '0x010802', 'nvme', 'nvme0', ['nvme0c0n1']);
  fn('0000:00:04.0', '0x010802', 'nvme', 'nvme1', ['nvme1n1', 'nvme1n2']);
  fn('0000:00:05.0', '0x010802', 'nvme', 'nvme2', ['nvme2n1']);
  mkdirSync(join(sys, 'block/nvme0n1/nvme0n1p1/holders'), { recursive: true });
  mkdirSync(join(sys, 'block/nvme0n1/holders'), { recursive: true });
  mkdirSync(join(sys, 'block/nvme1n2/holders/dm-0'), { recursive: true });
  mkdirSync(join(sys, 'block/nvme2n1/holders'), { recursive: true });
  writeFileSync(
    join(proc, 'mounts'),
    'sysfs /sys sysfs rw 0 0\n/dev/nvme0n1p1 /mnt/my\\040data ext4 rw 0 0\n',
  );
  writeFileSync(join(proc, 'swaps'), 'Filename Type Size Used Priority\n');
  const kernel = (bdf: string) => {
    const d = join(sys, 'devices/pci0000:00', bdf);
    const want = readFileSync(join(d, 'driver_override'), 'utf8').trim();
    const drv = want === '' || want === '(null)' ? 'nvme' : want;
    if (existsSync(join(d, 'driver'))) unlinkSync(join(d, 'driver'));
    if (drv !== 'nvme') rmSync(join(d, 'nvme'), { recursive: true, force: true });
    symlinkSync(join(sys, 'bus/pci/drivers', drv), join(d, 'driver'));
  };
  return new SystemView({ sys, proc }, new PciSysfs(sys, kernel));
}

function run(f: (out: (s: string) => void) => number): { code: number; lines: string[] } {
  const lines: string[] = [];
  const code = f((s) => lines.push(s));
  return { code, lines };
}

describe('cli: storkit setup', () => {
  let root = '';
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'storkit-setup-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('sees namespaces, partitions and who uses them (mounts, holders, multipath heads)', () => {
    const sys = machine(root, true);
    const devs = sys.nvmeDevices();
    expect(devs.map((d) => d.address)).to.deep.equal(['0000:00:03.0', '0000:00:04.0', '0000:00:05.0']);
    expect(devs[0].blockDevices).to.deep.equal(['nvme0n1', 'nvme0n1p1']);
    expect(devs[0].inUse).to.deep.equal(['mount@nvme0n1p1:/mnt/my data']);
    expect(devs[1].inUse).to.deep.equal(['holder@nvme1n2:dm-0']);
    expect(devs[2].inUse).to.deep.equal([]);
    expect(sys.defaultDriver()).to.equal('vfio-pci');
    expect(machine(join(root, 'b'), false).defaultDriver()).to.equal('uio_pci_generic');
  });

  it('binds every free controller, skips busy ones, and reserves hugepages', () => {
    const sys = machine(root, true);
    const a = parse(['--hugemem', '512', '--sysfs', 'x']);
    const r = run((out) => config(a, sys, out));
    expect(r.code).to.equal(0);
    expect(r.lines).to.include('hugepages: 0 -> 256 (2 MiB)');
    expect(r.lines).to.include('0000:00:05.0 (1b36 0010): nvme -> vfio-pci');
    expect(r.lines.join('\n')).to.match(
      /0000:00:03.0 .*Active devices: mount@nvme0n1p1:\/mnt\/my data, so not binding/,
    );
    expect(r.lines.join('\n')).to.match(/0000:00:04.0 .*holder@nvme1n2:dm-0, so not binding/);
    expect(sys.pci.info('0000:00:03.0').driver).to.equal('nvme');
    expect(sys.pci.info('0000:00:05.0').driver).to.equal('vfio-pci');
    // Again: nothing to do.
    expect(run((out) => config(a, sys, out)).lines).to.include(
      '0000:00:05.0 (1b36 0010): already bound to vfio-pci',
    );
  });

  it('refuses a named controller with a mounted filesystem (exit 1) and binds the others named', () => {
    const sys = machine(root, false);
    const r = run((out) =>
      config(parse(['-a', '0000:00:03.0', '-a', '00:05.0', '--hugemem', '0', '--sysfs', 'x']), sys, out),
    );
    expect(r.code).to.equal(1);
    expect(r.lines[0]).to.match(/0000:00:03.0 .*refused: Active devices: mount@nvme0n1p1.*unmount/);
    expect(r.lines[1]).to.equal('0000:00:05.0 (1b36 0010): nvme -> uio_pci_generic');
    expect(sys.hugepages().total).to.equal(0);
  });

  it('shows status and resets controllers back to the kernel driver', () => {
    const sys = machine(root, true);
    run((out) => config(parse(['--hugemem', '0', '--sysfs', 'x']), sys, out));
    const s = run((out) => status(sys, out));
    expect(s.lines.join('\n')).to.match(/NVMe {5}0000:00:05.0 {4}1b36 {3}0010 {3}unknown vfio-pci {9}-/);
    expect(s.lines.join('\n')).to.match(/0000:00:03.0 .*nvme .*nvme0n1 nvme0n1p1 \(mount@nvme0n1p1/);
    const r = run((out) => reset(parse(['reset', '--sysfs', 'x']), sys, out));
    expect(r.code).to.equal(0);
    expect(r.lines).to.include('0000:00:05.0 (1b36 0010): vfio-pci -> nvme');
    expect(r.lines).to.include('0000:00:03.0 (1b36 0010): already bound to nvme');
    expect(sys.pci.info('0000:00:05.0').driver).to.equal('nvme');
  });

  it('rejects bad options', () => {
    expect(() => parse(['--driver', 'nvme'])).to.throw(/--driver must be one of vfio-pci, uio_pci_generic/);
    expect(() => parse(['--hugemem', 'lots'])).to.throw(/--hugemem/);
    expect(() => parse(['-a'])).to.throw(/needs a value/);
  });
});
