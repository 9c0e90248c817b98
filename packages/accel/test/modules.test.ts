import { IoatModel } from '@storkit/ioat/testing';
import { crc32c, crc32cRange, DmaRegion } from '@storkit/native';
import { expect } from 'chai';
import { accelResetForTests } from '../src/framework.js';
import {
  AccelError,
  accelAssignOpc,
  accelGetModuleInfo,
  accelGetOpcAssignments,
  accelInitialize,
  accelIoatScan,
  accelIoatSetDevices,
  accelOffloadSetOptions,
  accelWriteConfig,
} from '../src/index.js';
import { ioatResetForTests } from '../src/modules/ioat.js';
import { offloadResetForTests } from '../src/modules/offload.js';
import { AccelHarness, accelStopIfStarted } from './helpers.js';

describe('accel: assignments (accel_assign_opc, accel_get_opc_assignments, accel_get_module_info)', () => {
  before(() => accelStopIfStarted());
  afterEach(() => accelResetForTests());

  it('everything goes to software unless assigned; an assignment shows in save_config', async () => {
    expect(accelGetOpcAssignments()).to.deep.equal({
      copy: 'software',
      fill: 'software',
      dualcast: 'software',
      compare: 'software',
      crc32c: 'software',
      copy_crc32c: 'software',
    });
    expect(accelGetModuleInfo().map((m) => m.module)).to.deep.equal(['software', 'offload']);
    accelAssignOpc('crc32c', 'offload');
    expect(accelGetOpcAssignments().crc32c).to.equal('offload');
    expect(accelWriteConfig()).to.deep.equal([
      { method: 'accel_assign_opc', params: { opname: 'crc32c', module: 'offload' } },
    ]);
    expect(() => accelAssignOpc('compress', 'software'))
      .to.throw(AccelError)
      .with.property('code', 'ENOENT');
  });

  it('a start with an assignment to an unknown or disabled module fails, as SPDK fails it', async () => {
    accelAssignOpc('copy', 'nosuch');
    try {
      await accelInitialize();
      expect.fail('started');
    } catch (e) {
      expect((e as AccelError).code).to.equal('ENOENT');
    }
    accelResetForTests();
    accelAssignOpc('copy', 'ioat'); // not scanned
    try {
      await accelInitialize();
      expect.fail('started');
    } catch (e) {
      expect((e as AccelError).code).to.equal('ENOTSUP');
    }
  });

  it('assignments are startup-only', async () => {
    const a = await AccelHarness.start();
    try {
      expect(() => accelAssignOpc('copy', 'software'))
        .to.throw(AccelError)
        .with.property('code', 'EBUSY');
    } finally {
      await a.close();
    }
  });
});

describe('accel: the ioat module on the I/OAT device model', function () {
  before(() => accelStopIfStarted());
  this.timeout(60_000);
  let model: IoatModel;
  let a: AccelHarness;
  let mem: DmaRegion;
  before(async () => {
    model = await IoatModel.start({ channels: 2 });
    accelIoatSetDevices(model.devices);
    accelIoatScan();
    a = await AccelHarness.start(2);
    mem = DmaRegion.create(2 << 20, { hugepages: 'never' });
  });
  after(async () => {
    await a.close();
    ioatResetForTests();
    mem.close();
    await model.stop();
  });

  it('takes copy and fill once scanned; save_config says ioat_scan_accel_module', () => {
    expect(accelGetOpcAssignments()).to.include({ copy: 'ioat', fill: 'ioat', crc32c: 'software' });
    expect(accelGetModuleInfo().find((m) => m.module === 'ioat')?.['supported ops']).to.deep.equal([
      'copy',
      'fill',
    ]);
    expect(accelWriteConfig()).to.deep.equal([{ method: 'ioat_scan_accel_module' }]);
  });

  it('copies and fills DMA memory on the engine, each reactor on its own channel', async () => {
    const before = [model.stats(0).descriptors, model.stats(1).descriptors];
    const results: number[] = [];
    for (let r = 0; r < 2; r++) {
      const ch = a.ch(r);
      const base = r * (1 << 20);
      mem.bytes.fill(r + 1, base, base + 65536);
      expect(
        ch.submitCopy(mem.bytes, base + 65536, mem.bytes, base, 65536, (_x, s) => results.push(s)),
      ).to.equal(0);
      expect(
        ch.submitFill(mem.bytes.subarray(base + 200_000), 0, 1000, 0xab, (_x, s) => results.push(s)),
      ).to.equal(0);
    }
    await a.until(() => results.length === 4);
    expect(results).to.deep.equal([0, 0, 0, 0]);
    for (let r = 0; r < 2; r++) {
      const base = r * (1 << 20);
      expect(mem.bytes.subarray(base + 65536, base + 131072).every((v) => v === r + 1)).to.equal(true);
      expect(mem.bytes.subarray(base + 200_000, base + 201_000).every((v) => v === 0xab)).to.equal(true);
    }
    expect(model.stats(0).descriptors - before[0]).to.be.at.least(2);
    expect(model.stats(1).descriptors - before[1]).to.be.at.least(2);
  });

  it('a buffer the engine cannot reach is copied by the CPU, counted as cpu_fallback', async () => {
    const ch = a.ch(0);
    const plain = new Uint8Array(4096).fill(7);
    const before = model.stats(0).descriptors;
    let s = -1;
    ch.submitCopy(mem.bytes, 0, plain, 0, 4096, (_x, st) => (s = st));
    await a.until(() => s === 0);
    expect(mem.bytes.subarray(0, 4096).every((v) => v === 7)).to.equal(true);
    expect(ch.moduleStats().ioat.cpu_fallback).to.equal(1);
    expect(model.stats(0).descriptors).to.equal(before);
  });

  it("an overlapping copy, which the engine does not do, runs on the CPU with memmove's result", async () => {
    const ch = a.ch(0);
    const before = ch.moduleStats().ioat.cpu_fallback;
    for (let i = 0; i < 8192; i++) mem.bytes[i] = i & 0xff;
    const want = mem.bytes.slice(0, 8192).copyWithin(100, 0, 4096);
    let s = -1;
    ch.submitCopy(mem.bytes, 100, mem.bytes, 0, 4096, (_x, st) => (s = st));
    await a.until(() => s === 0);
    expect(mem.bytes.subarray(0, 8192)).to.deep.equal(want);
    expect(ch.moduleStats().ioat.cpu_fallback).to.equal(before + 1);
  });

  it('a batch of copies goes to the engine behind one doorbell', async () => {
    const ch = a.ch(0);
    const b = ch.batch();
    if (b === null) throw new Error('no batch');
    for (let i = 0; i < 16; i++) b.appendCopy(mem.bytes, 1_500_000 + i * 4096, mem.bytes, i * 4096, 4096);
    const changes = model.stats(0).dmacountChanges;
    let s = -1;
    b.submit((_x, st) => (s = st));
    await a.until(() => s === 0);
    expect(model.stats(0).dmacountChanges - changes).to.equal(1);
  });
});

