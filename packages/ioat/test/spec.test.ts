// The register map and descriptor layout as SPDK's include/spdk/ioat_spec.h and Linux's
// drivers/dma/ioat/{registers,hw}.h give them, written out here by hand from those headers: the
// driver and the model share spec.ts, so only a foreign source can catch a slip in it.
import { expect } from 'chai';

import { spec } from '../src/index.js';

describe('ioat: spec against SPDK ioat_spec.h and Linux registers.h', () => {
  it('BAR0 offsets of struct spdk_ioat_registers', () => {
    // chancnt u8 @0, xfercap u8 @1, genctrl u8 @2, intrctrl u8 @3, attnstatus u32 @4, cbver u8 @8,
    // intrdelay u16 @0xC, cs_status u16 @0xE, dmacapability u32 @0x10, then the channel at 0x80.
    expect(spec.REG).to.deep.equal({
      CHANCNT: 0x00,
      XFERCAP: 0x01,
      GENCTRL: 0x02,
      INTRCTRL: 0x03,
      ATTNSTATUS: 0x04,
      CBVER: 0x08,
      INTRDELAY: 0x0c,
      CS_STATUS: 0x0e,
      DMACAPABILITY: 0x10,
      CHANCTRL: 0x80,
      CHANCMD: 0x84,
      DMACOUNT: 0x86,
      CHANSTS: 0x88,
      CHAINADDR: 0x90,
      CHANCMP: 0x98,
      CHANERR: 0xa8,
      CHANERRMASK: 0xac,
    });
  });

  it('command, status, control and capability bits', () => {
    expect(spec.CHANCMD.RESET).to.equal(0x20);
    expect(spec.CHANCMD.SUSPEND).to.equal(0x04);
    expect([
      spec.CHANSTS.ACTIVE,
      spec.CHANSTS.IDLE,
      spec.CHANSTS.SUSPENDED,
      spec.CHANSTS.HALTED,
      spec.CHANSTS.ARMED,
    ]).to.deep.equal([0, 1, 2, 3, 4]);
    expect(spec.CHANSTS.UNAFFILIATED_ERROR).to.equal(0x8);
    expect(spec.CHANSTS.SOFT_ERROR).to.equal(0x10);
    expect(spec.CHANSTS.ADDRESS_LOW_MASK).to.equal(0x3f); // COMPLETED_DESCRIPTOR_MASK = ~0x3F
    expect(spec.CHANCTRL.ANY_ERR_ABORT_EN).to.equal(0x0008);
    expect(spec.CHANCTRL.ERR_COMPLETION_EN).to.equal(0x0004);
    expect(spec.CHANCTRL.CHANNEL_IN_USE).to.equal(0x0100);
    expect(spec.DMACAP.BFILL).to.equal(1 << 6);
    expect(spec.DMACAP.XOR).to.equal(1 << 8);
    expect(spec.DMACAP.PQ).to.equal(1 << 9);
    expect(spec.CHANCMP_ALIGN).to.equal(8);
    // Linux registers.h, IOAT_CHANERR_*.
    expect(spec.CHANERR.SRC_ADDR).to.equal(0x0001);
    expect(spec.CHANERR.DEST_ADDR).to.equal(0x0002);
    expect(spec.CHANERR.NEXT_DESCRIPTOR_ADDR).to.equal(0x0004);
    expect(spec.CHANERR.NEXT_DESCRIPTOR_ALIGNMENT).to.equal(0x0008);
    expect(spec.CHANERR.CHAIN_ADDR_VALUE).to.equal(0x0010);
    expect(spec.CHANERR.CHANCMD).to.equal(0x0020);
    expect(spec.CHANERR.DESCRIPTOR_CONTROL).to.equal(0x0400);
    expect(spec.CHANERR.DESCRIPTOR_LENGTH).to.equal(0x0800);
    expect(spec.CHANERR.COMPLETION_ADDR).to.equal(0x1000);
    expect(spec.chanerrNames(0x0803)).to.deep.equal(['SRC_ADDR', 'DEST_ADDR', 'DESCRIPTOR_LENGTH']);
  });

  it('descriptor layout: 64 bytes, size, control, src, dest, next; control bits; opcodes', () => {
    expect(spec.DESC_SIZE).to.equal(64);
    expect(spec.DESC).to.deep.equal({
      SIZE: 0,
      CONTROL: 4,
      SRC: 8,
      DEST: 16,
      NEXT: 24,
      FILL_NEXT_DEST: 40,
      USER1: 48,
      USER2: 56,
    });
    // struct spdk_ioat_dma_hw_desc control bitfield, from bit 0 up.
    expect(spec.CTL).to.deep.equal({
      INT_ENABLE: 1,
      SRC_SNOOP_DISABLE: 2,
      DEST_SNOOP_DISABLE: 4,
      COMPLETION_UPDATE: 8,
      FENCE: 16,
      NULL: 32,
      SRC_PAGE_BREAK: 64,
      DEST_PAGE_BREAK: 128,
      BUNDLE: 256,
      DEST_DCA: 512,
      HINT: 1024,
    });
    expect(spec.CTL_OP_SHIFT).to.equal(24);
    expect(spec.OP).to.deep.equal({
      COPY: 0,
      FILL: 1,
      XOR: 0x87,
      XOR_VAL: 0x88,
      PQ: 0x89,
      PQ_VAL: 0x8a,
      PQ_UP: 0x8b,
    });
  });

  it('XFERCAP: 0 is 4 GiB, below 12 is invalid', () => {
    expect(spec.maxTransfer(0)).to.equal(2 ** 32);
    expect(spec.maxTransfer(11)).to.equal(0);
    expect(spec.maxTransfer(12)).to.equal(4096);
    expect(spec.maxTransfer(0xe0 | 20)).to.equal(1 << 20); // bits 7:5 are not part of it
  });

  it('PCI IDs: the 50 SPDK binds, Intel only', () => {
    expect(spec.IOAT_DEVICE_IDS).to.have.length(50);
    expect(new Set(spec.IOAT_DEVICE_IDS).size).to.equal(50);
    for (const id of [0x3c20, 0x3c2f, 0x0e2e, 0x2f27, 0x0c53, 0x6f50, 0x6f2f, 0x2021, 0x0b00]) {
      expect(spec.isIoatDevice(0x8086, id), id.toString(16)).to.equal(true);
    }
    expect(spec.isIoatDevice(0x8086, 0x0b25)).to.equal(false); // DSA (idxd), not I/OAT
    expect(spec.isIoatDevice(0x1b36, 0x2021)).to.equal(false);
  });
});
