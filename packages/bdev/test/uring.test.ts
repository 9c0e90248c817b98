import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DmaRegion } from '@storkit/native';
import { expect } from 'chai';
import {
  bdevFlush,
  bdevRead,
  bdevReadv,
  bdevRegisterDmaRegion,
  bdevUnregisterDmaRegion,
  bdevWrite,
  bdevWritev,
  bdevWriteZeroes,
  IoStatus,
} from '../src/index.js';
import { bdevAioCreate, bdevAioDelete, bdevUringCreate, bdevUringDelete } from '../src/modules/index.js';
import { harness, open, pattern, run, until } from './helpers.js';

describe('uring / aio file module', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join('/var/tmp', 'storkit-bdev-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('does O_DIRECT I/O from DMA buffers and bounces plain buffers; flush and write_zeroes', () => {
    const path = join(dir, 'u.img');
    writeFileSync(path, Buffer.alloc(1 << 20));
    const h = harness();
    const c = bdevUringCreate({ name: 'U0', filename: path, block_size: 4096 });
    expect(c.direct).to.equal(true);
    expect(c.fallback).to.equal(null);
    const region = DmaRegion.create(1 << 20, { hugepages: 'never' });
    bdevRegisterDmaRegion(region);
    const o = open('U0');
    const a = region.bytes.subarray(0, 8192);
    a.set(pattern(8192, 1));
    expect(run(h, (cb, d) => bdevWrite(o.desc, o.ch, a, 3, 2, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    const plain = pattern(3 * 4096, 2);
    expect(
      run(
        h,
        (cb, d) => bdevWritev(o.desc, o.ch, [plain.subarray(0, 100), plain.subarray(100)], 10, 3, cb, d),
        0,
      ),
    ).to.equal(IoStatus.SUCCESS);
    expect(run(h, (cb, d) => bdevFlush(o.desc, o.ch, 0, 256, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    const file = readFileSync(path);
    expect(file.subarray(3 * 4096, 5 * 4096).equals(Buffer.from(pattern(8192, 1)))).to.equal(true);
    expect(file.subarray(10 * 4096, 13 * 4096).equals(Buffer.from(plain))).to.equal(true);
    const back = region.bytes.subarray(65536, 65536 + 8192);
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, 3, 2, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    expect(Buffer.from(back).equals(Buffer.from(pattern(8192, 1)))).to.equal(true);
    const b1 = new Uint8Array(5000);
    const b2 = new Uint8Array(3 * 4096 - 5000);
    expect(run(h, (cb, d) => bdevReadv(o.desc, o.ch, [b1, b2], 10, 3, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    expect(Buffer.concat([b1, b2]).equals(Buffer.from(plain))).to.equal(true);
    expect(run(h, (cb, d) => bdevWriteZeroes(o.desc, o.ch, 3, 1, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, 3, 2, cb, d), 0)).to.equal(IoStatus.SUCCESS);
    expect(back.subarray(0, 4096).every((x) => x === 0)).to.equal(true);
    // Many in flight at once (more than one ring batch).
    let left = 600;
    let bad = 0;
    for (let i = 0; i < 600; i++) {
      const buf = region.bytes.subarray((i % 200) * 4096, (i % 200) * 4096 + 4096);
      const rc = bdevRead(
        o.desc,
        o.ch,
        buf,
        i % 256,
        1,
        (s: IoStatus) => {
          left--;
          if (s !== IoStatus.SUCCESS) bad++;
        },
        null,
      );
      expect(rc).to.equal(0);
    }
    until(h, () => left === 0, 0);
    expect(bad).to.equal(0);
    o.close();
    let gone = false;
    bdevUringDelete({ name: 'U0' }, () => {
      gone = true;
    });
    until(h, () => gone, 0);
    h.close();
    bdevUnregisterDmaRegion(region);
    region.close();
  });

  it('reports O_DIRECT or the buffered fallback at create time (tmpfs: O_DIRECT only on newer kernels)', () => {
    const shm = mkdtempSync(join('/dev/shm', 'storkit-bdev-'));
    try {
      const path = join(shm, 'a.img');
      writeFileSync(path, Buffer.alloc(64 * 1024));
      const h = harness();
      const c = bdevAioCreate({ name: 'A0', filename: path });
      // Linux >= 6.6 tmpfs takes O_DIRECT; older kernels refuse it and the module falls back.
      if (c.direct) expect(c.fallback).to.equal(null);
      else expect(c.fallback).to.match(/O_DIRECT .* buffered I\/O/);
      const o = open('A0');
      const data = pattern(1024, 4);
      expect(run(h, (cb, d) => bdevWrite(o.desc, o.ch, data, 1, 2, cb, d), 0)).to.equal(IoStatus.SUCCESS);
      const back = new Uint8Array(1024);
      expect(run(h, (cb, d) => bdevRead(o.desc, o.ch, back, 1, 2, cb, d), 0)).to.equal(IoStatus.SUCCESS);
      expect(Buffer.from(back).equals(Buffer.from(data))).to.equal(true);
      expect(() => bdevAioCreate({ name: 'A1', filename: join(shm, 'missing') })).to.throw(/cannot open/);
      o.close();
      let gone = false;
      bdevAioDelete({ name: 'A0' }, () => {
        gone = true;
      });
      until(h, () => gone, 0);
      h.close();
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});
