import { randomBytes } from 'node:crypto';

import type { IoCb } from '@storkit/block';
import { RamBackend } from '@storkit/block/testing';
import { type Completion, discover, type HostQpair, NvmeController, type TcpHostQpair } from '@storkit/nvme';
import {
  AdminOpcode,
  CommandSpecificStatus,
  decodeChangedNamespaceLog,
  decodeErrorLogEntry,
  decodeHealthLog,
  Feature,
  GenericStatus,
  LogPage,
  MediaStatus,
  makeStatus,
  Sct,
  SubType,
} from '@storkit/nvme-spec';
import { expect } from 'chai';
import { type Fixture, Inflight, NQN, pollUntil, startTarget } from './helpers.js';

interface Result {
  status: number;
  dw0: number;
}

// Run one polled I/O to completion.
async function io(qp: HostQpair, submit: (cb: Completion<Result>, r: Result) => boolean): Promise<number> {
  const r: Result = { status: -1, dw0: 0 };
  const cb: Completion<Result> = (ctx, status, dw0) => {
    ctx.status = status;
    ctx.dw0 = dw0;
  };
  expect(submit(cb, r)).to.equal(true);
  await pollUntil(
    () => qp.processCompletions(),
    () => r.status !== -1,
  );
  return r.status;
}

const S = {
  invalidNs: makeStatus(Sct.Generic, GenericStatus.InvalidNamespaceOrFormat, true),
  lbaRange: makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange, true),
  compareFailure: makeStatus(Sct.Media, MediaStatus.CompareFailure),
};

