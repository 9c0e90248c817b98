import { BlockError, type Iobuf, IobufEntry, IobufPool, iobufOptions } from '@storkit/block';
import { expect } from 'chai';
import fc from 'fast-check';

const small = iobufOptions({
  small_pool_count: 64,
  large_pool_count: 8,
  small_bufsize: 4096,
  large_bufsize: 65536,
});

/** An entry that records the buffers it was handed. */
function entry(got: Iobuf[]): IobufEntry {
  return new IobufEntry((b) => got.push(b));
}

describe('block: iobuf pool', () => {
  it("takes SPDK's defaults and refuses sizes below its limits, with a coded error", () => {
    expect(iobufOptions()).to.deep.equal({
      small_pool_count: 8192,
      large_pool_count: 1024,
      small_bufsize: 8192,
      large_bufsize: 135168,
    });
    for (const bad of [
      { small_pool_count: 63 },
      { large_pool_count: 7 },
      { small_bufsize: 1000 },
      { large_bufsize: 4096 },
    ]) {
      expect(() => iobufOptions(bad))
        .to.throw(BlockError)
        .with.property('code', 'EINVAL');
    }
  });

  it('serves small and large buffers by length, makes memory only on first use, never beyond its counts', () => {
    const pool = new IobufPool(small);
    const ch = pool.channel('t');
    expect(pool.bytesMade).to.equal(0);
    const a = ch.get(4096, entry([]));
    const b = ch.get(4097, entry([]));
    expect(a?.large).to.equal(false);
    expect(a?.bytes.length).to.equal(4096);
    expect(b?.large).to.equal(true);
    expect(b?.bytes.length).to.equal(65536);
    expect(pool.bytesMade).to.equal(4096 + 65536);
    expect(() => ch.get(65537, entry([])))
      .to.throw(BlockError)
      .with.property('code', 'EINVAL');
    expect(ch.fits(65536)).to.equal(true);
    expect(ch.fits(65537)).to.equal(false);
    // A buffer given back is handed out again: no new memory.
    ch.put(b as Iobuf);
    expect(ch.get(10_000, entry([]))).to.equal(b);
    expect(pool.bytesMade).to.equal(4096 + 65536);
    expect(pool.bytesMax).to.equal(64 * 4096 + 8 * 65536);
  });

  it('a channel reserves its cache at creation, serves from it first, and counts as iobuf_get_stats', () => {
    const pool = new IobufPool(small);
    const ch = pool.channel('nvmf_TCP', 2, 3);
    expect(pool.bytesMade).to.equal(2 * 4096 + 3 * 65536);
    const got = [ch.get(100, entry([])), ch.get(100, entry([])), ch.get(100, entry([]))];
    expect(got.every((x) => x !== null)).to.equal(true);
    expect(pool.stats()).to.deep.equal([
      {
        module: 'nvmf_TCP',
        small_pool: { cache: 2, main: 1, retry: 0 },
        large_pool: { cache: 0, main: 0, retry: 0 },
      },
    ]);
    // Back into the cache up to its size, the rest to the pool.
    for (const x of got) ch.put(x as Iobuf);
    ch.close();
    const other = pool.channel('other');
    for (let i = 0; i < 64; i++) expect(other.get(1, entry([]))).to.not.equal(null);
    expect(other.get(1, entry([]))).to.equal(null);
  });

  it('when empty, waiters are served oldest first by the buffers put back, across channels of the pool', () => {
    const pool = new IobufPool(small);
    const a = pool.channel('a');
    const b = pool.channel('b');
    const held: Iobuf[] = [];
    for (let i = 0; i < 8; i++) held.push(a.get(60_000, entry([])) as Iobuf);
    const order: string[] = [];
    const wait = (name: string) => new IobufEntry(() => order.push(name));
    expect(a.get(60_000, wait('a1'))).to.equal(null);
    expect(b.get(60_000, wait('b1'))).to.equal(null);
    expect(a.get(60_000, wait('a2'))).to.equal(null);
    // A get behind waiters waits too, even if a buffer came back meanwhile.
    expect(a.waiting).to.equal(2);
    a.put(held.pop() as Iobuf); // own waiter first
    a.put(held.pop() as Iobuf);
    expect(order).to.deep.equal(['a1', 'a2']);
    a.put(held.pop() as Iobuf); // none left in a: through the pool to b's waiter
    expect(order).to.deep.equal(['a1', 'a2', 'b1']);
    expect(pool.stats().map((s) => s.large_pool.retry)).to.deep.equal([2, 1]);
  });

  it('a capped channel waits at its limit; an aborted waiter is never called', () => {
    const pool = new IobufPool(small);
    const ch = pool.channel('capped', 0, 0, 2);
    const x = ch.get(10, entry([])) as Iobuf;
    ch.get(10, entry([]));
    const got: Iobuf[] = [];
    const e1 = entry(got);
    const e2 = entry(got);
    expect(ch.get(10, e1)).to.equal(null);
    expect(ch.get(10, e2)).to.equal(null);
    ch.abort(e1);
    expect(e1.queued).to.equal(false);
    ch.put(x);
    expect(got).to.deep.equal([x]);
    expect(ch.inUse).to.equal(2);
  });

  it('never hands out a buffer twice, never exceeds its counts, and serves every waiter (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 65536 }), fc.boolean()), {
          maxLength: 300,
        }),
        (ops) => {
          const pool = new IobufPool(small);
          const chans = [pool.channel('c0', 4, 2), pool.channel('c1', 0, 1, 10), pool.channel('c2')];
          const held: [number, Iobuf][] = [];
          const owned = new Set<Iobuf>();
          let waiting = 0;
          const take = (c: number, b: Iobuf): void => {
            expect(owned.has(b)).to.equal(false);
            owned.add(b);
            held.push([c, b]);
          };
          for (const [c, len, put] of ops) {
            if (put && held.length > 0) {
              const [hc, b] = held.splice(len % held.length, 1)[0];
              owned.delete(b);
              chans[hc].put(b);
            } else {
              const e = new IobufEntry((b) => {
                waiting--;
                take(c, b);
              });
              const b = chans[c].get(len, e);
              if (b === null) waiting++;
              else take(c, b);
            }
            expect(pool.small.made).to.be.at.most(pool.small.count);
            expect(pool.large.made).to.be.at.most(pool.large.count);
          }
          // Giving everything back serves every waiter.
          while (held.length > 0) {
            const [hc, b] = held.shift() as [number, Iobuf];
            owned.delete(b);
            chans[hc].put(b);
          }
          expect(waiting).to.equal(0);
        },
      ),
    );
  });
});
