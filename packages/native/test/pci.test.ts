import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  attachPciDevice,
  DmaRegion,
  ioAddressIn,
  MODEL_IO_SHIFT,
  ModelPciDevice,
  NativeError,
  openPciDevice,
  PCI_CFG,
  PCI_CLASS_NVME,
  PciFunctionModel,
  PciSysfs,
  parsePciAddress,
  registerPciModel,
  unregisterPciModel,
} from '../src/index.js';
import { nextMessage, startWorker } from './workers.js';

/** A fake /sys with PCI functions, drivers and IOMMU groups, as files and symlinks. */
function fakeSysfs(root: string): void {
  mkdirSync(join(root, 'bus/pci/devices'), { recursive: true });
  for (const d of ['nvme', 'vfio-pci', 'uio_pci_generic'])
    mkdirSync(join(root, 'bus/pci/drivers', d), { recursive: true });
  mkdirSync(join(root, 'kernel/iommu_groups/3'), { recursive: true });
  writeFileSync(join(root, 'bus/pci/drivers_probe'), '');
  const fn = (
    bdf: string,
    vendor: string,
    device: string,
    cls: string,
    driver: string | null,
    group: number | null,
  ) => {
    const d = join(root, 'devices/pci0000:00', bdf);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'vendor'), `${vendor}\n`);
    writeFileSync(join(d, 'device'), `${device}\n`);
    writeFileSync(join(d, 'subsystem_vendor'), '0x1af4\n');
    writeFileSync(join(d, 'subsystem_device'), '0x1100\n');
    writeFileSync(join(d, 'class'), `${cls}\n`);
    writeFileSync(join(d, 'numa_node'), '-1\n');
    writeFileSync(join(d, 'driver_override'), '(null)\n');
    const cfg = Buffer.alloc(256);
    cfg.writeUInt16LE(Number(vendor), 0);
    cfg.writeUInt16LE(Number(device), 2);
    cfg.writeUInt16LE(0x0103, 4);
    writeFileSync(join(d, 'config'), cfg);
    writeFileSync(
      join(d, 'resource'),
      '0x00000000fe000000 0x00000000fe003fff 0x0000000000140204\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n',
    );
    writeFileSync(join(d, 'resource0'), Buffer.alloc(16384));
    if (driver !== null) symlinkSync(join(root, 'bus/pci/drivers', driver), join(d, 'driver'));
    if (group !== null) symlinkSync(join(root, 'kernel/iommu_groups', String(group)), join(d, 'iommu_group'));
    symlinkSync(d, join(root, 'bus/pci/devices', bdf));
  };
  fn('0000:00:02.0', '0x1af4', '0x1000', '0x020000', null, null);
  fn('0000:00:03.0', '0x1b36', '0x0010', '0x010802', 'uio_pci_generic', null);
  fn('0000:00:04.0', '0x8086', '0x0953', '0x010802', 'nvme', 3);
  fn('0000:00:05.0', '0x1b36', '0x0010', '0x010802', null, null);
}

