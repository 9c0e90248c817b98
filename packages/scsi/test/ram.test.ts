import { expect } from 'chai';
import { IoStatus, RamBackend, ScsiError } from '../src/index.js';

describe('scsi: RAM backend', () => {
  it('never completes inside the submitting call, and completes each I/O exactly once', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 16 });
    let inside = true;
    const seen: number[] = [];
    await new Promise<void>((resolve) => {
      let n = 0;
      for (let i = 0; i < 3000; i++) {
        ram.writev([new Uint8Array(512).fill(i & 0xff)], i % 16, 1, (st) => {
          expect(inside).to.equal(false);
          expect(st).to.equal(IoStatus.Success);
          seen.push(i);
          if (++n === 3000) resolve();
        });
      }
      inside = false;
    });
    expect(seen).to.deep.equal([...Array(3000).keys()]);
  });

  it('compareAndWritev writes only when the medium matches, reporting the first differing byte', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 4 });
    const cmp = new Uint8Array(512);
    cmp[100] = 1;
    const st = await new Promise<[number, number]>((r) =>
      ram.compareAndWritev([cmp], [new Uint8Array(512).fill(7)], 1, 1, (s, i) => r([s, i])),
    );
    expect(st).to.deep.equal([IoStatus.Miscompare, 100]);
    expect(ram.data[512]).to.equal(0);
  });

  it('seekData/seekHole follow writes and unmaps', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 8 });
    const call = (f: (cb: (s: number, i: number) => void) => void) =>
      new Promise<number>((r) => f((_s, i) => r(i)));
    await call((cb) => ram.writev([new Uint8Array(1024)], 3, 2, cb));
    expect(await call((cb) => ram.seekData(0, cb))).to.equal(3);
    expect(await call((cb) => ram.seekHole(3, cb))).to.equal(5);
    await call((cb) => ram.unmap(3, 1, cb));
    expect(await call((cb) => ram.seekData(0, cb))).to.equal(4);
  });

  it('rejects a bad geometry with a typed error', () => {
    expect(() => new RamBackend({ name: 'r', blockSize: 1000, numBlocks: 8 }))
      .to.throw(ScsiError)
      .with.property('code', 'EINVAL_BLOCK_SIZE');
    expect(() => new RamBackend({ name: 'r', blockSize: 512, numBlocks: 0 }))
      .to.throw(ScsiError)
      .with.property('code', 'EINVAL_NUM_BLOCKS');
  });
});
