import { execFileSync } from 'node:child_process';
import {
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';
import fc from 'fast-check';

import { DmaRegion, NativeError, regionState, Uring } from '../src/index.js';
import { exited, nextMessage, startWorker } from './workers.js';

type Done = [userData: number, result: number];

function waitAll(ring: Uring, n: number): Done[] {
  const got: Done[] = [];
  while (got.length < n) {
    ring.wait(1);
    ring.reap((u, r) => got.push([u, r]));
  }
  return got.sort((a, b) => a[0] - b[0]);
}

describe('native: io_uring', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-uring-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('completes NOPs with their user data', () => {
    using ring = new Uring(8);
    expect(ring.batchSize).to.equal(8);
    for (const u of [7, 2 ** 40, 0]) expect(ring.nop(u)).to.equal(true);
    expect(ring.submit()).to.equal(3);
    expect(ring.inflight).to.equal(3);
    expect(waitAll(ring, 3)).to.deep.equal([
      [0, 0],
      [7, 0],
      [2 ** 40, 0],
    ]);
    expect(ring.inflight).to.equal(0);
  });

  it('writes and reads a file with O_DIRECT from and into a DMA region', () => {
    const path = join(dir, 'direct');
    writeFileSync(path, Buffer.alloc(64 * 1024));
    const fd = openSync(path, constants.O_RDWR | constants.O_DIRECT);
    try {
      using region = DmaRegion.create(64 * 1024, { hugepages: 'never' });
      using ring = new Uring(16);
      const slot = ring.addRegion(region);
      for (let i = 0; i < 8192; i++) region.bytes[i] = (i * 7) & 0xff;
      ring.write(fd, slot, 0, 8192, 16384, 1);
      expect(ring.submit()).to.equal(1);
      expect(waitAll(ring, 1)).to.deep.equal([[1, 8192]]);
      ring.read(fd, slot, 32768, 4096, 20480, 2);
      ring.read(fd, slot, 40960, 4096, 16384, 3);
      ring.fsync(fd, 4);
      ring.submit();
      expect(waitAll(ring, 3)).to.deep.equal([
        [2, 4096],
        [3, 4096],
        [4, 0],
      ]);
      expect(region.bytes.subarray(32768, 36864)).to.deep.equal(region.bytes.subarray(4096, 8192));
      expect(region.bytes.subarray(40960, 45056)).to.deep.equal(region.bytes.subarray(0, 4096));
      const onDisk = readFileSync(path);
      expect(
        Buffer.compare(onDisk.subarray(16384, 24576), Buffer.from(region.bytes.subarray(0, 8192))),
      ).to.equal(0);
      // O_DIRECT needs aligned buffers: the kernel says so in the completion.
      ring.read(fd, slot, 1, 4096, 0, 5);
      ring.submit();
      expect(waitAll(ring, 1)).to.deep.equal([[5, -22]]);
    } finally {
      closeSync(fd);
    }
  });

  it('keeps a region mapped while the ring holds it', () => {
    const region = DmaRegion.create(4096, { hugepages: 'never' });
    const h = region.handle;
    const ring = new Uring(4);
    const slot = ring.addRegion(region);
    region.close();
    expect(regionState(h).live).to.equal(true);
    ring.removeRegion(slot);
    expect(regionState(h).live).to.equal(false);
    ring.close();
    ring.close();
  });

  it('rejects a bad batch whole, and removal of a region with I/O in flight', () => {
    using region = DmaRegion.create(4096, { hugepages: 'never' });
    using ring = new Uring(4);
    const slot = ring.addRegion(region);
    ring.nop(1);
    ring.read(0, slot, 4000, 512, 0, 2);
    expect(() => ring.submit())
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(ring.inflight).to.equal(0);
    expect(ring.prepared).to.equal(0);
    ring.read(0, slot + 1, 0, 512, 0, 3);
    expect(() => ring.submit())
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    ring.read(999_999, slot, 0, 512, 0, 4);
    ring.submit();
    expect(waitAll(ring, 1)).to.deep.equal([[4, -9]]);
    // A read from an empty FIFO stays in the kernel until someone writes to it.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, constants.O_RDWR);
    try {
      ring.read(fd, slot, 0, 64, 0, 5);
      ring.submit();
      expect(() => ring.removeRegion(slot))
        .to.throw(NativeError)
        .with.property('code', 'EBUSY');
      writeSync(fd, 'abc');
      expect(waitAll(ring, 1)).to.deep.equal([[5, 3]]);
      expect([...region.bytes.subarray(0, 3)]).to.deep.equal([97, 98, 99]);
    } finally {
      closeSync(fd);
    }
    ring.removeRegion(slot);
    expect(() => new Uring(0))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });

  it('keeps what the full ring did not accept, for the next submit', () => {
    using ring = new Uring(4);
    const cap = 2 * ring.batchSize; // completion queue size = in-flight cap
    let next = 0;
    let accepted = 0;
    for (let round = 0; round < 3; round++) {
      while (ring.prepared < ring.batchSize) ring.nop(next++);
      accepted += ring.submit();
    }
    expect(accepted).to.equal(cap);
    expect(ring.prepared).to.equal(ring.batchSize);
    expect(ring.submit()).to.equal(0);
    const done = waitAll(ring, cap);
    expect(done.map((d) => d[0])).to.deep.equal([...Array(cap).keys()]);
    expect(ring.submit()).to.equal(ring.batchSize);
    expect(waitAll(ring, ring.batchSize).map((d) => d[0])).to.deep.equal([8, 9, 10, 11]);
  });

  it('runs one ring per worker, doing I/O into a region the main thread owns', async () => {
    const path = join(dir, 'per-worker');
    writeFileSync(path, Buffer.alloc(8192));
    using region = DmaRegion.create(8192, { hugepages: 'never' });
    region.bytes.fill(1, 0, 4096);
    region.bytes.fill(2, 4096, 8192);
    const body = `
      const { openSync, closeSync } = require('node:fs');
      const r = n.DmaRegion.attach(data.h);
      const ring = new n.Uring(4);
      const slot = ring.addRegion(r);
      const fd = openSync(data.path, 'r+');
      ring.write(fd, slot, data.id * 4096, 4096, data.id * 4096, data.id);
      ring.submit();
      let res = null;
      while (res === null) { ring.wait(1); ring.reap((u, v) => { res = [u, v]; }); }
      closeSync(fd);
      ring.close();
      r.close();
      port.postMessage(res);`;
    const ws = [0, 1].map((id) => startWorker(body, { h: region.handle, id, path }));
    const res = await Promise.all(ws.map((w) => nextMessage<number[]>(w)));
    await Promise.all(ws.map(exited));
    expect(res).to.deep.equal([
      [0, 4096],
      [1, 4096],
    ]);
    const onDisk = readFileSync(path);
    expect(onDisk.subarray(0, 4096).every((b) => b === 1)).to.equal(true);
    expect(onDisk.subarray(4096).every((b) => b === 2)).to.equal(true);
    expect(regionState(region.handle).views).to.equal(1);
  });

  it('delivers every completion exactly once across many wraps of the queues', () => {
    using ring = new Uring(4);
    const seen = new Uint8Array(5000);
    let next = 0;
    let done = 0;
    while (done < seen.length) {
      while (next < seen.length && ring.prepared < ring.batchSize) ring.nop(next++);
      ring.submit();
      const n = ring.reap((u, r) => {
        expect(r).to.equal(0);
        seen[u]++;
      });
      done += n;
      if (n === 0 && ring.inflight > 0) ring.wait(1);
    }
    expect(seen.every((c) => c === 1)).to.equal(true);
    expect(ring.inflight).to.equal(0);
  });

  it('delivers the rest of a batch on the next reap when a callback throws', () => {
    using ring = new Uring(8);
    for (let i = 0; i < 5; i++) ring.nop(i);
    ring.submit();
    ring.wait(5);
    const seen: number[] = [];
    expect(() =>
      ring.reap((u) => {
        seen.push(u);
        if (u === 1) throw new Error('boom');
      }),
    ).to.throw('boom');
    ring.reap((u) => seen.push(u));
    expect(seen.sort()).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it('matches a model file under random direct reads and writes (property)', () => {
    const path = join(dir, 'model');
    const BLOCK = 4096;
    const BLOCKS = 16;
    writeFileSync(path, Buffer.alloc(BLOCK * BLOCKS));
    const fd = openSync(path, constants.O_RDWR | constants.O_DIRECT);
    using region = DmaRegion.create(BLOCK * 64, { hugepages: 'never' });
    using ring = new Uring(32);
    const slot = ring.addRegion(region);
    const model = new Uint8Array(BLOCK * BLOCKS);
    const op = fc.record({
      write: fc.boolean(),
      block: fc.integer({ min: 0, max: BLOCKS - 2 }),
      count: fc.integer({ min: 1, max: 2 }),
      buf: fc.integer({ min: 0, max: 62 }),
      fill: fc.integer({ min: 0, max: 255 }),
    });
    try {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
          // One I/O at a time, so the model's order is the file's order.
          ops.forEach((o, i) => {
            const off = o.buf * BLOCK;
            const len = o.count * BLOCK;
            if (o.write) {
              region.bytes.fill(o.fill, off, off + len);
              ring.write(fd, slot, off, len, o.block * BLOCK, i);
              model.fill(o.fill, o.block * BLOCK, o.block * BLOCK + len);
            } else {
              ring.read(fd, slot, off, len, o.block * BLOCK, i);
            }
            ring.submit();
            expect(waitAll(ring, 1)).to.deep.equal([[i, len]]);
            if (!o.write) {
              const want = model.subarray(o.block * BLOCK, o.block * BLOCK + len);
              expect(Buffer.compare(region.bytes.subarray(off, off + len), want)).to.equal(0);
            }
          });
          expect(Buffer.compare(readFileSync(path), model)).to.equal(0);
        }),
        { numRuns: 25 },
      );
    } finally {
      closeSync(fd);
    }
  });
});