describe('nvmf/nvme: host ↔ target over loopback', function () {
  this.timeout(30000);

  for (const [hdgst, ddgst, icd, c2h_success] of [
    [false, false, 4096, true],
    [true, true, 4096, false],
    [true, false, 0, true],
    [false, true, 0, false],
  ] as const) {
    it(`keeps data intact (hdgst=${hdgst} ddgst=${ddgst} in-capsule=${icd} c2h_success=${c2h_success})`, async () => {
      // A small MAXH2CDATA forces several H2CData PDUs per R2T; a small io unit several C2HData.
      const f = await startTarget(
        { in_capsule_data_size: icd, io_unit_size: 8192, c2h_success },
        { blocks: 4096 },
      );
      const c = await NvmeController.connect(f.trid, { hdgst, ddgst });
      try {
        const qp = (await c.allocIoQpair({ depth: 16 })) as TcpHostQpair;
        expect(qp.hdgst).to.equal(hdgst);
        expect(qp.ddgst).to.equal(ddgst);
        const model = new Uint8Array(f.ram.data.length);
        const flight = new Inflight();
        for (let i = 0; i < 120; i++) {
          const nlb = 1 + ((i * 37) % 64);
          const lba = (i * 523) % (4096 - nlb);
          flight.write(qp, lba, nlb, model);
          await flight.drain(qp);
        }
        expect(flight.failures).to.equal(0);
        expect(Buffer.compare(f.ram.data, model)).to.equal(0);
        // And the other way: blocks written on the backend read back identically through the host.
        f.ram.data.set(randomBytes(65536), 100 * 512);
        const back = new Uint8Array(65536);
        expect(await io(qp, (cb, r) => qp.read(1, 100, 128, back, cb, r))).to.equal(0);
        expect(Buffer.compare(back, f.ram.data.subarray(100 * 512, 228 * 512))).to.equal(0);
        // Many in flight at once, mixed reads and writes.
        const bufs = Array.from({ length: 16 }, () => new Uint8Array(4096));
        for (let k = 0; k < 16; k++) {
          flight.count++;
          if (k % 2) qp.read(1, k * 8, 8, bufs[k], flight.done, null);
          else qp.write(1, k * 8, 8, bufs[k].fill(k), flight.done, null);
        }
        await flight.drain(qp);
        expect(flight.failures).to.equal(0);
        expect(f.ram.data[0]).to.equal(0);
        expect(f.ram.data[2 * 8 * 512]).to.equal(2);
      } finally {
        await c.close();
        await f.tgt.close();
      }
    });
  }

  describe('with one target', () => {
    let f: Fixture;
    let c: NvmeController;
    let qp: HostQpair;
    before(async () => {
      f = await startTarget({}, { blocks: 2048 });
      c = await NvmeController.connect(f.trid, {});
      qp = await c.allocIoQpair({ depth: 32 });
    });
    after(async () => {
      await c.close();
      await f.tgt.close();
    });

    it('identifies controller and namespaces as configured', async () => {
      expect(c.cdata.serialNumber).to.equal('SPDK00000000000001');
      expect(c.cdata.modelNumber).to.equal('storkit test');
      expect(c.cdata.subnqn).to.equal(NQN);
      expect(c.cdata.cntlid).to.equal(c.cntlid);
      expect(c.cdata.oncs & 0xd).to.equal(0xd);
      expect(c.cdata.fuses).to.equal(1);
      expect(c.cdata.ioccsz).to.equal((64 + 4096) / 16);
      expect(c.version).to.equal('1.3');
      expect(await c.activeNamespaces()).to.deep.equal([1]);
      const ns = await c.identifyNamespace(1);
      expect([ns.nsze, ns.blockSize]).to.deep.equal([2048, 512]);
      const d = await c.namespaceDescriptors(1);
      expect(d.uuid?.length).to.equal(16);
      expect(d.csi).to.equal(0);
      // An inactive nsid gives zeroes; nsid 0 is invalid.
      expect((await c.identifyNamespace(5)).nsze).to.equal(0);
      const r = await c.adminRaw({
        opcode: AdminOpcode.Identify,
        nsid: 0,
        cdw10: 0,
        buf: new Uint8Array(4096),
      });
      expect(r.status).to.equal(S.invalidNs);
      const bad = await c.adminRaw({ opcode: AdminOpcode.Identify, cdw10: 0x42, buf: new Uint8Array(4096) });
      expect(bad.status).to.equal(makeStatus(Sct.Generic, GenericStatus.InvalidField, true));
    });

    it('runs write zeroes, deallocate, flush, compare and fused compare-and-write', async () => {
      const data = new Uint8Array(4096).fill(0xab);
      expect(await io(qp, (cb, r) => qp.write(1, 8, 8, data, cb, r))).to.equal(0);
      expect(await io(qp, (cb, r) => qp.compare(1, 8, 8, data, cb, r))).to.equal(0);
      const other = new Uint8Array(4096).fill(0xcd);
      expect(await io(qp, (cb, r) => qp.compare(1, 8, 8, other, cb, r))).to.equal(S.compareFailure);
      // Fused: miscompare leaves the blocks alone, a match writes.
      expect(await io(qp, (cb, r) => qp.compareAndWrite(1, 8, 8, other, other, cb, r))).to.equal(
        S.compareFailure,
      );
      expect(f.ram.data[8 * 512]).to.equal(0xab);
      expect(await io(qp, (cb, r) => qp.compareAndWrite(1, 8, 8, data, other, cb, r))).to.equal(0);
      expect(f.ram.data[8 * 512]).to.equal(0xcd);
      expect(f.ram.counts.compareAndWrite).to.equal(1);
      expect(await io(qp, (cb, r) => qp.writeZeroes(1, 8, 4, cb, r))).to.equal(0);
      expect(f.ram.data.subarray(8 * 512, 12 * 512).every((b) => b === 0)).to.equal(true);
      expect(f.ram.data[12 * 512]).to.equal(0xcd);
      expect(
        await io(qp, (cb, r) =>
          qp.deallocate(
            1,
            [
              [12, 2],
              [14, 2],
            ],
            cb,
            r,
          ),
        ),
      ).to.equal(0);
      expect(f.ram.data.subarray(12 * 512, 16 * 512).every((b) => b === 0)).to.equal(true);
      expect(f.ram.counts.unmap).to.equal(2);
      expect(await io(qp, (cb, r) => qp.flush(1, cb, r))).to.equal(0);
    });

    it('answers unknown namespaces and I/O beyond the end with the right status', async () => {
      const b = new Uint8Array(512);
      expect(await io(qp, (cb, r) => qp.read(1, 2048, 1, b, cb, r))).to.equal(S.lbaRange);
      expect(await io(qp, (cb, r) => qp.read(1, 2047, 2, new Uint8Array(1024), cb, r))).to.equal(S.lbaRange);
      expect(await io(qp, (cb, r) => qp.write(9, 0, 1, b, cb, r))).to.equal(S.invalidNs);
      expect(await io(qp, (cb, r) => qp.writeZeroes(1, 2040, 16, cb, r))).to.equal(S.lbaRange);
      expect(await io(qp, (cb, r) => qp.deallocate(1, [[2047, 5]], cb, r))).to.equal(S.lbaRange);
      // The data length must match the blocks.
      expect(await io(qp, (cb, r) => qp.read(1, 0, 2, b, cb, r))).to.equal(
        makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid, true),
      );
      // Failures land in the error log, newest first.
      const log = await c.getLogPage(LogPage.Error, 64);
      const e = decodeErrorLogEntry(log, 0);
      expect(e.status).to.equal(makeStatus(Sct.Generic, GenericStatus.DataSglLengthInvalid, true));
      expect(e.sqid).to.equal(qp.qid);
    });

    it('serves log pages and features', async () => {
      const h = decodeHealthLog(await c.getLogPage(LogPage.Health, 512));
      expect(h.hostWriteCommands).to.be.greaterThan(0);
      const fw = await c.getLogPage(LogPage.FirmwareSlot, 512);
      expect(fw[0]).to.equal(1);
      const bad = await c.adminRaw({
        opcode: AdminOpcode.GetLogPage,
        cdw10: 0x3f | (127 << 16),
        buf: new Uint8Array(512),
      });
      expect(bad.status).to.equal(
        makeStatus(Sct.CommandSpecific, CommandSpecificStatus.InvalidLogPage, true),
      );
      const nq = await c.setFeatures(Feature.NumberOfQueues, (3 << 16) | 3);
      expect(nq & 0xffff).to.equal(126);
      expect(await c.getFeatures(Feature.KeepAliveTimer)).to.equal(10000);
      await c.setFeatures(Feature.KeepAliveTimer, 20000);
      expect(await c.getFeatures(Feature.KeepAliveTimer)).to.equal(20000);
    });

    it("reports a namespace's configured UUID and NGUID (identify and descriptors)", async () => {
      // A target of its own: the namespace change must not spend this suite's AERs.
      const g = await startTarget({}, { blocks: 64 });
      g.tgt.registerBackend(new RamBackend({ name: 'MallocU', blockSize: 512, numBlocks: 64 }));
      const uuid = '0123abcd-4567-89ef-0123-456789abcdef';
      const nguid = '00112233445566778899AABBCCDDEEFF';
      g.tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 9, bdev_name: 'MallocU', uuid, nguid } });
      const h = await NvmeController.connect(g.trid, {});
      try {
        const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex');
        const d = await h.namespaceDescriptors(9);
        expect(hex(d.uuid)).to.equal(uuid.replaceAll('-', ''));
        expect(hex(d.nguid)).to.equal(nguid.toLowerCase());
        expect(hex((await h.identifyNamespace(9)).nguid)).to.equal(nguid.toLowerCase());
      } finally {
        await h.close();
        await g.tgt.close();
      }
    });

    it('notices namespaces added and removed while connected (AER + changed namespace list)', async () => {
      const events: number[] = [];
      c.onAsyncEvent((dw0) => events.push(dw0));
      f.tgt.registerBackend(new RamBackend({ name: 'Malloc1', blockSize: 4096, numBlocks: 64 }));
      const nsid = f.tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { bdev_name: 'Malloc1' } });
      expect(nsid).to.equal(2);
      await pollUntil(
        () => {},
        () => events.length === 1,
      );
      expect(events[0]).to.equal(0x00040002);
      expect(decodeChangedNamespaceLog(await c.getLogPage(LogPage.ChangedNamespaceList, 4096))).to.deep.equal(
        [2],
      );
      expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
      const buf = new Uint8Array(4096).fill(7);
      expect(await io(qp, (cb, r) => qp.write(2, 63, 1, buf, cb, r))).to.equal(0);
      f.tgt.nvmf_subsystem_remove_ns({ nqn: NQN, nsid: 2 });
      await pollUntil(
        () => {},
        () => events.length === 2,
      );
      expect(await io(qp, (cb, r) => qp.read(2, 0, 1, buf, cb, r))).to.equal(S.invalidNs);
      expect(await c.activeNamespaces()).to.deep.equal([1]);
    });

    it('discovers subsystems, the discovery subsystem and referrals', async () => {
      f.tgt.nvmf_discovery_add_referral({
        address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '10.0.0.9', trsvcid: '4420' },
      });
      const entries = await discover(f.trid);
      expect(entries.map((e) => [e.subtype, e.subnqn, e.traddr, e.trsvcid])).to.deep.equal([
        [SubType.Nvme, NQN, '127.0.0.1', String(f.port)],
        [SubType.CurrentDiscovery, 'nqn.2014-08.org.nvmexpress.discovery', '127.0.0.1', String(f.port)],
        [SubType.Referral, 'nqn.2014-08.org.nvmexpress.discovery', '10.0.0.9', '4420'],
      ]);
      const subs = f.tgt.nvmf_get_subsystems() as { nqn: string }[];
      expect(subs.map((s) => s.nqn)).to.include(NQN);
      expect(f.tgt.nvmf_subsystem_get_controllers({ nqn: NQN })).to.have.length(1);
      expect(f.tgt.nvmf_subsystem_get_qpairs({ nqn: NQN })).to.have.length(2);
    });

    it('aborts a fused first half still waiting for its second', async () => {
      const q2 = await c.allocIoQpair({ depth: 4 });
      const r = { status: -1, dw0: 0 };
      // A fresh qpair hands out CID 0 first.
      q2.submit(
        { opcode: 0x05, nsid: 1, fuse: 1, cdw12: 0, buf: new Uint8Array(512), dir: 1 },
        (ctx: typeof r, st: number) => {
          ctx.status = st;
        },
        r,
      );
      await new Promise((res) => setTimeout(res, 20));
      expect(await c.abort(q2.qid, 0)).to.equal(true);
      await pollUntil(
        () => q2.processCompletions(),
        () => r.status !== -1,
      );
      expect(r.status).to.equal(makeStatus(Sct.Generic, GenericStatus.AbortedByRequest));
      // Nothing else is abortable: an unknown CID reports "not aborted".
      expect(await c.abort(q2.qid, 3)).to.equal(false);
      await c.freeIoQpair(q2);
    });

    it('pads C2HData to the host PDU data alignment (HPDA)', async () => {
      const q2 = await c.allocIoQpair({ depth: 4, hpda: 7 });
      f.ram.data.fill(0x5a, 0, 8192);
      const b = new Uint8Array(8192);
      expect(await io(q2, (cb, r) => q2.read(1, 0, 16, b, cb, r))).to.equal(0);
      expect(b.every((x) => x === 0x5a)).to.equal(true);
      await c.freeIoQpair(q2);
    });

    it('completes I/O already in flight when its namespace is removed', async () => {
      f.tgt.registerBackend(new RamBackend({ name: 'Gone0', blockSize: 512, numBlocks: 64 }));
      const nsid = f.tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { bdev_name: 'Gone0' } });
      const bufs = Array.from({ length: 8 }, () => new Uint8Array(512));
      let n = 0;
      let bad = 0;
      for (const b of bufs)
        qp.read(
          nsid,
          0,
          1,
          b,
          (_c, st) => {
            n++;
            if (st !== 0 && st !== S.invalidNs) bad++;
          },
          null,
        );
      f.tgt.nvmf_subsystem_remove_ns({ nqn: NQN, nsid });
      await pollUntil(
        () => qp.processCompletions(),
        () => n === 8,
      );
      expect(bad).to.equal(0);
      expect(await io(qp, (cb, r) => qp.read(nsid, 0, 1, bufs[0], cb, r))).to.equal(S.invalidNs);
    });

    it('resets the controller and reconnects its I/O qpairs in place', async () => {
      const before = c.cntlid;
      await c.reset();
      expect(c.cntlid).to.not.equal(before);
      const b = new Uint8Array(512).fill(9);
      expect(await io(qp, (cb, r) => qp.write(1, 1, 1, b, cb, r))).to.equal(0);
      expect(f.ram.data[512]).to.equal(9);
      expect(f.tgt.nvmf_subsystem_get_controllers({ nqn: NQN })).to.have.length(1);
    });
  });

  it('refuses hosts not allowed, unknown subsystems and static controller IDs', async () => {
    const f = await startTarget();
    try {
      f.tgt.nvmf_subsystem_allow_any_host({ nqn: NQN, allow_any_host: false });
      await NvmeController.connect(f.trid, {}).then(
        () => expect.fail('connected'),
        (e) =>
          expect(e.status).to.equal(
            makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectInvalidHost, true),
          ),
      );
      f.tgt.nvmf_subsystem_add_host({ nqn: NQN, host: 'nqn.2024-01.io.example:host1' });
      const ok = await NvmeController.connect(f.trid, { hostnqn: 'nqn.2024-01.io.example:host1' });
      await ok.close();
      await NvmeController.connect(f.trid.replace('cnode1', 'cnode9'), {}).then(
        () => expect.fail('connected'),
        (e) => {
          expect(e.status).to.equal(
            makeStatus(Sct.CommandSpecific, CommandSpecificStatus.ConnectInvalidParameters, true),
          );
          expect(e.dw0 >>> 16).to.equal(256);
        },
      );
    } finally {
      await f.tgt.close();
    }
  });

  it('keeps a controller alive with the host Keep Alive commands', async () => {
    const f = await startTarget();
    try {
      const c = await NvmeController.connect(f.trid, { kato: 300 });
      await new Promise((r) => setTimeout(r, 1000));
      expect(c.admin.connected).to.equal(true);
      expect(f.tgt.nvmf_subsystem_get_controllers({ nqn: NQN })).to.have.length(1);
      await c.close();
    } finally {
      await f.tgt.close();
    }
  });

  it('reconnects to a restarted target and resumes I/O on the same qpair', async () => {
    const f1 = await startTarget();
    const c = await NvmeController.connect(f1.trid, { reconnectDelayMs: 50 });
    const qp = await c.allocIoQpair({ depth: 4 });
    const b = new Uint8Array(512).fill(3);
    expect(await io(qp, (cb, r) => qp.write(1, 0, 1, b, cb, r))).to.equal(0);
    await f1.tgt.close();
    await pollUntil(
      () => {},
      () => !qp.connected,
    );
    await new Promise((r) => setTimeout(r, 200)); // a few refused reconnects
    const f2 = await startTarget({}, { port: f1.port });
    try {
      await pollUntil(
        () => {},
        () => qp.connected && c.admin.connected,
        5000,
      );
      expect(c.resets).to.be.greaterThan(0);
      expect(await io(qp, (cb, r) => qp.write(1, 0, 1, b, cb, r))).to.equal(0);
      expect(f2.ram.data[0]).to.equal(3);
    } finally {
      await c.close();
      await f2.tgt.close();
    }
  });

  it('tears a controller down when its keep alive timer expires', async () => {
    const f = await startTarget();
    try {
      const { TcpHostQpair } = await import('@storkit/nvme');
      const admin = new TcpHostQpair({
        traddr: '127.0.0.1',
        trsvcid: String(f.port),
        qid: 0,
        depth: 4,
        autoPoll: true,
      });
      await admin.open();
      await admin.connect(NQN, 'nqn.2024-01.io.example:ka', new Uint8Array(16).fill(1), 0xffff, 200);
      expect(f.tgt.nvmf_subsystem_get_controllers({ nqn: NQN })).to.have.length(1);
      const t0 = Date.now();
      await pollUntil(
        () => {},
        () => admin.failed !== null,
        3000,
      );
      expect(Date.now() - t0).to.be.within(100, 1500);
      expect(f.tgt.nvmf_subsystem_get_controllers({ nqn: NQN })).to.have.length(0);
    } finally {
      await f.tgt.close();
    }
  });

  it('aborts an outstanding AER, and a command stuck in the backend times out, aborts, then resets', async () => {
    const f = await startTarget();
    // A namespace whose reads of LBA 7 never complete (a hung device).
    const hung = new RamBackend({ name: 'Hung0', blockSize: 512, numBlocks: 64 });
    const realRead = hung.readv.bind(hung);
    hung.readv = <C>(iovs: readonly Uint8Array[], off: number, n: number, cb: IoCb<C>, ctx: C): void => {
      if (off !== 7) realRead(iovs, off, n, cb, ctx);
    };
    f.tgt.registerBackend(hung);
    f.tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 2, bdev_name: 'Hung0' } });
    const c = await NvmeController.connect(f.trid, { timeoutMs: 300 });
    try {
      // The controller keeps 4 AERs outstanding with CIDs from the admin queue; abort one by probing.
      let aborted = false;
      for (let cid = 0; cid < 32 && !aborted; cid++) aborted = await c.abort(0, cid);
      expect(aborted).to.equal(true);
      const qp = await c.allocIoQpair({ depth: 8 });
      const st = await io(qp, (cb, r) => qp.read(2, 7, 1, new Uint8Array(512), cb, r));
      expect(st).to.equal(makeStatus(Sct.Generic, GenericStatus.AbortedSqDeletion));
      expect(c.events.timeouts).to.be.greaterThan(0);
      await pollUntil(
        () => {},
        () => c.resets === 1 && qp.connected,
      );
      expect(await io(qp, (cb, r) => qp.read(2, 6, 1, new Uint8Array(512), cb, r))).to.equal(0);
    } finally {
      await c.close();
      await f.tgt.close();
    }
  });
});
