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
import { AsyncEvent, Feature, LogPage, MediaStatus, makeStatus, Reg, Sct } from '@storkit/nvme-spec';
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

/** Wait for `cond`, polling; a bound only against a hang (the guest is TCG on a shared host). */
async function until(cond: () => boolean, what: string, ms = 60000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** QEMU reports its own version as the firmware revision ("7.2.22"): [major, minor]. */
function qemuVersion(fr: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(fr.trim());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
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
      // QEMU before 9.1 never aborts: its nvme_abort (hw/nvme/ctrl.c) checks the SQ ID and
      // completes the Abort with success and DW0 bit 0 = 1, "command not aborted", leaving the
      // command to finish; 9.1 ("hw/nvme: actually implement abort") cancels AERs and I/O in
      // flight. So on the QEMU of this guest the read completes normally and Abort says so.
      const [major, minor] = qemuVersion(c.cdata.firmwareRevision);
      if (major < 9 || (major === 9 && minor < 1)) {
        expect(aborted, `QEMU ${c.cdata.firmwareRevision} does not abort`).to.equal(false);
        expect(status).to.equal(0);
      } else {
        expect(status === 0 || (aborted && status === 0x07)).to.equal(true);
      }
      expect(await once1(qp, (cb) => qp.read(1, 0, 1, region.bytes.subarray(0, 512), cb, null))).to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('delivers SMART / Health async events (temperature threshold below the composite temperature) and re-arms each AER', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      const events: number[] = [];
      c.onAsyncEvent((dw0) => events.push(dw0));
      const health = await c.getLogPage(LogPage.Health, 512);
      const kelvin = health[1] | (health[2] << 8);
      expect(kelvin, 'composite temperature').to.be.greaterThan(200);
      // Feature 04h, TMPSEL 0 (composite), THSEL 0 (over temperature): the threshold alone.
      const over = (await c.getFeatures(Feature.TemperatureThreshold)) & 0xffff;
      // More events than AERs the driver keeps outstanding (AERL+1, at most 4): every one after
      // the first few is delivered only if the callback's AER was submitted again.
      const rounds = Math.min(c.cdata.aerLimit, 4) + 2;
      for (let i = 0; i < rounds; i++) {
        await c.setFeatures(Feature.TemperatureThreshold, kelvin - 10);
        await until(() => events.length > i, `async event ${i + 1}`);
        const dw0 = events[i];
        expect(dw0 & 7, 'type: SMART / Health status').to.equal(AsyncEvent.TypeSmart);
        expect((dw0 >>> 8) & 0xff, 'info: temperature threshold').to.equal(1);
        expect((dw0 >>> 16) & 0xff, 'log page: SMART / Health').to.equal(LogPage.Health);
        // Reading the log page (RAE = 0) unmasks the event type, so the next one can be raised.
        const log = await c.getLogPage(LogPage.Health, 512);
        expect(log[0] & 2, 'critical warning: temperature').to.equal(2);
        await c.setFeatures(Feature.TemperatureThreshold, over);
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(events.length, 'one event per threshold crossing').to.equal(rounds);
      expect(c.events.aer).to.equal(rounds);
      expect((await c.getLogPage(LogPage.Health, 512))[0] & 2, 'threshold restored').to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('compares (match and miscompare); QEMU refuses fused compare-and-write (FUSES = 0) and nothing is written', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      expect(c.cdata.oncs & 1, 'ONCS: Compare').to.equal(1);
      // QEMU 7.2 reports no fused operation and answers a fused command with Invalid Field
      // (nvme_io_cmd). The nvme bdev reads FUSES and offers no compare-and-write on it.
      expect(c.cdata.fuses & 1, 'FUSES: compare and write').to.equal(0);
      const qp = await c.allocIoQpair();
      const w = fill(region.bytes.subarray(0, 16 * 512), 21);
      expect(await once1(qp, (cb) => qp.write(1, 4000, 16, w, cb, null))).to.equal(0);
      const same = region.bytes.subarray(1 << 20, (1 << 20) + 16 * 512);
      same.set(w);
      expect(await once1(qp, (cb) => qp.compare(1, 4000, 16, same, cb, null)), 'match').to.equal(0);
      same[5000] ^= 1;
      expect(await once1(qp, (cb) => qp.compare(1, 4000, 16, same, cb, null)), 'miscompare').to.equal(
        makeStatus(Sct.Media, MediaStatus.CompareFailure),
      );
      // On the 4 KiB namespace too (another LBA format, PRP lists of 8 pages).
      const w2 = fill(region.bytes.subarray(2 << 20, (2 << 20) + 8 * 4096), 22);
      expect(await once1(qp, (cb) => qp.write(2, 900, 8, w2, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.compare(2, 900, 8, w2, cb, null)), 'match ns2').to.equal(0);
      const other = fill(region.bytes.subarray(3 << 20, (3 << 20) + 16 * 512), 23);
      const st = await once1(qp, (cb) => qp.compareAndWrite(1, 4000, 16, w, other, cb, null));
      expect(st & 0x7ff, 'the fused pair answers once, Invalid Field').to.equal(
        makeStatus(Sct.Generic, 0x02),
      );
      const r = region.bytes.subarray(4 << 20, (4 << 20) + 16 * 512).fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 4000, 16, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w), 'the write half did not run').to.equal(0);
    } finally {
      await c.close();
    }
  });

  it('uses the Controller Memory Buffer: I/O SQs there (cmbSqs), data there (mapCmb), told to the controller as CMBMSC.CBA', async () => {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`, { pcie: { cmbSqs: true } });
    try {
      expect(c.cap.cmbs, 'CAP.CMBS (NVMe 1.4 CMB)').to.equal(true);
      const qp = (await c.allocIoQpair({ depth: 16 })) as PcieQpair;
      expect(qp.sqInCmb, 'the SQ went to the CMB').to.equal(true);
      const [msc] = await c.getRegister(Reg.CMBMSC, 8);
      expect(msc & 3, 'CMBMSC: CRE and CMSE').to.equal(3);
      // Host buffers through an SQ in the CMB.
      const w = fill(region.bytes.subarray(0, 16 * 512), 41);
      expect(await once1(qp, (cb) => qp.write(1, 6000, 16, w, cb, null))).to.equal(0);
      const r = region.bytes.subarray(1 << 20, (1 << 20) + 16 * 512).fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 6000, 16, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w)).to.equal(0);
      // Data buffers in the CMB (the part no SQ holds): written there, read into it, not copied.
      const cmb = c.mapCmb();
      expect(cmb.byteLength, 'the CMB data area').to.be.greaterThan(64 << 10);
      const cw = cmb.subarray(0, 16 * 512);
      cw.set(fill(new Uint8Array(16 * 512), 42));
      expect(await once1(qp, (cb) => qp.write(1, 6100, 16, cw, cb, null)), 'write from the CMB').to.equal(0);
      const cr = cmb.subarray(32 << 10, (32 << 10) + 16 * 512).fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 6100, 16, cr, cb, null)), 'read into the CMB').to.equal(0);
      expect(Buffer.compare(Buffer.from(cr), Buffer.from(cw)), 'CMB read back').to.equal(0);
      expect(qp.stats.bounced, 'CMB buffers are not copied').to.equal(0);
      // What the CMB write put on the medium, read into host memory.
      r.fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 6100, 16, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, fill(new Uint8Array(16 * 512), 42)), 'on the medium').to.equal(0);
      // Once the data area is mapped no further SQ goes to the CMB (SPDK's rule too).
      const qp2 = (await c.allocIoQpair({ depth: 16 })) as PcieQpair;
      expect(qp2.sqInCmb).to.equal(false);
      expect(await once1(qp2, (cb) => qp2.read(1, 6000, 16, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w)).to.equal(0);
    } finally {
      await c.close();
    }
    // Without cmbSqs the SQ stays in host memory.
    const d = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    try {
      expect(((await d.allocIoQpair({ depth: 16 })) as PcieQpair).sqInCmb).to.equal(false);
    } finally {
      await d.close();
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
