// The PCIe transport against the software NVMe controller (src/pcie/model): everything the
// driver does, fast and deterministic, on the host. QEMU's controller judges the same driver in
// the guest tests (packages/cli/test/pcie-guest.test.ts).

import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

import { DmaRegion, NativeError } from '@storkit/native';
import { Feature, GenericStatus, MediaStatus, makeStatus, Sct } from '@storkit/nvme-spec';
import { expect } from 'chai';
import fc from 'fast-check';

import {
  type HostQpair,
  NvmeController,
  type PcieQpair,
  type PcieQpairGrant,
  STATUS_ABORTED_SQ_DELETION,
} from '../src/index.js';
import { NvmeModelWorker, type StartModelOptions } from '../src/pcie/model/index.js';
import { once1 } from './once.js';

const NS = [
  { nsid: 1, blockSize: 512, blocks: 16384 },
  { nsid: 2, blockSize: 4096, blocks: 2048 },
];

async function withController(
  o: Partial<StartModelOptions>,
  copts: Parameters<typeof NvmeController.connect>[1],
  body: (c: NvmeController, m: NvmeModelWorker) => Promise<void>,
): Promise<void> {
  const m = await NvmeModelWorker.start({ namespaces: NS, ...o });
  try {
    const c = await NvmeController.connect(`trtype:PCIe traddr:${m.address}`, copts);
    try {
      await body(c, m);
    } finally {
      await c.close();
    }
  } finally {
    await m.stop();
  }
}

