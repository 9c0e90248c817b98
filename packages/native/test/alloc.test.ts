import { expect } from 'chai';
import fc from 'fast-check';

import { type DmaAddr, DmaAllocator, DmaPool, DmaRegion, memoryStats, NativeError } from '../src/index.js';

describe('native: DMA pool', () => {
  it('hands out aligned, distinct elements until empty, then -1', () => {
    using pool = DmaPool.create(16, 100, { align: 128, hugepages: 'never' });
    expect(pool.stride).to.equal(128);
    const got = Array.from({ length: 16 }, () => pool.get());
    expect(new Set(got).size).to.equal(16);
    for (const o of got) {
      expect(o % 128).to.equal(0);
      expect(o + 100).to.be.at.most(pool.region.size);
    }
    expect(pool.get()).to.equal(-1);
    expect(pool.available).to.equal(0);
  });

  it('rejects a double put and foreign offsets with EINVAL', () => {
    using pool = DmaPool.create(4, 64, { hugepages: 'never' });
    const a = pool.get();
    pool.put(a);
    for (const bad of [a, 1, 64 * 4, -64, 0.5]) {
      expect(() => pool.put(bad), String(bad))
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
    }
    expect(() => DmaPool.create(4, 64, { align: 48 }))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });

  it('behaves like a set of free elements (property)', () => {
    using pool = DmaPool.create(32, 48, { hugepages: 'never' });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 200 }), (ops) => {
        const held: number[] = [];
        for (const [take, pick] of ops) {
          if (take) {
            const o = pool.get();
            if (held.length === 32) expect(o).to.equal(-1);
            else {
              expect(held).to.not.include(o);
              expect(o % 64).to.equal(0);
              held.push(o);
            }
          } else if (held.length) {
            pool.put(held.splice(pick % held.length, 1)[0]);
          }
          expect(pool.available).to.equal(32 - held.length);
        }
        for (const o of held) pool.put(o);
        expect(pool.available).to.equal(32);
      }),
      { numRuns: 200 },
    );
  });

  it('element offsets reach the same bytes from another view of the region', () => {
    using pool = DmaPool.create(8, 4096, { hugepages: 'never' });
    const o = pool.get();
    using other = DmaRegion.attach(pool.region.handle);
    other.bytes[o + 10] = 99;
    expect(pool.region.bytes[o + 10]).to.equal(99);
  });
});

describe('native: DMA allocator', () => {
  it('returns aligned buffers, (handle, offset) addressable, with IO addresses', () => {
    using a = new DmaAllocator({ regionSize: 64 * 1024, hugepages: 'never' });
    const x = a.malloc(100);
    const y = a.malloc(5000, 4096);
    expect(a.offsetOf(y) % 4096).to.equal(0);
    expect(a.handleOf(x)).to.equal(a.handleOf(y));
    a.bytes(y, 4).set([1, 2, 3, 4]);
    using view = DmaRegion.attach(a.handleOf(y));
    expect([...view.bytes.subarray(a.offsetOf(y), a.offsetOf(y) + 4)]).to.deep.equal([1, 2, 3, 4]);
    if (process.getuid?.() === 0) {
      expect(a.ioAddress(y)).to.equal(view.ioAddress(a.offsetOf(y)));
    }
    a.free(x);
    a.free(y);
    expect(a.isIdle()).to.equal(true);
  });

  it('grows by regions, gives large requests their own region, and frees them', () => {
    const before = memoryStats();
    const a = new DmaAllocator({ regionSize: 16 * 1024, hugepages: 'never' });
    const small = Array.from({ length: 5 }, () => a.malloc(8 * 1024));
    expect(a.regions).to.equal(3);
    const big = a.malloc(100 * 1024);
    expect(a.regions).to.equal(4);
    expect(a.region(big).size).to.be.at.least(100 * 1024);
    a.free(big);
    expect(a.regions).to.equal(3);
    for (const s of small) a.free(s);
    expect(a.isIdle()).to.equal(true);
    a.close();
    const after = memoryStats();
    expect(after.created - before.created).to.equal(4);
    expect(after.freed - before.freed).to.equal(4);
  });

  it('rejects bad sizes, alignments and frees with EINVAL', () => {
    using a = new DmaAllocator({ regionSize: 16 * 1024, hugepages: 'never' });
    for (const [size, align] of [
      [0, 64],
      [-1, 64],
      [1.5, 64],
      [10, 48],
      [10, 32 * 1024],
    ]) {
      expect(() => a.malloc(size, align), `${size}/${align}`)
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
    }
    const x = a.malloc(256);
    a.free(x);
    for (const bad of [x, (x + 64) as DmaAddr, (x + 1) as DmaAddr, (2 ** 40) as DmaAddr]) {
      expect(() => a.free(bad))
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
    }
  });

  it('never overlaps, aligns, keeps contents, and coalesces back to whole regions (property)', () => {
    const op = fc.oneof(
      fc.record({
        // Mostly small blocks, so every buddy level (down to minBlock) splits and merges.
        alloc: fc.oneof(
          fc.integer({ min: 1, max: 64 }),
          fc.integer({ min: 1, max: 2048 }),
          fc.integer({ min: 1, max: 40_000 }),
        ),
        alignShift: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 14 })),
      }),
      fc.record({ free: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        using a = new DmaAllocator({ regionSize: 32 * 1024, minBlock: 16, hugepages: 'never' });
        type Live = { addr: DmaAddr; size: number; tag: number };
        const live: Live[] = [];
        let tag = 0;
        for (const o of ops) {
          if ('alloc' in o) {
            const align = 2 ** o.alignShift;
            const addr = a.malloc(o.alloc, align);
            const off = a.offsetOf(addr);
            expect(off % align).to.equal(0);
            expect(off + o.alloc).to.be.at.most(a.region(addr).size);
            for (const l of live) {
              if (a.handleOf(l.addr) !== a.handleOf(addr)) continue;
              const lo = a.offsetOf(l.addr);
              expect(off + o.alloc <= lo || lo + l.size <= off, 'overlap').to.equal(true);
            }
            tag = (tag + 1) & 0xff;
            const b = a.bytes(addr, o.alloc);
            b[0] = tag;
            b[o.alloc - 1] = tag;
            live.push({ addr, size: o.alloc, tag });
          } else if (live.length) {
            const [l] = live.splice(o.free % live.length, 1);
            a.free(l.addr);
          }
        }
        for (const l of live) {
          const b = a.bytes(l.addr, l.size);
          expect([b[0], b[l.size - 1]]).to.deep.equal([l.tag, l.tag]);
          a.free(l.addr);
        }
        expect(a.bytesInUse).to.equal(0);
        expect(a.isIdle()).to.equal(true);
      }),
      { numRuns: 60 },
    );
  });
});
