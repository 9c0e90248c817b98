// The PCIe driver against QEMU's NVMe controller, inside the guest of the PCIe guest test
// (packages/cli/test/pcie-guest.test.ts boots it; packages/cli/test/guest/pcie-checks.sh binds the
// controllers and runs this with mocha). Not part of `npm test` on the host: *.guest.js.
//   PCIE_A: vfio-pci, two namespaces (512-byte and 4 KiB blocks)
//   PCIE_U: uio_pci_generic (physical addresses)
//   PCIE_H: vfio-pci behind a hotplug port: QEMU's device_del takes it away under I/O
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { DmaRegion } from '@storkit/native';
import { expect } from 'chai';

import {
  NvmeController,
  type PcieQpair,
  type PcieQpairGrant,
  STATUS_ABORTED_SQ_DELETION,
} from '../src/index.js';
import { once1 } from './once.js';

function env(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(
      `${name} is not set: this spec runs in the PCIe guest (packages/cli/test/pcie-guest.test.ts)`,
    );
  return v;
}

function fill(b: Uint8Array, seed: number): Uint8Array {
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

describe('guest: PCIe driver on QEMU NVMe', function () {
  this.timeout(300000);
  const A = env('PCIE_A');
  const U = env('PCIE_U');
  const H = env('PCIE_H');
  let region: DmaRegion;
  before(() => {
    region = DmaRegion.create(8 << 20);
  });
  after(() => region.close());

  it('identifies the controller and both namespaces over VFIO', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      expect(c.cdata.modelNumber).to.equal('QEMU NVMe Ctrl');
      expect(c.cdata.serialNumber).to.equal('STORKITA');
      expect(c.pciId).to.deep.equal({ vendor: 0x1b36, device: 0x0010 });
      expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
      expect((await c.identifyNamespace(2)).blockSize).to.equal(4096);
    } finally {
      await c.close();
    }
  });

  for (const pcie of [{}, { sgl: false }, { shadowDoorbells: false, delayDoorbell: false }]) {
    it(`writes and reads back large, small and unaligned transfers on both namespaces (${JSON.stringify(pcie)})`, async () => {
      const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`, { pcie });
      try {
        const qp = (await c.allocIoQpair({ depth: 64 })) as PcieQpair;
        // A second qpair reads back what the first wrote (several queues on one controller).
        const qp2 = (await c.allocIoQpair({ depth: 16 })) as PcieQpair;
        expect(qp.shadowDoorbells).to.equal(pcie.shadowDoorbells !== false);
        const cases = [
          [1, 0, 1, 0],
          [1, 100, 8, 4],
          [1, 1000, 2048, 0], // 1 MiB: above MDTS, split
          [1, 5000, 600, 4 * 333], // PRP lists from an unaligned start
          [2, 7, 1, 0],
          [2, 64, 160, 512], // 640 KiB on 4 KiB blocks
        ];
        for (const [nsid, lba, nlb, off] of cases) {
          const bs = nsid === 1 ? 512 : 4096;
          const w = fill(region.bytes.subarray(off, off + nlb * bs), lba + nlb);
          expect(
            await once1(qp, (cb) => qp.write(nsid, lba, nlb, w, cb, null)),
            `write ${nsid}/${lba}/${nlb}`,
          ).to.equal(0);
          const r = region.bytes.subarray((4 << 20) + 4, (4 << 20) + 4 + nlb * bs).fill(0);
          expect(
            await once1(qp2, (cb) => qp2.read(nsid, lba, nlb, r, cb, null)),
            `read ${nsid}/${lba}/${nlb}`,
          ).to.equal(0);
          expect(Buffer.compare(w, r), `data ${nsid}/${lba}/${nlb}`).to.equal(0);
        }
        expect(qp.stats.bounced + qp2.stats.bounced).to.equal(0);
        expect(qp.stats.split).to.be.greaterThan(0);
        expect(qp2.stats.split).to.be.greaterThan(0);
      } finally {
        await c.close();
      }
    });
  }

  it('runs a qpair on another thread than its controller, beside one on the controller thread', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      const local = await c.allocIoQpair();
      const w = fill(region.bytes.subarray(0, 8 * 512), 11);
      expect(await once1(local, (cb) => local.write(1, 2600, 8, w, cb, null))).to.equal(0);
      // One worker: starting a thread with the addon costs tens of seconds under TCG.
      const runs = [1].map(async (i) => {
        const grant = (await c.grantIoQpair({ depth: 64 })) as PcieQpairGrant;
        const w = new Worker(new URL('./pcie-qpair-worker.js', import.meta.url), {
          workerData: {
            grant,
            nsid: 1 + i,
            firstLba: 2000 + i * 100,
            blocks: 48,
            blockSize: i ? 4096 : 512,
            seed: i,
          },
        });
        const [res] = (await once(w, 'message')) as [{ errors: number; readStatus: number; same: boolean }];
        await w.terminate();
        await c.releaseIoQpair(grant);
        return res;
      });
      for (const r of await Promise.all(runs))
        expect(r).to.deep.include({ errors: 0, readStatus: 0, same: true });
    } finally {
      await c.close();
    }
  });

  it('deallocates and writes zeroes: both read back as zeroes (DLFEAT: deallocated reads 0x00)', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      const qp = await c.allocIoQpair();
      const w = fill(region.bytes.subarray(0, 16 * 512), 3);
      const r = region.bytes.subarray(1 << 20, (1 << 20) + 16 * 512);
      for (const lba of [3000, 3100])
        expect(await once1(qp, (cb) => qp.write(1, lba, 16, w, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.deallocate(1, [[3000, 16]], cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.writeZeroes(1, 3100, 16, cb, null))).to.equal(0);
      for (const lba of [3000, 3100]) {
        r.fill(0xee);
        expect(await once1(qp, (cb) => qp.read(1, lba, 16, r, cb, null))).to.equal(0);
        expect(
          r.every((x) => x === 0),
          `lba ${lba}`,
        ).to.equal(true);
      }
      expect(await once1(qp, (cb) => qp.flush(1, cb, null))).to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('resets the controller under I/O: every command answers once, then the qpair works again', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      const qp = await c.allocIoQpair({ depth: 64 });
      const w = fill(region.bytes.subarray(0, 4096), 9);
      expect(await once1(qp, (cb) => qp.write(2, 300, 1, w, cb, null))).to.equal(0);
      const statuses: number[] = [];
      for (let i = 0; i < 48; i++) {
        qp.read(
          2,
          i,
          1,
          region.bytes.subarray(8192 + i * 4096, 8192 + (i + 1) * 4096),
          (_c, s) => statuses.push(s),
          null,
        );
      }
      qp.processCompletions();
      await c.reset();
      qp.processCompletions();
      expect(statuses.length).to.equal(48);
      expect(statuses.every((s) => s === 0 || s === STATUS_ABORTED_SQ_DELETION)).to.equal(true);
      const r = region.bytes.subarray(1 << 20, (1 << 20) + 4096).fill(0);
      expect(await once1(qp, (cb) => qp.read(2, 300, 1, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w)).to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('sends Abort for an outstanding command; the command answers exactly once and the controller goes on', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      const qp = (await c.allocIoQpair()) as PcieQpair;
      let answers = 0;
      let status = -1;
      qp.read(
        1,
        0,
        256,
        region.bytes.subarray(0, 128 * 1024),
        (_c, s) => {
          answers++;
          status = s;
        },
        null,
      );
      qp.processCompletions();
      const aborted = await c.abort(qp.qid, qp.lastCommandId);
      while (answers === 0) {
        qp.processCompletions();
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 50));
      qp.processCompletions();
      expect(answers).to.equal(1);
      // QEMU may have finished the read before the Abort arrived: either answer is fine, once.
      expect(status === 0 || (aborted && status === 0x07)).to.equal(true);
      expect(await once1(qp, (cb) => qp.read(1, 0, 1, region.bytes.subarray(0, 512), cb, null))).to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('drives the uio controller with physical addresses of hugepages', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${U}`);
    const big = DmaRegion.create(4 << 20, { hugepages: 'require' });
    try {
      expect(c.cdata.serialNumber).to.equal('STORKITU');
      const qp = await c.allocIoQpair();
      // Across the 2 MiB hugepage boundary: physical pages need not be adjacent.
      const off = (2 << 20) - 8192 + 12;
      const w = fill(big.bytes.subarray(off, off + 64 * 1024), 5);
      expect(await once1(qp, (cb) => qp.write(1, 64, 128, w, cb, null))).to.equal(0);
      const r = big.bytes.subarray(0, 64 * 1024).fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 64, 128, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w)).to.equal(0);
      expect((qp as PcieQpair).stats.bounced).to.equal(0);
    } finally {
      await c.close();
      big.close();
    }
  });

  it('survives QEMU device_del under I/O: I/O fails, the controller says removed, the kernel gets the device back', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${H}`);
    const qp = await c.allocIoQpair({ depth: 32 });
    let removed: Error | null = null;
    c.onRemove((e) => {
      removed = e;
    });
    let ok = 0;
    let failed = 0;
    let stop = false;
    const b = region.bytes.subarray(0, 4096);
    const again = (_c: null, s: number): void => {
      if (s === 0) ok++;
      else failed++;
      if (!stop) qp.read(1, ok % 1000, 8, b, again, null);
    };
    for (let i = 0; i < 16; i++) qp.read(1, i, 8, b, again, null);
    process.stdout.write('GUEST-REQUEST: device_del hot\n');
    const t0 = Date.now();
    while (removed === null && Date.now() - t0 < 120000) {
      qp.processCompletions();
      await new Promise((r) => setImmediate(r));
    }
    stop = true;
    expect(String(removed), 'the removal was seen').to.match(/removed/);
    expect(qp.connected).to.equal(false);
    expect(qp.outstanding, 'no command left hanging').to.equal(0);
    expect(ok).to.be.greaterThan(0);
    expect(failed).to.be.greaterThan(0);
    await c.close();
    // With our device fd closed the kernel completes the removal.
    const t1 = Date.now();
    while (existsSync(`/sys/bus/pci/devices/${H}`) && Date.now() - t1 < 60000)
      await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(`/sys/bus/pci/devices/${H}`), 'the device left the bus').to.equal(false);
  });
});
