// Clones of an external snapshot (SPDK's esnap clones): a thin blob whose unallocated clusters read
// from another bdev, stored as SPDK stores it (the EXTERNAL_SNAPSHOT invalid flag and the EXTSNAP
// internal xattr holding the external device's id), copy on write from that bdev, on any reactor,
// and found again by clean and dirty loads.

import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import { InvalidFlag, XattrName } from '../src/format/index.js';
import { type Blob, Blobstore, blobReadv, blobUnmap, blobWritev, blobWriteZeroes } from '../src/index.js';
import { disk, harness } from './helpers.js';

const CLUSTER = 64 * 1024;
const EXT_BYTES = 16 * CLUSTER;

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  const v = new DataView(b.buffer);
  for (let i = 0; i < n; i += 4) v.setUint32(i, (Math.imul(i + 7, 2654435761) >>> 0) | 1, true);
  return b;
}

function read(h: TestHarness, bs: Blobstore, b: Blob, off: number, n: number, t = 0): Uint8Array {
  h.setThread(t);
  const ch = bs.view.getChannel();
  const buf = new Uint8Array(n * 4096);
  h.run(
    (cb) =>
      blobReadv(bs.viewOf(b), ch, [buf], off, n, (st) => cb(st === 0 ? null : new Error(`read ${st}`)), null),
    t,
  );
  h.setThread(t);
  ch.put();
  return buf;
}

function io(
  h: TestHarness,
  bs: Blobstore,
  t: number,
  f: (ch: ReturnType<Blobstore['view']['getChannel']>, cb: (st: number) => void) => void,
): void {
  h.setThread(t);
  const ch = bs.view.getChannel();
  h.run((cb) => f(ch, (st) => cb(st === 0 ? null : new Error(`I/O ${st}`))), t);
  h.setThread(t);
  ch.put();
}

describe('blobstore: clones of an external snapshot (esnap)', function () {
  this.timeout(60_000);

  it('reads the external bdev, copies on write from it on any reactor, keeps SPDK’s on-disk form across loads', () => {
    const h = harness(2);
    const ext = disk(h, { image: pattern(EXT_BYTES), name: 'Ext0' });
    const want = pattern(EXT_BYTES);
    const d = disk(h, { size: 8 * 1024 * 1024 });
    const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: CLUSTER }, cb as never));
    // SPDK's lvols store the bdev's UUID as NUL-terminated text.
    const esnapId = new TextEncoder().encode(`${ext.desc.bdev.uuid}\0`);
    const id = h.run<number>((cb) => bs.createBlob({ numClusters: 16, esnapId }, cb as never));
    let blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
    expect(blob.invalidFlags & InvalidFlag.EXTERNAL_SNAPSHOT).to.equal(InvalidFlag.EXTERNAL_SNAPSHOT);
    expect(blob.getXattr(XattrName.EXTERNAL_SNAPSHOT_ID, true)).to.deep.equal(esnapId);
    expect(blob.thin).to.equal(true);
    expect(blob.esnapBdev).to.equal('Ext0');

    // Nothing allocated: every block is the external bdev's, read on either reactor.
    expect(Buffer.from(read(h, bs, blob, 0, 256, 1)).equals(Buffer.from(want))).to.equal(true);
    expect(blob.allocated).to.equal(0);

    // A write to block 5 (cluster 0) on reactor 1: the cluster is copied from the external bdev.
    const five = new Uint8Array(4096).fill(0xa5);
    io(h, bs, 1, (ch, cb) => blobWritev(bs.viewOf(blob), ch, [five], 5, 1, cb, null));
    // Write zeroes to block 40 (cluster 2): allocates too (the external bdev is not zeroes there).
    io(h, bs, 0, (ch, cb) => blobWriteZeroes(bs.viewOf(blob), ch, 40, 1, cb, null));
    // Unmap of an unallocated cluster changes nothing.
    io(h, bs, 0, (ch, cb) => blobUnmap(bs.viewOf(blob), ch, 100, 16, cb, null));
    expect(blob.allocated).to.equal(2);
    want.set(five, 5 * 4096);
    want.fill(0, 40 * 4096, 41 * 4096);
    expect(Buffer.from(read(h, bs, blob, 0, 256, 0)).equals(Buffer.from(want))).to.equal(true);

    // Grown past the external bdev: the new clusters read zeroes.
    h.run((cb) => bs.resizeBlob(blob, 20, cb));
    h.run((cb) => bs.syncMd(blob, cb));
    expect(read(h, bs, blob, 256, 64, 1).every((x) => x === 0)).to.equal(true);

    // Not implemented for these clones: refused with ENOTSUP, nothing changed.
    expect(() => h.run((cb) => bs.createSnapshot(id, [], cb as never))).to.throw(/external snapshot/);
    expect(() => h.run((cb) => bs.inflateBlob(id, cb))).to.throw(/external snapshot/);

    // A dirty load of a copy (masks rebuilt from the pages) and a clean reload find the same clone.
    const copy = disk(h, { image: d.bytes.slice(), name: 'Copy0' });
    const dirty = h.run<Blobstore>((cb) => Blobstore.load(copy.desc, { forceRecover: true }, cb as never));
    expect(dirty.problems).to.deep.equal([]);
    const db = h.run<Blob>((cb) => dirty.openBlob(id, cb as never));
    expect(db.allocated).to.equal(2);
    expect(
      Buffer.from(read(h, dirty, db, 0, 256, 1)).equals(Buffer.from(want.subarray(0, 256 * 4096))),
    ).to.equal(true);
    h.run((cb) => dirty.closeBlob(db, cb));
    h.run((cb) => dirty.unload(cb));
    copy.close();

    h.run((cb) => bs.closeBlob(blob, cb));
    h.run((cb) => bs.unload(cb));
    const again = h.run<Blobstore>((cb) => Blobstore.load(d.desc, {}, cb as never));
    blob = h.run<Blob>((cb) => again.openBlob(id, cb as never));
    expect(blob.esnapBdev).to.equal('Ext0');
    expect(Buffer.from(read(h, again, blob, 0, 256, 0)).equals(Buffer.from(want))).to.equal(true);
    h.run((cb) => again.closeBlob(blob, cb));

    // Without its external bdev the clone does not open (ENODEV); the rest of the store loads.
    h.run((cb) => again.unload(cb));
    const other = h.run<Blobstore>((cb) => Blobstore.load(d.desc, {}, cb as never));
    other.esnapResolver = () => null;
    expect(() => h.run((cb) => other.openBlob(id, cb as never))).to.throw(/external snapshot/);
    expect(other.missingEsnaps.get(id)).to.deep.equal(esnapId);
    // Once it can be found, the clone opens.
    other.esnapResolver = () => 'Ext0';
    const late = h.run<Blob>((cb) => other.openBlob(id, cb as never));
    expect(other.missingEsnaps.has(id)).to.equal(false);
    h.run((cb) => other.closeBlob(late, cb));
    h.run((cb) => other.unload(cb));
    d.close();
    ext.close();
    h.close();
  });
});
