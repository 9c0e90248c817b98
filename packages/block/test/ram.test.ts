import * as block from '@storkit/block';
import { BlockError, IoStatus } from '@storkit/block';
import * as testing from '@storkit/block/testing';
import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

function record(st: IoStatus, out: IoStatus[]): void {
  out.push(st);
}

const call = (f: (cb: (s: IoStatus, ctx: null) => void) => void) =>
  new Promise<IoStatus>((r) => f((s) => r(s)));

describe('block: package entry points', () => {
  it('exports the contract, and the RAM double only under ./testing', () => {
    expect(Object.keys(block).sort()).to.deep.equal(
      [
        'BlockError',
        'ContainedErrors',
        'DeferredCompletions',
        'IOBUF_DEFAULTS',
        'IoStatus',
        'Iobuf',
        'IobufChannel',
        'IobufEntry',
        'IobufPool',
        'LinkedFifo',
        'iobufOptions',
        'setContainedLog',
      ].sort(),
    );
    expect(Object.keys(testing)).to.deep.equal(['RamBackend']);
  });
});

describe('block: RAM backend', () => {
  it('never completes inside the submitting call, and completes each I/O exactly once, in order', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 16 });
    let inside = true;
    const seen: number[] = [];
    await new Promise<void>((resolve) => {
      let n = 0;
      const cb = (st: IoStatus, i: number): void => {
        expect(inside).to.equal(false);
        expect(st).to.equal(IoStatus.SUCCESS);
        seen.push(i);
        if (++n === 3000) resolve();
      };
      for (let i = 0; i < 3000; i++) ram.writev([new Uint8Array(512).fill(i & 0xff)], i % 16, 1, cb, i);
      inside = false;
    });
    expect(seen).to.deep.equal([...Array(3000).keys()]);
  });

  it('compareAndWritev writes only when the medium matches', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 4 });
    const cmp = new Uint8Array(512);
    cmp[100] = 1;
    const out: IoStatus[] = [];
    ram.compareAndWritev([cmp], [new Uint8Array(512).fill(7)], 1, 1, record, out);
    expect(await call((cb) => ram.flush(0, 1, cb, null))).to.equal(IoStatus.SUCCESS);
    expect(out).to.deep.equal([IoStatus.MISCOMPARE]);
    expect(ram.data[512]).to.equal(0);
    ram.compareAndWritev([new Uint8Array(512)], [new Uint8Array(512).fill(7)], 1, 1, record, out);
    expect(await call((cb) => ram.comparev([new Uint8Array(512).fill(7)], 1, 1, cb, null))).to.equal(
      IoStatus.SUCCESS,
    );
    expect(out).to.deep.equal([IoStatus.MISCOMPARE, IoStatus.SUCCESS]);
    expect(ram.counts.compareAndWrite).to.equal(1);
  });

  it('fails out-of-range, short-buffer and read-only I/O with FAILED, later', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 4 });
    expect(await call((cb) => ram.readv([new Uint8Array(512)], 4, 1, cb, null))).to.equal(IoStatus.FAILED);
    expect(await call((cb) => ram.writev([new Uint8Array(100)], 0, 1, cb, null))).to.equal(IoStatus.FAILED);
    const ro = new RamBackend({ name: 'ro', blockSize: 512, numBlocks: 4, readOnly: true });
    expect(await call((cb) => ro.writev([new Uint8Array(512)], 0, 1, cb, null))).to.equal(IoStatus.FAILED);
    expect(await call((cb) => ro.unmap(0, 1, cb, null))).to.equal(IoStatus.FAILED);
  });

  it('seekData/seekHole follow writes and unmaps', async () => {
    const ram = new RamBackend({ name: 'r', blockSize: 512, numBlocks: 8 });
    const seek = (f: (cb: (s: IoStatus, ctx: null, at: number) => void) => void) =>
      new Promise<number>((r) => f((_s, _c, at) => r(at)));
    await call((cb) => ram.writev([new Uint8Array(1024)], 3, 2, cb, null));
    expect(await seek((cb) => ram.seekData(0, cb, null))).to.equal(3);
    expect(await seek((cb) => ram.seekHole(3, cb, null))).to.equal(5);
    await call((cb) => ram.unmap(3, 1, cb, null));
    expect(await seek((cb) => ram.seekData(0, cb, null))).to.equal(4);
  });

  it('rejects a bad geometry with a coded error', () => {
    expect(() => new RamBackend({ name: 'r', blockSize: 1000, numBlocks: 8 }))
      .to.throw(BlockError)
      .with.property('code', 'EINVAL');
    expect(() => new RamBackend({ name: 'r', blockSize: 512, numBlocks: 0 }))
      .to.throw(BlockError)
      .with.property('code', 'EINVAL');
  });
});