describe('native: PCI device access', () => {
  let root = '';
  let locks = '';
  let sysfs: PciSysfs;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'storkit-sysfs-'));
    locks = mkdtempSync(join(tmpdir(), 'storkit-locks-'));
    fakeSysfs(root);
    sysfs = new PciSysfs(root);
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(locks, { recursive: true, force: true });
  });

  it('parses addresses, adding the domain and refusing anything else', () => {
    expect(parsePciAddress('0000:00:03.0')).to.equal('0000:00:03.0');
    expect(parsePciAddress('00:1F.7')).to.equal('0000:00:1f.7');
    for (const bad of ['0000:00:03', '0000:00:20.0', '0000:00:03.8', 'x', '../0000:00:03.0']) {
      expect(() => parsePciAddress(bad), bad)
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
    }
  });

  it('probes by class, by vendor:device list and by address', () => {
    expect(sysfs.list().map((f) => f.address)).to.deep.equal([
      '0000:00:02.0',
      '0000:00:03.0',
      '0000:00:04.0',
      '0000:00:05.0',
    ]);
    const nvme = sysfs.probe({ classCode: PCI_CLASS_NVME });
    expect(nvme.map((f) => f.address)).to.deep.equal(['0000:00:03.0', '0000:00:04.0', '0000:00:05.0']);
    expect(nvme[1]).to.deep.include({
      vendor: 0x8086,
      device: 0x0953,
      driver: 'nvme',
      iommuGroup: 3,
      numaNode: -1,
    });
    expect(nvme[0]).to.deep.include({ driver: 'uio_pci_generic', iommuGroup: null, subsystemVendor: 0x1af4 });
    expect(sysfs.probe({ ids: [{ vendor: 0x1b36, device: 0x0010 }] }).map((f) => f.address)).to.deep.equal([
      '0000:00:03.0',
      '0000:00:05.0',
    ]);
    expect(sysfs.probe({ classCode: PCI_CLASS_NVME, addresses: ['00:04.0'] })).to.have.length(1);
    expect(sysfs.iommuPresent()).to.equal(true);
    expect(sysfs.barSize('0000:00:03.0', 0)).to.equal(16384);
    expect(sysfs.barSize('0000:00:03.0', 1)).to.equal(0);
  });

  it('binds through driver_override and drivers_probe, unbinds through the driver', () => {
    sysfs.unbind('0000:00:04.0');
    expect(readFileSync(join(root, 'bus/pci/drivers/nvme/unbind'), 'utf8')).to.equal('0000:00:04.0');
    // The fake kernel does not move the device: the bind reports that, naming the driver.
    expect(() => sysfs.bind('0000:00:04.0', 'vfio-pci'))
      .to.throw(NativeError)
      .with.property('code', 'EIO');
    expect(readFileSync(join(sysfs.devicePath('0000:00:04.0'), 'driver_override'), 'utf8')).to.equal(
      'vfio-pci',
    );
    expect(readFileSync(join(root, 'bus/pci/drivers_probe'), 'utf8')).to.equal('0000:00:04.0');
    expect(() => sysfs.bind('0000:00:04.0', 'no_such_driver'))
      .to.throw(NativeError)
      .with.property('code', 'ENODEV');
  });

  it('refuses a missing, foreign, unbound or kernel-owned function, naming storkit setup', () => {
    const open = (a: string) => () =>
      openPciDevice(a, { sysfs, classCode: PCI_CLASS_NVME, what: 'an NVMe controller', lockDir: locks });
    expect(open('0000:00:09.0')).to.throw(NativeError).with.property('code', 'ENODEV');
    expect(open('0000:00:02.0'))
      .to.throw(/is not an NVMe controller \(class 0x020000/)
      .with.property('code', 'ENOTSUP');
    expect(open('0000:00:05.0'))
      .to.throw(/storkit setup/)
      .with.property('code', 'ENXIO');
    expect(open('0000:00:04.0'))
      .to.throw(/kernel driver nvme: run `storkit setup`/)
      .with.property('code', 'EBUSY');
  });

  it('opens a uio function: config space file, BAR resource file, one claim at a time', () => {
    const dev = openPciDevice('0000:00:03.0', { sysfs, classCode: PCI_CLASS_NVME, lockDir: locks });
    try {
      expect(dev.kind).to.equal('uio');
      expect(dev.configRead(PCI_CFG.VENDOR_ID, 2)).to.equal(0x1b36);
      expect(dev.configRead(PCI_CFG.VENDOR_ID, 4)).to.equal(0x00101b36);
      dev.enableBusMaster();
      expect(dev.configRead(PCI_CFG.COMMAND, 2)).to.equal(0x0107);
      expect(() => dev.configRead(1, 2))
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
      const bar = dev.bar(0);
      expect(bar.size).to.equal(16384);
      bar.write32(0x1000, 0xabcd);
      expect(readFileSync(sysfs.file('0000:00:03.0', 'resource0')).readUInt32LE(0x1000)).to.equal(0xabcd);
      expect(() => dev.bar(1))
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
      expect(dev.removed()).to.equal(false);
      // Another opener (even in this process) is refused while the claim is held.
      expect(() => openPciDevice('0000:00:03.0', { sysfs, lockDir: locks }))
        .to.throw(/claimed by process/)
        .with.property('code', 'EBUSY');
      // uio gives devices physical addresses: only hugepages will do.
      using small = DmaRegion.create(4096, { hugepages: 'never' });
      expect(() => dev.dmaMap(small))
        .to.throw(/hugepage/)
        .with.property('code', 'EINVAL');
    } finally {
      dev.close();
    }
    expect(dev.closed).to.equal(true);
    expect(() => dev.bar(0))
      .to.throw(NativeError)
      .with.property('code', 'EBADF');
    openPciDevice('0000:00:03.0', { sysfs, lockDir: locks }).close();
  });

  describe('a device model', () => {
    const ids = { vendor: 0x1b36, device: 0x0010, classCode: PCI_CLASS_NVME, bars: [16384] };

    it('shows config space and BARs, and DMAs only into mapped regions with bus mastering on', () => {
      const dev = ModelPciDevice.create(ids);
      const model = new PciFunctionModel(dev.share());
      using region = DmaRegion.create(8192, { hugepages: 'never' });
      try {
        expect(dev.configRead(PCI_CFG.DEVICE_ID, 2)).to.equal(0x0010);
        expect(dev.configRead(PCI_CFG.REVISION, 4) >>> 8).to.equal(PCI_CLASS_NVME);
        dev.bar(0).write32(0x1000, 5);
        expect(model.bar(0).read32(0x1000)).to.equal(5);
        const io = dev.dmaMap(region);
        expect(io.space).to.equal('iova');
        expect(ioAddressIn(io, 4100)).to.equal(region.handle * MODEL_IO_SHIFT + 4100);
        // Bus mastering off: a fault, counted.
        expect(model.dma(ioAddressIn(io, 0), 16)).to.equal(null);
        expect(dev.dmaFaults).to.equal(1);
        dev.enableBusMaster();
        const view = model.dma(ioAddressIn(io, 4096), 8) as Uint8Array;
        view.set([1, 2, 3]);
        expect([...region.bytes.subarray(4096, 4099)]).to.deep.equal([1, 2, 3]);
        // Out of the region, or an unmapped region: faults.
        expect(model.dma(ioAddressIn(io, 8190), 4)).to.equal(null);
        dev.dmaUnmap(region);
        expect(model.dma(ioAddressIn(io, 0), 4)).to.equal(null);
        expect(dev.dmaFaults).to.equal(3);
      } finally {
        model.close();
        dev.close();
      }
    });

    it('resets on request (command register cleared) and shows a surprise removal', async () => {
      const dev = ModelPciDevice.create(ids);
      const model = new PciFunctionModel(dev.share());
      try {
        dev.enableBusMaster();
        const done = dev.reset();
        expect(model.resetRequested()).to.equal(true);
        model.resetDone();
        await done;
        expect(model.resetRequested()).to.equal(false);
        expect(dev.configRead(PCI_CFG.COMMAND, 2) & PCI_CFG.CMD_BUS_MASTER).to.equal(0);
        // A model nobody runs never acknowledges: the reset times out.
        let code = '';
        await dev.reset(20).catch((e: NativeError) => {
          code = e.code;
        });
        expect(code).to.equal('ETIMEDOUT');
        expect(dev.removed()).to.equal(false);
        model.remove();
        expect(dev.removed()).to.equal(true);
        expect(dev.bar(0).read32(0)).to.equal(0xffffffff);
      } finally {
        model.close();
        dev.close();
      }
    });

    it('is reached the same way from another worker (BAR views, IOMMU mapping)', async () => {
      const dev = ModelPciDevice.create(ids);
      const model = new PciFunctionModel(dev.share());
      dev.enableBusMaster();
      dev.bar(0);
      try {
        const w = startWorker(
          `const acc = n.attachPciDevice(data.share);
           const r = n.DmaRegion.create(4096, { hugepages: 'never' });
           r.bytes.set([9, 8, 7]);
           const io = acc.dmaMap(r);
           acc.bar(0).doorbell32(0x1008, 42);
           port.postMessage({ io: n.ioAddressIn(io, 0), kind: acc.kind });
           await new Promise((res) => port.once('message', res));
           acc.close(); r.close();
           port.postMessage({ done: true });`,
          { share: dev.share() },
        );
        const m = await nextMessage<{ io: number; kind: string }>(w);
        expect(m.kind).to.equal('model');
        expect(model.bar(0).read32(0x1008)).to.equal(42);
        expect([...(model.dma(m.io, 3) as Uint8Array)]).to.deep.equal([9, 8, 7]);
        w.postMessage('go');
        await nextMessage(w);
        await w.terminate();
      } finally {
        model.close();
        dev.close();
      }
    });

    it('is found by address from any worker once registered, and opened by one at a time', async () => {
      const dev = ModelPciDevice.create(ids);
      registerPciModel(dev.share());
      try {
        const w = startWorker(
          `const d = n.openPciDevice(data.address, { classCode: 0x010802 });
           let code = '';
           try { n.openPciDevice(data.address); } catch (e) { code = e.code; }
           d.bar(0).write32(0x1004, 77);
           const kind = d.kind;
           d.close();
           const again = n.openPciDevice(data.address); again.close();
           port.postMessage({ kind, code });`,
          { address: dev.address },
        );
        const m = await nextMessage<{ kind: string; code: string }>(w);
        await w.terminate();
        expect(m).to.deep.equal({ kind: 'model', code: 'EBUSY' });
        expect(dev.bar(0).read32(0x1004)).to.equal(77);
      } finally {
        unregisterPciModel(dev.address);
        dev.close();
      }
      expect(() => openPciDevice(dev.address))
        .to.throw(NativeError)
        .with.property('code', 'ENODEV');
    });

    it('an attached worker view of a missing BAR says so', () => {
      const dev = ModelPciDevice.create(ids);
      try {
        const acc = attachPciDevice(dev.share());
        expect(() => acc.bar(2))
          .to.throw(NativeError)
          .with.property('code', 'EINVAL');
        acc.close();
      } finally {
        dev.close();
      }
    });
  });
});
