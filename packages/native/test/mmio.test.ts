import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { MmioRegion, NativeError, regionState } from '../src/index.js';
import { exited, nextMessage, startWorker } from './workers.js';

describe('native: MMIO', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-mmio-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('maps a file window at an offset; writes reach the file', () => {
    const path = join(dir, 'bar0');
    writeFileSync(path, Buffer.alloc(3 * 4096));
    {
      using bar = MmioRegion.mapFile(path, { offset: 4096, length: 4096 });
      expect(bar.size).to.equal(4096);
      bar.write32(0, 0x04030201);
      bar.nativeWrite64(8, 0x1122334455667788n);
    }
    const data = readFileSync(path);
    expect([...data.subarray(4096, 4100)]).to.deep.equal([1, 2, 3, 4]);
    expect(data.readBigUInt64LE(4096 + 8)).to.equal(0x1122334455667788n);
    expect(() => MmioRegion.mapFile(path, { offset: 100 }))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(() => MmioRegion.mapFile(join(dir, 'missing')))
      .to.throw(NativeError)
      .with.property('code', 'ENOENT');
  });

  it('agrees between Atomics on the view and napi calls, 32 and 64 bit', () => {
    using bar = MmioRegion.createShared(4096);
    bar.write32(16, 0xdeadbeef);
    expect(bar.nativeRead32(16)).to.equal(0xdeadbeef);
    bar.nativeWrite32(20, 0xcafef00d);
    expect(bar.read32(20)).to.equal(0xcafef00d);
    bar.write64(24, 0xfedcba9876543210n);
    expect(bar.nativeRead64(24)).to.equal(0xfedcba9876543210n);
    bar.nativeWrite64(32, 2n ** 64n - 1n);
    expect(bar.read64(32)).to.equal(2n ** 64n - 1n);
    bar.doorbell32(4092, 7);
    expect(bar.nativeRead32(4092)).to.equal(7);
    bar.nativeDoorbell32(4088, 9);
    expect(bar.read32(4088)).to.equal(9);
  });

  it('8- and 16-bit registers touch only their own bytes', () => {
    using bar = MmioRegion.createShared(4096);
    bar.write32(0x84, 0xaabbccdd);
    bar.write16(0x86, 0x1234);
    bar.write8(0x84, 0x20);
    expect(bar.read32(0x84)).to.equal(0x1234cc20);
    expect(bar.read16(0x86)).to.equal(0x1234);
    expect(bar.read8(0x85)).to.equal(0xcc);
    expect(bar.nativeRead32(0x84)).to.equal(0x1234cc20);
    expect(() => bar.read16(0x85)).to.throw(RangeError);
    expect(() => bar.write16(4096, 0)).to.throw(RangeError);
    expect(() => bar.write8(-1, 0)).to.throw(RangeError);
  });

  it('rejects misaligned and out-of-range register offsets', () => {
    using bar = MmioRegion.createShared(4096);
    expect(() => bar.read32(2)).to.throw(RangeError);
    expect(() => bar.read32(4.5)).to.throw(RangeError);
    expect(() => bar.write64(4, 1n)).to.throw(RangeError);
    expect(() => bar.read32(4096)).to.throw(RangeError);
    expect(() => bar.nativeRead32(2))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(() => bar.nativeRead64(4096))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(() => bar.nativeWrite64(0, -1n))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });

  for (const kind of ['anonymous shared', 'file in /dev/shm'] as const) {
    it(`MMIO writes from one worker are read by another (${kind})`, async () => {
      const path = `/dev/shm/storkit-bar-${process.pid}`;
      if (kind !== 'anonymous shared') writeFileSync(path, Buffer.alloc(4096));
      using bar = kind === 'anonymous shared' ? MmioRegion.createShared(4096) : MmioRegion.mapFile(path);
      // A "device" worker polls its doorbell at 0x100 and, for each ring, echoes the value
      // it finds in the 64-bit register at 0x200 into 0x300 (napi path) and 0x308 (view).
      const device = startWorker(
        `const bar = n.MmioRegion.attach(data.h);
         port.postMessage('ready');
         let seen = 0;
         while (seen < 3) {
           const db = bar.read32(0x100);
           if (db === seen) continue;
           seen = db;
           const v = bar.nativeRead64(0x200);
           bar.nativeWrite64(0x300, v + 1n);
           bar.write64(0x308, v + 2n);
           bar.doorbell32(0x104, seen);
         }
         bar.close();`,
        { h: bar.handle },
      );
      expect(await nextMessage(device)).to.equal('ready');
      // A "driver" worker rings the doorbell; the main thread reads the device's answers.
      const driver = startWorker(
        `const bar = n.MmioRegion.attach(data.h);
         const out = [];
         for (let i = 1; i <= 3; i++) {
           bar.write64(0x200, BigInt(i) * 1000n);
           bar.doorbell32(0x100, i);
           while (bar.read32(0x104) !== i) {}
           out.push([bar.read64(0x300), bar.nativeRead64(0x308)]);
         }
         port.postMessage(out);
         bar.close();`,
        { h: bar.handle },
      );
      const out = await nextMessage<[bigint, bigint][]>(driver);
      await Promise.all([exited(device), exited(driver)]);
      expect(out).to.deep.equal([
        [1001n, 1002n],
        [2001n, 2002n],
        [3001n, 3002n],
      ]);
      expect(bar.read32(0x104)).to.equal(3);
      expect(regionState(bar.handle).views).to.equal(1);
      if (kind !== 'anonymous shared') rmSync(path);
    });
  }
});
