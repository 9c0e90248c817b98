import { DmaRegion, type IoMap, MODEL_IO_SHIFT, ModelPciDevice, type PciDevice } from '@storkit/native';
import { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import fc from 'fast-check';

import { IOAT_ECANCELED, IOAT_EIO, IoatChannel, IoatError, ioatProbe, spec } from '../src/index.js';
import { IoatModel } from '../src/testing.js';

/** Poll until `done()`, at most `ms`. */
function pollUntil(ch: IoatChannel, done: () => boolean, ms = 5000): void {
  const end = performance.now() + ms;
  while (!done()) {
    ch.processEvents();
    if (performance.now() > end) throw new Error(`timed out; ${ch.outstanding} outstanding, ${ch.failure}`);
  }
}

async function open(dev: PciDevice, ringOrder?: number): Promise<IoatChannel> {
  const ch = await IoatChannel.attach(dev, { ringOrder });
  ch.claim();
  return ch;
}

/**
 * The device, with the regions the driver maps recorded (the first is its ring) and, optionally,
 * their IO addresses shown to the driver page by page, as physical pages are without an IOMMU.
 */
function recording(
  dev: PciDevice,
  remap?: (r: DmaRegion, m: IoMap) => IoMap,
): { dev: PciDevice; mapped: DmaRegion[] } {
  const mapped: DmaRegion[] = [];
  const proxy = new Proxy(dev, {
    get(t, p) {
      if (p === 'dmaMap') {
        return (r: DmaRegion) => {
          mapped.push(r);
          const m = t.dmaMap(r);
          return remap && mapped.length > 1 ? remap(r, m) : m;
        };
      }
      const v = Reflect.get(t, p, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  return { dev: proxy, mapped };
}

describe('ioat: driver against the device model', function () {
  this.timeout(60_000);
  let model: IoatModel;
  let ch: IoatChannel;
  let mem: DmaRegion;
  let ring: DmaRegion;
  before(async () => {
    model = await IoatModel.start({ channels: 2, xfercap: 12 }); // 4 KiB per descriptor: splits are common
    const rec = recording(model.devices[0]);
    ch = await open(rec.dev);
    ring = rec.mapped[0];
    mem = DmaRegion.create(4 << 20, { hugepages: 'never' });
  });
  after(async () => {
    await ch.detach();
    mem.close();
    await model.stop();
  });

  it('starts the channel as SPDK does: reset, then a null descriptor, one DMACOUNT write', () => {
    const s = model.stats(0);
    expect(s.resets).to.equal(1);
    expect(s.descriptors).to.be.at.least(1);
    expect(ch.version).to.equal(0x33);
    expect(ch.maxTransfer).to.equal(4096);
    expect(ch.getMaxDescriptors()).to.equal(128);
    expect(model.devices[0].bar(0).read32(spec.REG.CHANSTS) & spec.CHANSTS.STATUS_MASK).to.equal(
      spec.CHANSTS.IDLE,
    );
  });

  it('writes descriptors with the exact bytes of struct spdk_ioat_dma_hw_desc', () => {
    // The model's IO addresses: region handle * 2^32 + offset (the PCI layer's model IOMMU).
    const ringIova = ring.handle * MODEL_IO_SHIFT;
    const memIova = mem.handle * MODEL_IO_SHIFT;
    {
      const before = model.stats(0).descriptors;
      let status = -1;
      expect(
        ch.buildCopy(mem.bytes.subarray(8192), mem.bytes.subarray(100), 3000, (_a, s) => (status = s)),
      ).to.equal(true);
      const slot = ring.bytes.subarray(64, 128); // slot 0 held the start's null descriptor
      const dv = new DataView(slot.buffer, slot.byteOffset, 64);
      expect(dv.getUint32(0, true)).to.equal(3000); // size
      expect(dv.getUint32(4, true)).to.equal(0x00000000); // op COPY, no completion update yet
      expect(dv.getBigUint64(8, true)).to.equal(BigInt(memIova + 100)); // src_addr
      expect(dv.getBigUint64(16, true)).to.equal(BigInt(memIova + 8192)); // dest_addr
      expect(dv.getBigUint64(24, true)).to.equal(BigInt(ringIova + 128)); // next: slot 2
      expect(model.stats(0).descriptors).to.equal(before); // built, not handed over
      ch.flush();
      expect(dv.getUint32(4, true)).to.equal(spec.CTL.COMPLETION_UPDATE);
      pollUntil(ch, () => status === 0);
      expect(model.stats(0).descriptors).to.equal(before + 1);
    }
  });

  it('copies and fills of every size and alignment (property)', () => {
    const src = DmaRegion.create(64 * 1024, { hugepages: 'never' });
    try {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 9000 }),
          fc.integer({ min: 0, max: 9000 }),
          fc.integer({ min: 1, max: 20_000 }),
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.integer({ min: 0, max: 0xffffffff }),
          (so, doff, len, lo, hi) => {
            for (let i = 0; i < len; i++) src.bytes[so + i] = (i * 7 + so) & 0xff;
            mem.bytes.fill(0xee, 0, 64 * 1024);
            let done = 0;
            const cb = (_a: unknown, s: number) => {
              expect(s).to.equal(0);
              done++;
            };
            expect(ch.submitCopy(mem.bytes.subarray(doff), src.bytes.subarray(so), len, cb)).to.equal(true);
            expect(ch.submitFill(mem.bytes.subarray(32 * 1024 + doff), lo, hi, len, cb)).to.equal(true);
            pollUntil(ch, () => done === 2);
            for (let i = 0; i < len; i++) {
              if (mem.bytes[doff + i] !== ((i * 7 + so) & 0xff)) throw new Error(`copy byte ${i} wrong`);
              const p = i & 7;
              const want = p < 4 ? (lo >>> (8 * p)) & 0xff : (hi >>> (8 * (p - 4))) & 0xff;
              if (mem.bytes[32 * 1024 + doff + i] !== want) throw new Error(`fill byte ${i} wrong`);
            }
            expect(mem.bytes[doff + len]).to.equal(0xee);
            expect(mem.bytes[doff - 1] ?? 0xee).to.equal(0xee);
          },
        ),
        { numRuns: 150 },
      );
    } finally {
      src.close();
    }
  });

  it('batches many descriptors behind one DMACOUNT write, across ring wraps', async () => {
    const small = await open(model.devices[1], 4); // 16 descriptors
    try {
      const before = model.stats(1);
      const doorbells = small.doorbells;
      let done = 0;
      let flushes = 0;
      for (let op = 0; op < 2000; ) {
        let built = 0;
        while (
          op < 2000 &&
          small.buildCopy(mem.bytes.subarray(1 << 20), mem.bytes.subarray(op % 256), 64, () => done++)
        ) {
          op++;
          built++;
        }
        if (built > 0) {
          small.flush();
          flushes++;
        }
        small.processEvents();
      }
      pollUntil(small, () => done === 2000);
      const after = model.stats(1);
      expect(after.descriptors - before.descriptors).to.equal(2000);
      expect(small.doorbells - doorbells).to.equal(flushes);
      expect(after.dmacountChanges - before.dmacountChanges).to.be.at.most(flushes);
      expect(flushes).to.be.below(2000 / 4);
      // An operation too long for the ring can never be queued: EINVAL, not `false` forever.
      expect(() => small.buildCopy(mem.bytes.subarray(1 << 20), mem.bytes, 20 * 4096, () => {}))
        .to.throw(IoatError)
        .with.property('code', 'EINVAL');
    } finally {
      await small.detach();
    }
  });

  it('a descriptor that faults halts the engine; only its operation fails; the channel recovers', () => {
    const victim = DmaRegion.create(64 * 1024, { hugepages: 'never' });
    const statuses: number[] = [];
    const cb = (i: number, s: number) => (statuses[i] = s);
    const halts = model.stats(0).halts;
    // Queue good, bad (its source unmapped behind the driver's back: an IOMMU fault), good, good.
    expect(ch.buildCopy(mem.bytes.subarray(0), mem.bytes.subarray(65536), 4096, cb, 0)).to.equal(true);
    expect(ch.buildCopy(mem.bytes.subarray(8192), victim.bytes, 10_000, cb, 1)).to.equal(true);
    mem.bytes.fill(5, 200_000, 210_000);
    expect(ch.buildCopy(mem.bytes.subarray(300_000), mem.bytes.subarray(200_000), 10_000, cb, 2)).to.equal(
      true,
    );
    expect(ch.buildFill(mem.bytes.subarray(400_000), 0x09090909, 0x09090909, 5000, cb, 3)).to.equal(true);
    model.devices[0].dmaUnmap(victim);
    ch.flush();
    pollUntil(ch, () => statuses.length === 4 && statuses.every((s) => s !== undefined));
    expect(statuses).to.deep.equal([0, IOAT_EIO, 0, 0]);
    expect(ch.lastError & spec.CHANERR.SRC_ADDR).to.not.equal(0);
    expect(ch.halts).to.be.at.least(1);
    expect(model.stats(0).halts).to.equal(halts + 1);
    expect(model.devices[0].dmaFaults).to.be.at.least(1); // the model's IOMMU refused the access
    expect(mem.bytes.subarray(300_000, 310_000).every((b) => b === 5)).to.equal(true);
    expect(mem.bytes.subarray(400_000, 405_000).every((b) => b === 9)).to.equal(true);
    // The channel serves again, and its errors were cleared.
    let ok = -1;
    ch.submitCopy(mem.bytes.subarray(500_000), mem.bytes.subarray(200_000), 100, (_a, s) => (ok = s));
    pollUntil(ch, () => ok === 0);
    expect(ch.failed).to.equal(false);
    victim.close();
  });

  it('bad input is refused before anything reaches a descriptor', () => {
    const before = model.stats(0).descriptors;
    const plain = new Uint8Array(4096);
    const nop = () => {};
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).to.be.instanceOf(IoatError);
        return (e as IoatError).code;
      }
      return 'no error';
    };
    expect(code(() => ch.buildCopy(mem.bytes, mem.bytes.subarray(4096), 0, nop))).to.equal('EINVAL');
    expect(code(() => ch.buildCopy(mem.bytes.subarray(100), mem.bytes, 4096, nop))).to.equal('EINVAL'); // overlap
    expect(code(() => ch.buildCopyAt(mem, mem.size - 10, mem, 0, 20, nop))).to.equal('EINVAL'); // beyond the region
    expect(code(() => ch.buildCopy(mem.bytes, mem.bytes.subarray(8192), 1e9, nop))).to.equal('EINVAL');
    expect(code(() => ch.buildCopy(mem.bytes, plain, 100, nop))).to.equal('EFAULT'); // not DMA memory
    expect(code(() => ch.buildFill(plain, 0, 0, 100, nop))).to.equal('EFAULT');
    expect(code(() => ch.buildFill(mem.bytes, -1, 0, 100, nop))).to.equal('EINVAL');
    ch.flush();
    expect(ch.outstanding).to.equal(0);
    expect(model.stats(0).descriptors).to.equal(before);
  });

  it('belongs to the thread that claimed it', () => {
    const h = new TestHarness({ reactors: 2 });
    try {
      h.setThread(0);
      const nop = () => {};
      expect(() => ch.buildCopy(mem.bytes, mem.bytes.subarray(8192), 8, nop))
        .to.throw(IoatError)
        .with.property('code', 'EWRONGTHREAD');
      h.setThread(null);
      ch.release();
      h.setThread(1);
      ch.claim();
      h.setThread(0);
      expect(() => ch.claim())
        .to.throw(IoatError)
        .with.property('code', 'EBUSY');
      h.setThread(1);
      let s = -1;
      ch.submitCopy(mem.bytes, mem.bytes.subarray(8192), 8, (_a, st) => (s = st));
      pollUntil(ch, () => s === 0);
      ch.release();
    } finally {
      h.setThread(null);
      ch.claim();
      h.close();
    }
  });
});