describe('accel: the offload module (piscina)', function () {
  before(() => accelStopIfStarted());
  this.timeout(60_000);

  it('big jobs over DMA or shared memory go to the pool, small ones and unreachable ones stay', async () => {
    accelOffloadSetOptions({ threads: 1, minBytes: 1 << 16 });
    accelAssignOpc('crc32c', 'offload');
    accelAssignOpc('copy', 'offload');
    const a = await AccelHarness.start();
    const mem = DmaRegion.create(4 << 20, { hugepages: 'never' });
    try {
      for (let i = 0; i < mem.size; i++) mem.bytes[i] = (i * 7) & 0xff;
      const sab = new Uint8Array(new SharedArrayBuffer(1 << 20)).fill(9);
      const plain = new Uint8Array(1 << 20).fill(5);
      const got: number[] = [];
      const ch = a.ch();
      ch.submitCrc32c(mem.bytes, 100, 3 << 20, 0, (_x, _s, r) => got.push(r));
      ch.submitCrc32c(sab, 0, 1 << 20, 0, (_x, _s, r) => got.push(r));
      ch.submitCrc32c(plain, 0, 1 << 20, 0, (_x, _s, r) => got.push(r));
      ch.submitCrc32c(mem.bytes, 0, 512, 0, (_x, _s, r) => got.push(r));
      ch.submitCopy(mem.bytes, 3_700_000, mem.bytes, 0, 200_000, (_x, s) => got.push(s));
      await a.until(() => got.length === 5);
      expect(new Set(got.slice(0, 4))).to.deep.equal(
        new Set([
          crc32c(mem.bytes.subarray(100, 100 + (3 << 20))),
          crc32c(sab),
          crc32c(plain),
          crc32c(mem.bytes.subarray(0, 512)),
        ]),
      );
      expect(got[4]).to.equal(0);
      expect(mem.bytes.subarray(3_700_000, 3_900_000)).to.deep.equal(mem.bytes.subarray(0, 200_000));
      expect(ch.moduleStats().offload).to.deep.equal({ inline: 1, unreachable: 1, offloaded: 3 });
      // crc32cRange: a big job the pool would take is done here (a caller that cannot wait).
      expect(ch.crc32cRange(sab, 0, 1 << 20, 5)).to.equal(crc32cRange(sab, 0, 1 << 20, 5));
      expect(ch.crc32cRange(mem.bytes, 0, 512)).to.equal(crc32c(mem.bytes.subarray(0, 512)));
      expect(ch.moduleStats().offload).to.deep.equal({ inline: 2, unreachable: 1, offloaded: 3 });
    } finally {
      await a.close();
      offloadResetForTests();
      mem.close();
    }
  });
});