describe('nvme pcie: driver on the software controller', function () {
  this.timeout(60000);
  let region: DmaRegion;
  before(() => {
    region = DmaRegion.create(8 << 20, { hugepages: 'never' });
  });
  after(() => region.close());

  it('enables, identifies the controller and every namespace, and shuts down', async () => {
    await withController({}, {}, async (c, m) => {
      expect(c.version).to.equal('1.4');
      expect(c.cdata.modelNumber).to.equal('storkit NVMe model');
      expect(c.maxTransferSize).to.equal(128 * 1024);
      expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
      const n2 = await c.identifyNamespace(2);
      expect([n2.nsze, n2.blockSize]).to.deep.equal([2048, 4096]);
      expect((await c.namespaceDescriptors(1)).nguid).to.have.length(16);
      const bar = m.device.bar(0);
      expect(bar.read32(0x1c) & 1, 'CSTS.RDY').to.equal(1);
      await c.close();
      expect((bar.read32(0x1c) >> 2) & 3, 'CSTS.SHST complete after close').to.equal(2);
    });
  });

  for (const mode of [
    { name: 'SGLs, shadow doorbells', model: {}, pcie: {} },
    { name: 'PRPs only', model: { sgls: 0 }, pcie: {} },
    {
      name: 'PRPs, no shadow doorbells, a doorbell per command',
      model: {},
      pcie: { sgl: false, shadowDoorbells: false, delayDoorbell: false },
    },
    { name: 'SGLs, doorbell stride 4', model: { dstrd: 2 }, pcie: {} },
  ]) {
    it(`writes and reads back any size and alignment, split at MDTS (${mode.name})`, async () => {
      await withController(mode.model, { pcie: mode.pcie }, async (c) => {
        const qp = await c.allocIoQpair({ depth: 32 });
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom(...NS),
            fc.integer({ min: 0, max: 4000 }),
            fc.integer({ min: 1, max: 96 }),
            fc.integer({ min: 0, max: 1000 }),
            async (ns, lba0, nlb0, o4) => {
              const nlb = Math.min(nlb0, Math.floor((3 << 20) / ns.blockSize));
              const lba = lba0 % (ns.blocks - nlb);
              const len = nlb * ns.blockSize;
              const off = o4 * 4;
              const w = region.bytes.subarray(off, off + len);
              for (let i = 0; i < len; i++) w[i] = (i * 7 + lba + nlb) & 0xff;
              expect(await once1(qp, (cb) => qp.write(ns.nsid, lba, nlb, w, cb, null))).to.equal(0);
              const r = region.bytes.subarray((4 << 20) + 4 * (o4 % 3), (4 << 20) + 4 * (o4 % 3) + len);
              r.fill(0);
              expect(await once1(qp, (cb) => qp.read(ns.nsid, lba, nlb, r, cb, null))).to.equal(0);
              expect(Buffer.compare(Buffer.from(w), Buffer.from(r))).to.equal(0);
            },
          ),
          { numRuns: 40 },
        );
        const st = (qp as PcieQpair).stats;
        expect(st.bounced, 'DMA buffers go zero copy').to.equal(0);
        expect(st.split, 'transfers above MDTS were split').to.be.greaterThan(0);
        await c.freeIoQpair(qp);
      });
    });
  }

  it('asks for SMART / Health critical warnings and namespace notices (Async Event Configuration), with AERs outstanding', async () => {
    await withController({}, {}, async (c) => {
      // Bits 4:0 (spare, temperature, reliability, read-only, volatile backup) and bit 8; the
      // model's OAES offers no firmware or ANA notices, so bits 9 and 11 stay clear.
      expect(await c.getFeatures(Feature.AsyncEventConfig)).to.equal(0x11f);
    });
  });

  it('has no Controller Memory Buffer on the software controller, and says why', async () => {
    await withController({}, { pcie: { cmbSqs: true } }, async (c) => {
      expect(c.cap.cmbs).to.equal(false);
      const qp = (await c.allocIoQpair()) as PcieQpair;
      expect(qp.sqInCmb).to.equal(false);
      expect(() => c.mapCmb()).to.throw(/no controller memory buffer/);
    });
  });

  it('rings fewer MMIO doorbells when the controller keeps EventIdx ahead', async () => {
    await withController({ eventIdx: 'ahead' }, {}, async (c) => {
      const qp = (await c.allocIoQpair({ depth: 16 })) as PcieQpair;
      const b = region.bytes.subarray(0, 512);
      for (let i = 0; i < 50; i++) expect(await once1(qp, (cb) => qp.read(1, i, 1, b, cb, null))).to.equal(0);
      expect(qp.stats.shadowSkipped, 'doorbells the shadow buffer spared').to.be.greaterThan(90);
      expect(qp.stats.doorbells).to.be.below(10);
    });
  });

  it('reuses a queue ID only once its queues are deleted, and from a clean shadow doorbell', async () => {
    await withController({}, {}, async (c) => {
      const b = region.bytes.subarray(0, 512);
      const reads = async (qp: HostQpair) => {
        for (let i = 0; i < 3; i++) {
          const st = await Promise.race([
            once1(qp, (cb) => qp.read(1, i, 1, b, cb, null)),
            new Promise((r) => setTimeout(() => r('hung'), 5000)),
          ]);
          expect(st, `read ${i} on qid ${qp.qid}`).to.equal(0);
        }
      };
      const g1 = await c.grantIoQpair({ depth: 16 });
      const q1 = await c.transport.openIoQpair(g1, {});
      await reads(q1);
      // As bdev_nvme does when a channel goes: close, give the grant back, and (another channel)
      // ask for a new one while the old queues' Delete commands are still in flight.
      q1.close();
      const released = c.releaseIoQpair(g1);
      const g2 = await c.grantIoQpair({ depth: 16 });
      expect(g2.qid, 'the queue ID being deleted is not granted again').to.not.equal(g1.qid);
      await released;
      const q2 = await c.transport.openIoQpair(g2, {});
      await reads(q2);
      // Now qid 1 is free: a new queue of that ID starts at tail 0, not at the old queue's 3.
      const g3 = await c.grantIoQpair({ depth: 16 });
      expect(g3.qid).to.equal(g1.qid);
      const q3 = await c.transport.openIoQpair(g3, {});
      await reads(q3);
      for (const [q, g] of [
        [q2, g2],
        [q3, g3],
      ] as const) {
        q.close();
        await c.releaseIoQpair(g);
      }
    });
  });

  it('bounces buffers that are not DMA memory, and says so in the stats', async () => {
    await withController({}, {}, async (c) => {
      const qp = (await c.allocIoQpair()) as PcieQpair;
      const w = new Uint8Array(8192).map((_, i) => i & 0xff);
      expect(await once1(qp, (cb) => qp.write(2, 5, 2, w, cb, null))).to.equal(0);
      const r = new Uint8Array(8192);
      expect(await once1(qp, (cb) => qp.read(2, 5, 2, r, cb, null))).to.equal(0);
      expect(r).to.deep.equal(w);
      expect(qp.stats.bounced).to.equal(2);
    });
  });

  it('deallocates and writes zeroes (read back as zeroes), compares, fuses compare-and-write, flushes', async () => {
    await withController({}, {}, async (c) => {
      const qp = await c.allocIoQpair();
      const w = region.bytes.subarray(0, 8 * 512).fill(0xab);
      expect(await once1(qp, (cb) => qp.write(1, 100, 8, w, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.write(1, 200, 8, w, cb, null))).to.equal(0);
      expect(
        await once1(qp, (cb) =>
          qp.deallocate(
            1,
            [
              [100, 4],
              [104, 4],
            ],
            cb,
            null,
          ),
        ),
      ).to.equal(0);
      expect(await once1(qp, (cb) => qp.writeZeroes(1, 200, 8, cb, null))).to.equal(0);
      const r = region.bytes.subarray(8192, 8192 + 8 * 512).fill(1);
      for (const lba of [100, 200]) {
        expect(await once1(qp, (cb) => qp.read(1, lba, 8, r, cb, null))).to.equal(0);
        expect(r.every((x) => x === 0)).to.equal(true);
      }
      const one = region.bytes.subarray(0, 512).fill(5);
      const two = region.bytes.subarray(512, 1024).fill(6);
      expect(await once1(qp, (cb) => qp.write(1, 300, 1, one, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.compare(1, 300, 1, one, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.compare(1, 300, 1, two, cb, null))).to.equal(
        makeStatus(Sct.Media, MediaStatus.CompareFailure),
      );
      expect(await once1(qp, (cb) => qp.compareAndWrite(1, 300, 1, one, two, cb, null))).to.equal(0);
      expect(await once1(qp, (cb) => qp.compareAndWrite(1, 300, 1, one, two, cb, null))).to.equal(
        makeStatus(Sct.Media, MediaStatus.CompareFailure),
      );
      expect(await once1(qp, (cb) => qp.flush(1, cb, null))).to.equal(0);
      // A namespace that does not exist, and an LBA beyond the end: the controller says so.
      expect(await once1(qp, (cb) => qp.read(9, 0, 1, one, cb, null))).to.equal(
        makeStatus(Sct.Generic, GenericStatus.InvalidNamespaceOrFormat),
      );
      expect(await once1(qp, (cb) => qp.read(1, 16384, 1, one, cb, null))).to.equal(
        makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange),
      );
    });
  });

  it('splits at the namespace optimal I/O boundary when asked', async () => {
    await withController(
      { namespaces: [{ nsid: 1, blockSize: 512, blocks: 4096, noiob: 16 }] },
      {},
      async (c) => {
        expect((await c.identifyNamespace(1)).noiob).to.equal(16);
        const qp = (await c.allocIoQpair()) as PcieQpair;
        qp.setIoBoundary(1, 16);
        const w = region.bytes.subarray(0, 20 * 512).fill(3);
        expect(await once1(qp, (cb) => qp.write(1, 10, 20, w, cb, null))).to.equal(0);
        expect(qp.stats.split).to.equal(1);
        expect(qp.stats.submitted, 'blocks 10-15, 16-29').to.equal(2);
      },
    );
  });

  it('runs qpairs on several threads at once, each polled by its owner', async () => {
    await withController({}, {}, async (c) => {
      const workers = [0, 1, 2].map(async (i) => {
        const grant = (await c.grantIoQpair({ depth: 64 })) as PcieQpairGrant;
        const w = new Worker(new URL('./pcie-qpair-worker.js', import.meta.url), {
          workerData: {
            grant,
            nsid: 1 + (i % 2),
            firstLba: i * 40,
            blocks: 40,
            blockSize: i % 2 ? 4096 : 512,
            seed: i,
          },
        });
        const [res] = (await once(w, 'message')) as [{ errors: number; readStatus: number; same: boolean }];
        await w.terminate();
        await c.releaseIoQpair(grant);
        return res;
      });
      for (const r of await Promise.all(workers)) {
        expect(r).to.deep.include({ errors: 0, readStatus: 0, same: true });
      }
    });
  });

  it('resets under I/O: in-flight commands end ABORTED - SQ DELETION, then the qpair works again', async () => {
    await withController({}, {}, async (c, m) => {
      const qp = await c.allocIoQpair({ depth: 64 });
      const b = region.bytes.subarray(0, 512).fill(9);
      expect(await once1(qp, (cb) => qp.write(1, 7, 1, b, cb, null))).to.equal(0);
      await m.inject('stall');
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++)
        qp.read(
          1,
          i,
          1,
          region.bytes.subarray(4096 + i * 512, 4096 + (i + 1) * 512),
          (_c, s) => statuses.push(s),
          null,
        );
      // Doorbells are rung from processCompletions (delayDoorbell): poll once so they go out.
      qp.processCompletions();
      while ((await m.held()) === 0) await new Promise((r) => setTimeout(r, 1));
      // Nothing polls the qpair now: the reset must complete what is outstanding by itself.
      await c.reset();
      expect(statuses.length).to.equal(8);
      expect(statuses.filter((s) => s === STATUS_ABORTED_SQ_DELETION).length).to.be.greaterThan(0);
      expect(qp.connected).to.equal(true);
      const r = region.bytes.subarray(8192, 8192 + 512).fill(0);
      expect(await once1(qp, (cb) => qp.read(1, 7, 1, r, cb, null))).to.equal(0);
      expect(r[0]).to.equal(9);
      expect(c.resets).to.equal(1);
    });
  });

  it('aborts a command that times out (the controller held it), and the I/O fails, not hangs', async () => {
    await withController({}, { timeoutMs: 200 }, async (c, m) => {
      const qp = await c.allocIoQpair();
      await m.inject('stall');
      const st = await once1(qp, (cb) => qp.read(1, 0, 1, region.bytes.subarray(0, 512), cb, null));
      expect(st).to.equal(makeStatus(Sct.Generic, GenericStatus.AbortedByRequest));
      expect(c.events.timeouts).to.equal(1);
      expect(c.events.aborts).to.equal(1);
      expect(c.resets, 'the abort worked: no reset').to.equal(0);
    });
  });

  it('finds an outstanding request by its context (whole or split at MDTS) and aborts it (what a bdev abort sends)', async () => {
    await withController({}, {}, async (c, m) => {
      const qp = (await c.allocIoQpair()) as PcieQpair;
      const a = { io: 'a' };
      const b = { io: 'b' };
      const got = new Map<object, number>();
      const cb = (ctx: object, s: number): void => {
        got.set(ctx, s);
      };
      // The controller holds the next two commands: a, and the first half of b (256 KiB, two commands).
      await m.inject('stall');
      await m.inject('stall');
      qp.read(1, 0, 1, region.bytes.subarray(0, 512), cb, a);
      const cidA = qp.lastCommandId;
      qp.read(1, 8, 512, region.bytes.subarray(4096, 4096 + 256 * 1024), cb, b);
      while (qp.outstanding > 2) {
        qp.processCompletions();
        await new Promise((r) => setImmediate(r));
      }
      expect(qp.cidOf(a)).to.equal(cidA);
      const cidB = qp.cidOf(b);
      expect(cidB).to.be.at.least(0);
      expect(cidB).to.not.equal(cidA);
      expect(qp.cidOf({ io: 'a' }), 'another object').to.equal(-1);
      expect(await c.abort(qp.qid, cidB)).to.equal(true);
      expect(await c.abort(qp.qid, cidA)).to.equal(true);
      while (got.size < 2) {
        qp.processCompletions();
        await new Promise((r) => setImmediate(r));
      }
      const aborted = makeStatus(Sct.Generic, GenericStatus.AbortedByRequest);
      expect([got.get(a), got.get(b)]).to.deep.equal([aborted, aborted]);
      expect([qp.cidOf(a), qp.cidOf(b), qp.outstanding]).to.deep.equal([-1, -1, 0]);
    });
  });

  it('a surprise removal fails outstanding I/O, tells the controller, and nothing hangs', async () => {
    await withController({}, {}, async (c, m) => {
      const qp = await c.allocIoQpair();
      let removed: Error | null = null;
      c.onRemove((e) => {
        removed = e;
      });
      await m.inject('stall');
      const p = once1(qp, (cb) => qp.read(1, 0, 1, region.bytes.subarray(0, 512), cb, null));
      await m.remove();
      expect(await p).to.equal(STATUS_ABORTED_SQ_DELETION);
      while (removed === null) await new Promise((r) => setTimeout(r, 5));
      expect(String(removed)).to.match(/removed/);
      expect(qp.connected).to.equal(false);
      expect(
        qp.read(1, 0, 1, region.bytes.subarray(0, 512), () => {}, null),
        'no submission after removal',
      ).to.equal(false);
      let resetError: unknown = null;
      await c.reset().catch((e) => {
        resetError = e;
      });
      expect(String(resetError), 'a removed controller cannot be reset').to.match(/removed/);
    });
  });

  for (const fault of ['unknown-cid', 'sq-head-out-of-range', 'phantom-completion'] as const) {
    it(`fails only the qpair on a bad completion (${fault}); the controller keeps serving`, async () => {
      await withController({}, {}, async (c, m) => {
        const bad = await c.allocIoQpair();
        const good = await c.allocIoQpair();
        const b = region.bytes.subarray(0, 512);
        expect(await once1(bad, (cb) => bad.read(1, 0, 1, b, cb, null))).to.equal(0);
        await m.inject(fault);
        let failure: Error | null = null;
        bad.onFailure = (_q, e) => {
          failure = e;
        };
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++)
          bad.read(
            1,
            i,
            1,
            region.bytes.subarray(512 * (i + 1), 512 * (i + 2)),
            (_c, s) => statuses.push(s),
            null,
          );
        for (let i = 0; i < 200 && failure === null; i++) {
          bad.processCompletions();
          await new Promise((r) => setTimeout(r, 1));
        }
        expect(String(failure)).to.match(/unknown command ID|SQ head/);
        expect(statuses.length, 'every command got an answer').to.equal(4);
        expect(statuses.some((s) => s === STATUS_ABORTED_SQ_DELETION)).to.equal(true);
        expect(await once1(good, (cb) => good.read(1, 0, 1, b, cb, null))).to.equal(0);
        expect((await c.identifyController()).modelNumber).to.equal('storkit NVMe model');
      });
    });
  }

  it('a controller in fatal status fails its admin queue; a reset brings it back', async () => {
    await withController({}, {}, async (c, m) => {
      await m.inject('fatal');
      for (let i = 0; i < 200 && c.admin.connected; i++) await new Promise((r) => setTimeout(r, 5));
      expect(c.admin.connected).to.equal(false);
      await c.reset();
      expect((await c.identifyController()).modelNumber).to.equal('storkit NVMe model');
    });
  });

  it('refuses a second opener, and a missing device, with codes', async () => {
    const m = await NvmeModelWorker.start({ namespaces: NS });
    try {
      const c = await NvmeController.connect(`trtype:PCIe traddr:${m.address}`);
      let code = '';
      await NvmeController.connect(`trtype:PCIe traddr:${m.address}`).catch((e: NativeError) => {
        code = e.code;
      });
      expect(code).to.equal('EBUSY');
      await c.close();
      (await NvmeController.connect(`trtype:PCIe traddr:${m.address}`)).close();
    } finally {
      await m.stop();
    }
    let err: unknown = null;
    await NvmeController.connect('trtype:PCIe traddr:ffff:00:1f.0').catch((e) => {
      err = e;
    });
    expect(err).to.be.instanceOf(NativeError);
    expect((err as NativeError).code).to.be.oneOf(['ENODEV']);
  });
});
