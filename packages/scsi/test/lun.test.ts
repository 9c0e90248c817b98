import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';
import fc from 'fast-check';
import { Asc, Op, ScsiDevice, SenseKey, Status } from '../src/index.js';
import { be32, makeDevice, nexus, run, rw10, rw16 } from './helpers.js';

describe('scsi: logical unit commands', () => {
  it('INQUIRY standard data names the device and honours the allocation length', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, nexus(), [Op.Inquiry, 0, 0, 0, 36, 0]);
    expect(r.status).to.equal(Status.Good);
    expect(r.data.length).to.equal(36);
    expect(r.data[0]).to.equal(0);
    expect(r.data[3] & 0x0f).to.equal(2);
    expect(Buffer.from(r.data.subarray(8, 16)).toString()).to.equal('STORKIT ');
  });

  it('INQUIRY VPD 00 lists the pages it serves, and an unknown page is INVALID FIELD IN CDB', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, nexus(), [Op.Inquiry, 1, 0, 0, 255, 0]);
    expect([...r.data.subarray(4)]).to.deep.equal([0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    for (const page of [0x80, 0x83, 0xb0, 0xb1, 0xb2]) {
      const p = await run(dev, nexus(), [Op.Inquiry, 1, page, 0, 255, 0]);
      expect(p.status, `page ${page}`).to.equal(Status.Good);
      expect(p.data[1]).to.equal(page);
    }
    const bad = await run(dev, nexus(), [Op.Inquiry, 1, 0x99, 0, 255, 0]);
    expect(bad.status).to.equal(Status.CheckCondition);
    expect(bad.key).to.equal(SenseKey.IllegalRequest);
    expect(bad.asc).to.equal(Asc.InvalidFieldInCdb);
  });

  it('READ CAPACITY 10/16 report the last LBA, block size and thin provisioning', async () => {
    const { dev } = makeDevice(4096, 1000);
    const r10 = await run(dev, nexus(), [Op.ReadCapacity10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(be32(r10.data, 0)).to.equal(999);
    expect(be32(r10.data, 4)).to.equal(4096);
    const r16 = await run(dev, nexus(), [
      Op.ServiceActionIn16,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      32,
      0,
      0,
    ]);
    expect(be32(r16.data, 4)).to.equal(999);
    expect(r16.data[14] & 0x80).to.equal(0x80);
    expect(r16.data[13] & 0x0f, 'one logical block per physical block').to.equal(0);
    const ram = new RamBackend({ name: 'p', blockSize: 512, numBlocks: 64, physicalBlockSize: 4096 });
    const d = new ScsiDevice('iqn.test:phys');
    d.addLun(0, ram);
    const p16 = await run(d, nexus(), [
      Op.ServiceActionIn16,
      0x10,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      32,
      0,
      0,
    ]);
    expect(p16.data[13] & 0x0f, 'LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT').to.equal(3);
  });

  it('writes and reads back through WRITE(10)/READ(16)', async () => {
    const { dev, ram } = makeDevice();
    const data = new Uint8Array(1024).map((_, i) => i & 0xff);
    const w = await run(dev, nexus(), rw10(Op.Write10, 7, 2), data);
    expect(w.status).to.equal(Status.Good);
    expect([...ram.data.subarray(7 * 512, 9 * 512)]).to.deep.equal([...data]);
    const r = await run(dev, nexus(), rw16(Op.Read16, 7, 2));
    expect([...r.data]).to.deep.equal([...data]);
  });

  it('rejects I/O beyond the end with LBA OUT OF RANGE and an unknown opcode with INVALID OPCODE', async () => {
    const { dev } = makeDevice(512, 100);
    const r = await run(dev, nexus(), rw10(Op.Read10, 99, 2));
    expect([r.status, r.key, r.asc]).to.deep.equal([
      Status.CheckCondition,
      SenseKey.IllegalRequest,
      Asc.LbaOutOfRange,
    ]);
    const o = await run(dev, nexus(), [0xd7, 0, 0, 0, 0, 0]);
    expect(o.asc).to.equal(Asc.InvalidOpcode);
  });

  it('a write shorter than the CDB asks writes only the data delivered (partial block merged)', async () => {
    const { dev, ram } = makeDevice();
    ram.data.fill(0x61, 0, 1024);
    const w = await run(dev, nexus(), rw10(Op.Write10, 0, 2), new Uint8Array(700).fill(0x62));
    expect(w.status).to.equal(Status.Good);
    expect(w.transferLength).to.equal(1024);
    expect(ram.data[699]).to.equal(0x62);
    expect(ram.data[700]).to.equal(0x61);
  });

  it('COMPARE AND WRITE writes on match and reports MISCOMPARE with the offset otherwise', async () => {
    const { dev, ram } = makeDevice();
    const out = new Uint8Array(1024);
    out.fill(0, 0, 512);
    out.fill(0x55, 512);
    const cdb = [Op.CompareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0];
    const ok = await run(dev, nexus(), cdb, out);
    expect(ok.status).to.equal(Status.Good);
    expect(ram.data[3 * 512]).to.equal(0x55);
    const again = await run(dev, nexus(), cdb, out);
    expect([again.status, again.key, again.asc]).to.deep.equal([
      Status.CheckCondition,
      SenseKey.Miscompare,
      Asc.MiscompareDuringVerify,
    ]);
  });

  it('UNMAP and WRITE SAME with UNMAP deallocate; GET LBA STATUS reports it', async () => {
    const { dev, ram } = makeDevice();
    await run(dev, nexus(), rw10(Op.Write10, 0, 4), new Uint8Array(2048).fill(9));
    const plist = new Uint8Array(24);
    plist[1] = 22;
    plist[3] = 16;
    plist[15] = 1; // LBA 1
    plist[19] = 2; // 2 blocks
    const u = await run(dev, nexus(), [Op.Unmap, 0, 0, 0, 0, 0, 0, 0, 24, 0], plist);
    expect(u.status).to.equal(Status.Good);
    expect(ram.data[512]).to.equal(0);
    expect(ram.data[0]).to.equal(9);
    const s = await run(dev, nexus(), [
      Op.ServiceActionIn16,
      0x12,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      64,
      0,
      0,
    ]);
    expect(s.data[20] & 0x0f).to.equal(1);
    expect(be32(s.data, 16)).to.equal(2);
  });

  it('raises a unit attention on every nexus after a LUN reset, reported once', async () => {
    const { dev, lun } = makeDevice();
    const a = nexus(1);
    const b = nexus(2);
    await run(dev, a, [Op.TestUnitReady, 0, 0, 0, 0, 0]);
    await run(dev, b, [Op.TestUnitReady, 0, 0, 0, 0, 0]);
    lun.resetLun();
    for (const n of [a, b]) {
      const first = await run(dev, n, [Op.TestUnitReady, 0, 0, 0, 0, 0]);
      expect([first.key, first.asc]).to.deep.equal([SenseKey.UnitAttention, Asc.PowerOnReset]);
      const second = await run(dev, n, [Op.TestUnitReady, 0, 0, 0, 0, 0]);
      expect(second.status).to.equal(Status.Good);
    }
  });

  it('RESERVE(6) from one nexus makes writes from another a RESERVATION CONFLICT until RELEASE', async () => {
    const { dev } = makeDevice();
    const a = nexus(1);
    const b = nexus(2);
    expect((await run(dev, a, [Op.Reserve6, 0, 0, 0, 0, 0])).status).to.equal(Status.Good);
    const w = await run(dev, b, rw10(Op.Write10, 0, 1), new Uint8Array(512));
    expect(w.status).to.equal(Status.ReservationConflict);
    await run(dev, a, [Op.Release6, 0, 0, 0, 0, 0]);
    expect((await run(dev, b, rw10(Op.Write10, 0, 1), new Uint8Array(512))).status).to.equal(Status.Good);
  });

  it('persistent reservation Write Exclusive blocks other writers but not their reads', async () => {
    const { dev } = makeDevice();
    const a = nexus(1);
    const b = nexus(2);
    const key = (k: number) => {
      const p = new Uint8Array(24);
      p[15] = k;
      return p;
    };
    const prOut = (sa: number, type: number) => [Op.PersistentReserveOut, sa, type, 0, 0, 0, 0, 0, 24, 0];
    expect((await run(dev, a, prOut(0, 0), key(0))).status).to.equal(Status.Good);
    const reg = key(0);
    reg[7] = 1;
    const r = await run(dev, a, prOut(1, 1), reg);
    expect(r.status).to.equal(Status.ReservationConflict, 'RESERVE before REGISTER conflicts');
    const regA = new Uint8Array(24);
    regA[15] = 0xa;
    await run(dev, a, prOut(0, 0), regA);
    const resA = new Uint8Array(24);
    resA[7] = 0xa;
    expect((await run(dev, a, prOut(1, 1), resA)).status).to.equal(Status.Good);
    expect((await run(dev, b, rw10(Op.Write10, 0, 1), new Uint8Array(512))).status).to.equal(
      Status.ReservationConflict,
    );
    expect((await run(dev, b, rw10(Op.Read10, 0, 1))).status).to.equal(Status.Good);
    const keys = await run(dev, b, [Op.PersistentReserveIn, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(be32(keys.data, 4)).to.equal(8);
  });

  it('REPORT LUNS lists LUNs; commands to an absent LUN get LOGICAL UNIT NOT SUPPORTED', async () => {
    const { dev } = makeDevice();
    const r = await run(dev, nexus(), [Op.ReportLuns, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(be32(r.data, 0)).to.equal(8);
    const t = await run(dev, nexus(), [Op.TestUnitReady, 0, 0, 0, 0, 0], null, 5);
    expect(t.asc).to.equal(Asc.LogicalUnitNotSupported);
  });

  it('matches a reference model under random writes, unmaps and reads (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom('write', 'unmap', 'ws'),
            lba: fc.integer({ min: 0, max: 63 }),
            count: fc.integer({ min: 1, max: 8 }),
            byte: fc.integer({ min: 1, max: 255 }),
          }),
          { maxLength: 20 },
        ),
        async (ops) => {
          const { dev } = makeDevice(512, 72);
          const model = new Uint8Array(72 * 512);
          for (const o of ops) {
            const len = o.count * 512;
            if (o.kind === 'write') {
              await run(dev, nexus(), rw10(Op.Write10, o.lba, o.count), new Uint8Array(len).fill(o.byte));
              model.fill(o.byte, o.lba * 512, o.lba * 512 + len);
            } else if (o.kind === 'unmap') {
              await run(dev, nexus(), rw10(Op.WriteSame10, o.lba, o.count, 0x08), new Uint8Array(512));
              model.fill(0, o.lba * 512, o.lba * 512 + len);
            } else {
              await run(dev, nexus(), rw16(Op.WriteSame16, o.lba, o.count), new Uint8Array(512).fill(o.byte));
              model.fill(o.byte, o.lba * 512, o.lba * 512 + len);
            }
          }
          const r = await run(dev, nexus(), rw10(Op.Read10, 0, 72));
          expect(Buffer.compare(Buffer.from(r.data), Buffer.from(model))).to.equal(0);
        },
      ),
      { numRuns: 40 },
    );
  });

  // Regressions found by libiscsi's suite.
  it('regression: WRITE SAME with UNMAP deallocates even when the data block is not zero (UnmapUntilEnd)', async () => {
    const { dev, ram } = makeDevice(512, 64);
    await run(dev, nexus(), rw10(Op.Write10, 63, 1), new Uint8Array(512).fill(0xff));
    const r = await run(dev, nexus(), rw10(Op.WriteSame10, 63, 0, 0x08), new Uint8Array(512).fill(0xff));
    expect(r.status).to.equal(Status.Good);
    expect(ram.data[63 * 512]).to.equal(0);
  });

  it('regression: COMPARE AND WRITE whose data-out disagrees with its block count is INVALID FIELD IN CDB', async () => {
    const { dev } = makeDevice();
    // 256 blocks do not fit the one-byte NUMBER OF LOGICAL BLOCKS: it reads 0, data says 256.
    const cdb = [Op.CompareAndWrite, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const r = await run(dev, nexus(), cdb, new Uint8Array(2 * 256 * 512));
    expect([r.status, r.key, r.asc]).to.deep.equal([
      Status.CheckCondition,
      SenseKey.IllegalRequest,
      Asc.InvalidFieldInCdb,
    ]);
  });

  it('regression: releasing an all-registrants reservation does not raise a unit attention on the releaser', async () => {
    const { dev } = makeDevice();
    const a = nexus(1);
    const reg = new Uint8Array(24);
    reg[15] = 0xa;
    await run(dev, a, [Op.PersistentReserveOut, 0, 0, 0, 0, 0, 0, 0, 24, 0], reg);
    const key = new Uint8Array(24);
    key[7] = 0xa;
    expect((await run(dev, a, [Op.PersistentReserveOut, 1, 8, 0, 0, 0, 0, 0, 24, 0], key)).status).to.equal(
      Status.Good,
    );
    expect((await run(dev, a, [Op.PersistentReserveOut, 2, 8, 0, 0, 0, 0, 0, 24, 0], key)).status).to.equal(
      Status.Good,
    );
    expect((await run(dev, a, [Op.TestUnitReady, 0, 0, 0, 0, 0])).status).to.equal(Status.Good);
  });

  it('WRITE ATOMIC(16) writes within the backend guarantee and refuses an ATOMIC BOUNDARY', async () => {
    const { dev, ram } = makeDevice();
    const cdb = (lba: number, n: number, boundary = 0) => [
      0x9c,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      lba,
      0,
      boundary,
      0,
      n,
      0,
      0,
    ];
    expect((await run(dev, nexus(), cdb(4, 2), new Uint8Array(1024).fill(3))).status).to.equal(Status.Good);
    expect(ram.data[4 * 512]).to.equal(3);
    const b = await run(dev, nexus(), cdb(4, 2, 1), new Uint8Array(1024));
    expect(b.asc).to.equal(Asc.InvalidFieldInCdb);
  });
});