describe('ioat: device model edge cases', function () {
  this.timeout(60_000);

  it('probe attaches every I/OAT function by PCI ID; a failing one is reported, not fatal', async () => {
    await using model = await IoatModel.start({ channels: 3 });
    const nvme = ModelPciDevice.create({
      vendor: 0x1b36,
      device: 0x0010,
      classCode: 0x010802,
      bars: [16384],
    });
    const r = await ioatProbe({ devices: [...model.devices, nvme], filter: (a) => !a.endsWith('.1') });
    try {
      expect(r.channels.map((c) => c.address)).to.deep.equal(
        model.devices.map((d) => d.address).filter((a) => !a.endsWith('.1')),
      );
      expect(r.failed).to.deep.equal([]);
    } finally {
      for (const c of r.channels) await c.detach();
      nvme.close();
    }
    await using old = await IoatModel.start({ channels: 1, version: 0x20 });
    const r2 = await ioatProbe({ devices: old.devices });
    expect(r2.channels).to.have.length(0);
    expect((r2.failed[0].error as IoatError).code).to.equal('ENOTSUP');
    await using bad = await IoatModel.start({ channels: 1, xfercap: 5 });
    expect(((await ioatProbe({ devices: bad.devices })).failed[0].error as IoatError).code).to.equal(
      'ENOTSUP',
    );
  });

  it('splits transfers where IO addresses stop being contiguous, each piece at its own page', async () => {
    await using model = await IoatModel.start({ channels: 2 });
    const mem = DmaRegion.create(256 * 1024, { hugepages: 'never' });
    // Pages shown one by one (not contiguous): the engine still finds them, the driver must split.
    const paged = recording(model.devices[0], (_r, m) => ({ ...m, contiguous: false }));
    const ch = await open(paged.dev);
    try {
      for (let i = 0; i < 50_000; i++) mem.bytes[i + 3] = (i * 13) & 0xff;
      const before = model.stats(0).descriptors;
      let s = -1;
      ch.submitCopy(mem.bytes.subarray(100_001), mem.bytes.subarray(3), 50_000, (_a, st) => (s = st));
      pollUntil(ch, () => s === 0);
      for (let i = 0; i < 50_000; i++)
        if (mem.bytes[100_001 + i] !== ((i * 13) & 0xff)) throw new Error(`byte ${i}`);
      // 50,000 bytes cross 12 page boundaries on each side, at different places: 25 pieces.
      expect(model.stats(0).descriptors - before).to.equal(25);
    } finally {
      await ch.detach();
    }
    // Pages in reverse order: each descriptor must carry its own page's address.
    const pages = Math.ceil(mem.size / 4096);
    const rev = recording(model.devices[1], (r, m) => ({
      ...m,
      pageSize: 4096,
      contiguous: false,
      pages: Float64Array.from(
        { length: pages },
        (_x, i) => r.handle * MODEL_IO_SHIFT + (pages - 1 - i) * 4096,
      ),
    }));
    const ch2 = await open(rev.dev);
    let cancelled = 0;
    ch2.buildCopy(
      mem.bytes.subarray(3 * 4096 + 10),
      mem.bytes.subarray(4096 - 6),
      20,
      (_a, st) => (cancelled = st),
    );
    const ringBytes = rev.mapped[0].bytes;
    const d = new DataView(ringBytes.buffer, ringBytes.byteOffset + 64, 128);
    const base = mem.handle * MODEL_IO_SHIFT;
    expect([d.getUint32(0, true), d.getUint32(64, true)]).to.deep.equal([6, 14]);
    expect(Number(d.getBigUint64(8, true))).to.equal(base + (pages - 1) * 4096 + 4090); // src in page 0
    expect(Number(d.getBigUint64(8 + 64, true))).to.equal(base + (pages - 2) * 4096); // src in page 1
    expect(Number(d.getBigUint64(16, true))).to.equal(base + (pages - 4) * 4096 + 10); // dst in page 3
    expect(Number(d.getBigUint64(16 + 64, true))).to.equal(base + (pages - 4) * 4096 + 16);
    await ch2.detach();
    expect(cancelled).to.equal(IOAT_ECANCELED);
    mem.close();
  });

  it('a device that is pulled fails its operations; detach cancels what is queued', async () => {
    await using model = await IoatModel.start({ channels: 2 });
    const mem = DmaRegion.create(64 * 1024, { hugepages: 'never' });
    const a = await open(model.devices[0]);
    const b = await open(model.devices[1]);
    try {
      await model.unplug(0);
      let s = 0;
      a.submitCopy(mem.bytes, mem.bytes.subarray(8192), 64, (_x, st) => (s = st));
      pollUntil(a, () => s !== 0);
      expect(s).to.equal(IOAT_EIO);
      expect(a.failed).to.equal(true);
      expect(a.failure).to.match(/removed/);
      let c = 0;
      b.buildCopy(mem.bytes, mem.bytes.subarray(8192), 64, (_x, st) => (c = st));
      await b.detach();
      expect(c).to.equal(IOAT_ECANCELED);
    } finally {
      await a.detach();
      mem.close();
    }
  });
});
