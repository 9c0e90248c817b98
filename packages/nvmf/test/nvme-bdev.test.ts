// The nvme bdev module (@storkit/nvme/bdev) against this package's target: a remote namespace as
// a bdev, one I/O qpair per thread (two reactors of the test harness), verified I/O through the
// bdev layer (scatter lists split to single buffers, transfers split at MDTS), then detach.
import {
  bdevClose,
  bdevCompareAndWritev,
  bdevGetByName,
  bdevGetIoChannel,
  bdevNvmeAdminPassthru,
  bdevNvmeIoPassthru,
  bdevOpenExt,
  bdevRead,
  bdevReadv,
  bdevReset,
  bdevUnmap,
  bdevWrite,
  bdevWritev,
  IoStatus,
} from '@storkit/bdev';
import {
  bdevNvmeAttachController,
  bdevNvmeDetachController,
  bdevNvmeGetControllers,
} from '@storkit/nvme/bdev';
import {
  AdminOpcode,
  Cns,
  decodeIdentifyController,
  GenericStatus,
  IoOpcode,
  makeStatus,
  Sct,
} from '@storkit/nvme-spec';
import { createTestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { NQN, pollUntil, startTarget } from './helpers.js';

type Harness = ReturnType<typeof createTestHarness>;
type PerReactor = {
  t: number;
  desc: ReturnType<typeof bdevOpenExt>;
  ch: ReturnType<typeof bdevGetIoChannel>;
};

const live: Harness[] = [];
// A test that fails before its own close must not leave its reactors registered for later files.
afterEach(() => {
  for (const h of live.splice(0)) {
    try {
      h.close();
    } catch {
      // What it still held is the failed test's own problem; that test already failed.
    }
  }
});

/** Two simulated reactors, polled (10 µs of fake time a round) from the event loop until stop(). */
function pumpedHarness(): { h: Harness; stop(): void } {
  const h = createTestHarness({ reactors: 2 });
  live.push(h);
  let pumping = true;
  const pump = (): void => {
    if (!pumping) return;
    h.pollOnce();
    h.advanceTime(10);
    setImmediate(pump);
  };
  setImmediate(pump);
  return { h, stop: () => (pumping = false) };
}

/** Open bdev `name` for writing on each reactor's thread, with that thread's channel. */
function openPerReactor(h: Harness, name: string): PerReactor[] {
  return [0, 1].map((t) => {
    h.setThread(t);
    const desc = bdevOpenExt(name, true, () => {});
    return { t, desc, ch: bdevGetIoChannel(desc) };
  });
}

/** Put each reactor's channel, close its descriptor, then detach the controller; its error. */
async function closeAndDetach(
  h: Harness,
  per: PerReactor[],
  name: string,
): Promise<Error | null | undefined> {
  for (const p of per) {
    h.setThread(p.t);
    p.ch.put();
    bdevClose(p.desc);
  }
  h.pollThreads();
  h.setThread(0);
  let detached: Error | null | undefined;
  bdevNvmeDetachController({ name }, (e) => (detached = e));
  await pollUntil(
    () => {},
    () => detached !== undefined,
  );
  return detached;
}

describe('nvme bdev module over NVMe/TCP', function () {
  this.timeout(30000);

  it('attaches a remote controller as bdevs, does verified I/O from two reactors, detaches', async () => {
    const f = await startTarget({ max_io_size: 16384 }, { blocks: 8192 });
    const { h, stop } = pumpedHarness();
    try {
      h.setThread(0);
      const { names, replay } = await bdevNvmeAttachController({
        name: 'Nvme0',
        trtype: 'tcp',
        adrfam: 'IPv4',
        traddr: '127.0.0.1',
        trsvcid: String(f.port),
        subnqn: NQN,
      });
      expect(names).to.deep.equal(['Nvme0n1']);
      // The bdev's UUID is the namespace's own (its UUID descriptor), as SPDK's bdev_nvme takes it.
      const nsUuid = (f.tgt.nvmf_get_subsystems() as { namespaces?: { uuid: string }[] }[]).find(
        (s) => s.namespaces,
      )!.namespaces![0].uuid;
      expect(replay.namespaces).to.deep.equal([
        { nsid: 1, blockSize: 512, numBlocks: 8192, uuid: nsUuid, nmic: 1, noiob: 0 },
      ]);
      expect(bdevGetByName('Nvme0n1')!.uuid).to.equal(nsUuid);
      expect(bdevNvmeGetControllers()).to.deep.equal([
        {
          name: 'Nvme0',
          ctrlrs: [
            {
              state: 'enabled',
              trid: {
                trtype: 'TCP',
                adrfam: 'IPv4',
                traddr: '127.0.0.1',
                trsvcid: String(f.port),
                subnqn: NQN,
              },
              cntlid: replay.cntlid,
              host: { nqn: replay.hostnqn, addr: '', svcid: '' },
              resets: 0,
            },
          ],
        },
      ]);

      // One descriptor and channel per reactor thread: two I/O qpairs on the target.
      const per = openPerReactor(h, 'Nvme0n1');
      const run = async (t: number, submit: (cb: (s: IoStatus) => void) => number): Promise<IoStatus> => {
        // null, not -1, until it completes: -1 is FAILED.
        let st = null as IoStatus | null;
        h.setThread(t);
        expect(submit((s) => (st = s))).to.equal(0);
        await pollUntil(
          () => {},
          () => st !== null,
        );
        return st as IoStatus;
      };
      // 48 KiB from reactor 0 as three scattered pieces (the target's MDTS is 16 KiB).
      const parts = [8192, 32768, 8192].map((n, k) =>
        Uint8Array.from({ length: n }, (_, j) => (j * 7 + k) & 0xff),
      );
      const [a, b] = per;
      expect(await run(0, (cb) => bdevWritev(a.desc, a.ch, parts, 100, 96, (s) => cb(s), null))).to.equal(
        IoStatus.SUCCESS,
      );
      expect(Buffer.compare(f.ram.data.subarray(100 * 512, 196 * 512), Buffer.concat(parts))).to.equal(0);
      // Read back on reactor 1 through its own qpair.
      const back = new Uint8Array(96 * 512);
      expect(await run(1, (cb) => bdevRead(b.desc, b.ch, back, 100, 96, (s) => cb(s), null))).to.equal(
        IoStatus.SUCCESS,
      );
      expect(Buffer.compare(back, Buffer.concat(parts))).to.equal(0);
      const qids = f.tgt.nvmf_subsystem_get_qpairs({ nqn: NQN }) as { qid: number }[];
      expect(qids.map((q) => q.qid).sort()).to.deep.equal([0, 1, 2]);
      // Written on the target, read through the bdev (scattered).
      f.ram.data.fill(0x3c, 4000 * 512, 4008 * 512);
      const two = [new Uint8Array(2048), new Uint8Array(2048)];
      expect(await run(1, (cb) => bdevReadv(b.desc, b.ch, two, 4000, 8, (s) => cb(s), null))).to.equal(
        IoStatus.SUCCESS,
      );
      expect(two.every((x) => x.every((v) => v === 0x3c))).to.equal(true);
      // Compare and write (fused on the wire), then a miscompare, unmap, a range past the end.
      const cur = new Uint8Array(Buffer.concat(two));
      const next = new Uint8Array(4096).fill(9);
      const caw = (t: number, d: typeof a, cmp: Uint8Array) =>
        run(t, (cb) => bdevCompareAndWritev(d.desc, d.ch, [cmp], [next], 4000, 8, (s) => cb(s), null));
      expect(await caw(0, a, cur)).to.equal(IoStatus.SUCCESS);
      expect(f.ram.data[4000 * 512]).to.equal(9);
      expect(await caw(1, b, cur)).to.equal(IoStatus.MISCOMPARE);
      expect(await run(1, (cb) => bdevUnmap(b.desc, b.ch, 4000, 8, (s) => cb(s), null))).to.equal(
        IoStatus.SUCCESS,
      );
      expect(f.ram.data.subarray(4000 * 512, 4008 * 512).every((v) => v === 0)).to.equal(true);
      h.setThread(0);
      expect(() => bdevWrite(a.desc, a.ch, next, 8190, 8, () => {}, null)).to.throw();

      expect(await closeAndDetach(h, per, 'Nvme0')).to.equal(null);
      expect(bdevGetByName('Nvme0n1')).to.equal(undefined);
      expect(bdevNvmeGetControllers()).to.deep.equal([]);
      await pollUntil(
        () => {},
        () => f.tgt.qpairs.size === 0,
      );
    } finally {
      stop();
      await f.tgt.close();
    }
    h.pollThreads();
    h.close();
  });

  // SPDK's bdev_nvme reset path: the remote target goes away and comes back on the same address
  // (a new controller ID); every reactor's channel queues its I/O, the attaching reactor resets
  // the controller, each channel reconnects and the queued I/O completes. Then, with a short
  // ctrlr_loss_timeout_sec, a target that stays away fails the I/O and the controller.
  it("reconnects every reactor's qpair after the target restarts; fails after ctrlr_loss_timeout_sec", async () => {
    let f = await startTarget({}, { blocks: 8192 });
    const port = f.port;
    const { h, stop } = pumpedHarness();
    try {
      h.setThread(0);
      await bdevNvmeAttachController({
        name: 'Nvme1',
        trtype: 'tcp',
        traddr: '127.0.0.1',
        trsvcid: String(port),
        subnqn: NQN,
        ctrlr_loss_timeout_sec: 2,
        reconnect_delay_sec: 1,
      });
      const per = openPerReactor(h, 'Nvme1n1');
      const write = (t: number, lba: number, fill: number, cb: (s: IoStatus) => void): void => {
        const p = per[t];
        h.setThread(t);
        expect(bdevWrite(p.desc, p.ch, new Uint8Array(4096).fill(fill), lba, 8, (s) => cb(s), null)).to.equal(
          0,
        );
      };
      const statuses: IoStatus[] = [];
      for (const t of [0, 1]) write(t, 8 * t, 0x11 + t, (s) => statuses.push(s));
      await pollUntil(
        () => {},
        () => statuses.length === 2,
      );
      expect(statuses).to.deep.equal([IoStatus.SUCCESS, IoStatus.SUCCESS]);
      expect(f.tgt.nvmf_subsystem_get_qpairs({ nqn: NQN })).to.have.length(3);

      // The target goes away; writes from both reactors wait for it instead of failing.
      await f.tgt.close();
      statuses.length = 0;
      for (const t of [0, 1]) write(t, 100 + 8 * t, 0x21 + t, (s) => statuses.push(s));
      await new Promise((r) => setTimeout(r, 300));
      expect(statuses).to.deep.equal([]);
      f = await startTarget({}, { blocks: 8192, port });
      await pollUntil(
        () => {},
        () => statuses.length === 2,
        10000,
      );
      expect(statuses).to.deep.equal([IoStatus.SUCCESS, IoStatus.SUCCESS]);
      // They landed on the new target, each through its own reconnected qpair.
      expect(f.ram.data.subarray(100 * 512, 104 * 512).every((v) => v === 0x21)).to.equal(true);
      expect(f.ram.data.subarray(108 * 512, 112 * 512).every((v) => v === 0x22)).to.equal(true);
      expect(f.tgt.nvmf_subsystem_get_qpairs({ nqn: NQN })).to.have.length(3);
      const c = bdevNvmeGetControllers({ name: 'Nvme1' }) as {
        ctrlrs: { state: string; resets: number }[];
      }[];
      expect(c[0].ctrlrs[0].state).to.equal('enabled');
      expect(c[0].ctrlrs[0].resets).to.be.at.least(1);

      // Away for longer than ctrlr_loss_timeout_sec: the held I/O fails, so does new I/O.
      await f.tgt.close();
      statuses.length = 0;
      const t0 = Date.now();
      for (const t of [0, 1]) write(t, 200 + 8 * t, 0x31, (s) => statuses.push(s));
      await pollUntil(
        () => {},
        () => statuses.length === 2,
        10000,
      );
      expect(statuses).to.deep.equal([IoStatus.FAILED, IoStatus.FAILED]);
      expect(Date.now() - t0).to.be.at.least(900);
      const c2 = bdevNvmeGetControllers({ name: 'Nvme1' }) as { ctrlrs: { state: string }[] }[];
      expect(c2[0].ctrlrs[0].state).to.equal('failed');
      statuses.length = 0;
      write(1, 0, 0x41, (s) => statuses.push(s));
      await pollUntil(
        () => {},
        () => statuses.length === 1,
      );
      expect(statuses).to.deep.equal([IoStatus.FAILED]);

      expect(await closeAndDetach(h, per, 'Nvme1')).to.equal(null);
      expect(bdevGetByName('Nvme1n1')).to.equal(undefined);
    } finally {
      stop();
      await f.tgt.close();
    }
    h.pollThreads();
    h.close();
  });

  // SPDK's bdev_nvme_admin_passthru / io_passthru and bdev reset: the commands reach the remote
  // controller from either reactor (admin ones through the attaching reactor's admin queue), the
  // completion comes back in the caller's NvmeCompletion, and a reset reconnects every qpair.
  it('passes NVMe admin and I/O commands through from both reactors, and resets the controller', async () => {
    const f = await startTarget({}, { blocks: 8192 });
    const { h, stop } = pumpedHarness();
    try {
      h.setThread(0);
      await bdevNvmeAttachController({
        name: 'Nvme2',
        trtype: 'tcp',
        traddr: '127.0.0.1',
        trsvcid: String(f.port),
        subnqn: NQN,
      });
      const per = openPerReactor(h, 'Nvme2n1');
      const cpl = { cdw0: -1, status: -1 };
      const sqe = (opcode: number, cdws: Record<number, number> = {}): Uint8Array => {
        const c = new Uint8Array(64);
        const dv = new DataView(c.buffer);
        c[0] = opcode;
        dv.setUint32(4, 0xdeadbeef, true); // I/O passthru puts the namespace's NSID here
        for (const [k, v] of Object.entries(cdws)) dv.setUint32(4 * Number(k), v >>> 0, true);
        return c;
      };
      const run = async (t: number, submit: (cb: (s: IoStatus) => void) => number): Promise<IoStatus> => {
        let st: IoStatus | null = null; // not -1: that is IoStatus.FAILED
        h.setThread(t);
        expect(submit((s) => (st = s))).to.equal(0);
        await pollUntil(
          () => {},
          () => st !== null,
        );
        return st as unknown as IoStatus;
      };
      for (const t of [0, 1]) {
        const p = per[t];
        // Identify Controller through the admin queue: from reactor 1 too, by way of reactor 0.
        const id = new Uint8Array(4096);
        const admin = sqe(AdminOpcode.Identify, { 10: Cns.Controller });
        expect(
          await run(t, (cb) => bdevNvmeAdminPassthru(p.desc, p.ch, admin, id, cpl, (s) => cb(s), null)),
        ).to.equal(IoStatus.SUCCESS);
        expect(cpl.status).to.equal(0);
        expect(decodeIdentifyController(id).serialNumber).to.equal('SPDK00000000000001');
        // Write then read 8 blocks at LBA 64 * (t + 1) as raw NVMe commands.
        const lba = 64 * (t + 1);
        const data = new Uint8Array(4096).fill(0x50 + t);
        const w = sqe(IoOpcode.Write, { 10: lba, 12: 7 });
        expect(
          await run(t, (cb) => bdevNvmeIoPassthru(p.desc, p.ch, w, data, cpl, (s) => cb(s), null)),
        ).to.equal(IoStatus.SUCCESS);
        expect(f.ram.data.subarray(lba * 512, (lba + 8) * 512).every((v) => v === 0x50 + t)).to.equal(true);
        const back = new Uint8Array(4096);
        const r = sqe(IoOpcode.Read, { 10: lba, 12: 7 });
        expect(
          await run(t, (cb) => bdevNvmeIoPassthru(p.desc, p.ch, r, back, cpl, (s) => cb(s), null)),
        ).to.equal(IoStatus.SUCCESS);
        expect(Buffer.compare(back, data)).to.equal(0);
        // A bad command fails, and its NVMe status says why.
        const bad = sqe(IoOpcode.Read, { 10: 8192, 12: 0 });
        expect(
          await run(t, (cb) =>
            bdevNvmeIoPassthru(p.desc, p.ch, bad, new Uint8Array(512), cpl, (s) => cb(s), null),
          ),
        ).to.equal(IoStatus.FAILED);
        expect(cpl.status & 0x7ff).to.equal(makeStatus(Sct.Generic, GenericStatus.LbaOutOfRange));
      }
      // bdev reset: the controller resets (a new controller ID), every reactor's qpair reconnects.
      const before = (
        bdevNvmeGetControllers({ name: 'Nvme2' }) as { ctrlrs: { cntlid: number; resets: number }[] }[]
      )[0].ctrlrs[0];
      expect(await run(1, (cb) => bdevReset(per[1].desc, per[1].ch, (s) => cb(s), null))).to.equal(
        IoStatus.SUCCESS,
      );
      const after = (
        bdevNvmeGetControllers({ name: 'Nvme2' }) as { ctrlrs: { cntlid: number; resets: number }[] }[]
      )[0].ctrlrs[0];
      expect(after.resets).to.equal(before.resets + 1);
      expect(after.cntlid).to.not.equal(before.cntlid);
      for (const t of [0, 1]) {
        const back = new Uint8Array(4096);
        expect(
          await run(t, (cb) => bdevRead(per[t].desc, per[t].ch, back, 64 * (t + 1), 8, (s) => cb(s), null)),
        ).to.equal(IoStatus.SUCCESS);
        expect(back.every((v) => v === 0x50 + t)).to.equal(true);
      }
      await pollUntil(
        () => {},
        () => f.tgt.nvmf_subsystem_get_qpairs({ nqn: NQN }).length === 3,
      );
      expect(await closeAndDetach(h, per, 'Nvme2')).to.equal(null);
    } finally {
      stop();
      await f.tgt.close();
    }
    h.pollThreads();
    h.close();
  });
});
