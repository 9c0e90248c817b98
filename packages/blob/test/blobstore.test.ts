// The blobstore on the deterministic harness over malloc bdevs: init lays the store out as SPDK
// does, blobs live through create/write/resize/xattr/close, unload then a clean load and a crash
// then a dirty load give the same blobs back; snapshots, clones, inflate, decouple and delete; the
// image SPDK made loads, and its volumes read back SPDK's bytes.

import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import { decodeSuper, PAGE_SIZE } from '../src/format/index.js';
import { type Blob, Blobstore, type BlobView, blobReadv, blobWritev, pageToBlobId } from '../src/index.js';
import { image, manifest, pattern } from '../src/testing.js';
import { type Disk, disk, harness } from './helpers.js';

const MiB = 1024 * 1024;
const enc = new TextEncoder();

function init(h: TestHarness, d: Disk, clusterSize = 64 * 1024, bstype = ''): Blobstore {
  return h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize, bstype }, cb as never));
}
function load(h: TestHarness, d: Disk): Blobstore {
  return h.run<Blobstore>((cb) => Blobstore.load(d.desc, {}, cb as never));
}
function open(h: TestHarness, bs: Blobstore, id: number): Blob {
  return h.run<Blob>((cb) => bs.openBlob(id, cb as never));
}
function io(
  h: TestHarness,
  bs: Blobstore,
  view: BlobView,
  write: boolean,
  buf: Uint8Array,
  offset: number,
): void {
  const ch = bs.view.getChannel();
  h.run((cb) => {
    const f = write ? blobWritev : blobReadv;
    f(
      view,
      ch,
      [buf],
      offset,
      buf.length / bs.view.blockSize,
      (st) => cb(st === 0 ? null : new Error(`status ${st}`)),
      null,
    );
  });
  ch.put();
}
function read(h: TestHarness, bs: Blobstore, view: BlobView, offset: number, blocks: number): Uint8Array {
  const buf = new Uint8Array(blocks * bs.view.blockSize);
  io(h, bs, view, false, buf, offset);
  return buf;
}
function fill(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}
const closeAll = (h: TestHarness, bs: Blobstore) => {
  for (const b of [...bs.open.values()])
    while (b.openRef > 0 && bs.open.has(b.id)) h.run((cb) => bs.closeBlob(b, cb));
};

describe('blobstore on the harness', function () {
  this.timeout(60000);

  it('lays out a new blobstore as SPDK v24.01 did on the same device', () => {
    const h = harness();
    const d = disk(h, { size: 16 * MiB });
    const bs = init(h, d, 64 * 1024, 'LVOLSTORE');
    const ours = decodeSuper(d.bytes.subarray(0, PAGE_SIZE), d.bytes.length, 4096);
    const spdk = decodeSuper(image('lvs').subarray(0, PAGE_SIZE), 16 * MiB, 4096);
    for (const k of [
      'version',
      'clusterSize',
      'usedPageMaskStart',
      'usedPageMaskLen',
      'usedClusterMaskStart',
      'usedClusterMaskLen',
      'usedBlobidMaskStart',
      'usedBlobidMaskLen',
      'mdStart',
      'mdLen',
      'bstype',
      'size',
      'ioUnitSize',
    ] as const)
      expect(ours[k], k).to.equal(spdk[k]);
    expect(ours.clean).to.equal(false);
    expect(bs.totalDataClusters).to.equal(manifest().lvstores[0].total_data_clusters);
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('blobs survive unload and a clean load: sizes, xattrs, data, thin holes', () => {
    const h = harness();
    const d = disk(h, { size: 16 * MiB });
    let bs = init(h, d);
    const thick = h.run<number>((cb) =>
      bs.createBlob({ numClusters: 3, xattrs: [{ name: 'name', value: enc.encode('thick') }] }, cb as never),
    );
    const thin = h.run<number>((cb) => bs.createBlob({ numClusters: 40, thin: true }, cb as never));
    expect(thick).to.equal(pageToBlobId(0));
    let a = open(h, bs, thick);
    let b = open(h, bs, thin);
    const data = fill(64 * 1024, 1);
    io(h, bs, bs.viewOf(a), true, data, 16);
    io(h, bs, bs.viewOf(b), true, data.subarray(0, 8192), 16 * 33 + 3);
    expect(b.allocated).to.equal(1);
    a.setXattr('color', enc.encode('blue'));
    h.run((cb) => bs.resizeBlob(b, 700, cb));
    h.run((cb) => bs.syncMd(a, cb));
    const free = bs.freeClusters;
    closeAll(h, bs);
    h.run((cb) => bs.unload(cb));
    expect(decodeSuper(d.bytes.subarray(0, PAGE_SIZE), d.bytes.length, 4096).clean).to.equal(true);

    bs = load(h, d);
    expect(bs.freeClusters).to.equal(free);
    expect(bs.problems).to.deep.equal([]);
    a = open(h, bs, thick);
    b = open(h, bs, thin);
    expect(a.numClusters).to.equal(3);
    expect(b.numClusters).to.equal(700);
    expect(b.extentPages.length).to.equal(2);
    expect(new TextDecoder().decode(a.getXattr('color'))).to.equal('blue');
    expect(Buffer.from(read(h, bs, bs.viewOf(a), 16, 16)).equals(Buffer.from(data))).to.equal(true);
    expect(
      Buffer.from(read(h, bs, bs.viewOf(b), 16 * 33 + 3, 2)).equals(Buffer.from(data.subarray(0, 8192))),
    ).to.equal(true);
    expect(read(h, bs, bs.viewOf(b), 16 * 600, 4).every((x) => x === 0)).to.equal(true);
    closeAll(h, bs);
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('a crash (no unload) loads dirty: the masks are rebuilt from the metadata, nothing leaks', () => {
    const h = harness();
    const d = disk(h, { size: 16 * MiB });
    let bs = init(h, d);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(h.run<number>((cb) => bs.createBlob({ numClusters: 2 + i, thin: i % 2 === 1 }, cb as never)));
    const b = open(h, bs, ids[1]);
    io(h, bs, bs.viewOf(b), true, fill(8192, 3), 16 * 2);
    h.run((cb) => bs.deleteBlob(ids[4], cb));
    const free = bs.freeClusters;
    const blobs = bs.blobIds();
    // Crash: walk away without unloading (the super block says dirty).
    expect(decodeSuper(d.bytes.subarray(0, PAGE_SIZE), d.bytes.length, 4096).clean).to.equal(false);
    h.run((cb) => {
      closeAll(h, bs);
      bs.abandon(() => cb(null));
    });
    bs = load(h, d);
    expect(bs.blobIds()).to.deep.equal(blobs);
    expect(bs.freeClusters).to.equal(free);
    const b2 = open(h, bs, ids[1]);
    expect(Buffer.from(read(h, bs, bs.viewOf(b2), 16 * 2, 2)).equals(Buffer.from(fill(8192, 3)))).to.equal(
      true,
    );
    closeAll(h, bs);
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('snapshot, clone, writes on each, inflate, decouple, delete rules', () => {
    const h = harness();
    const d = disk(h, { size: 16 * MiB });
    const bs = init(h, d);
    const id = h.run<number>((cb) => bs.createBlob({ numClusters: 8, thin: true }, cb as never));
    const v = open(h, bs, id);
    const A = fill(4096, 1);
    const B = fill(4096, 2);
    const C = fill(4096, 3);
    io(h, bs, bs.viewOf(v), true, A, 0);
    const snap = h.run<number>((cb) => bs.createSnapshot(id, [], cb as never));
    expect(v.parentId).to.equal(snap);
    expect(v.allocated).to.equal(0);
    io(h, bs, bs.viewOf(v), true, B, 1);
    const s = bs.open.get(snap) as Blob;
    expect(s.dataRo).to.equal(true);
    expect(Buffer.from(read(h, bs, bs.viewOf(v), 0, 1)).equals(Buffer.from(A))).to.equal(true);
    expect(Buffer.from(read(h, bs, bs.viewOf(v), 1, 1)).equals(Buffer.from(B))).to.equal(true);
    expect(read(h, bs, bs.viewOf(s), 1, 1).every((x) => x === 0)).to.equal(true);
    const clone = h.run<number>((cb) => bs.createClone(snap, [], cb as never));
    const c = open(h, bs, clone);
    io(h, bs, bs.viewOf(c), true, C, 16 * 2);
    expect(Buffer.from(read(h, bs, bs.viewOf(c), 0, 1)).equals(Buffer.from(A))).to.equal(true);
    expect(bs.clonesOf(snap).sort()).to.deep.equal([id, clone].sort());
    expect(h.runErr((cb) => bs.deleteBlob(snap, cb)))
      .to.include({ code: 'EBUSY' })
      .and.have.property('message')
      .that.matches(/2 clones/);
    h.run((cb) => bs.decoupleParent(clone, cb));
    expect(c.parentId).to.equal(-1);
    expect(Buffer.from(read(h, bs, bs.viewOf(c), 0, 1)).equals(Buffer.from(A))).to.equal(true);
    expect(bs.clonesOf(snap)).to.deep.equal([id]);
    // One clone left: deleting the snapshot merges it into the clone.
    h.run((cb) => bs.closeBlob(c, cb));
    h.run((cb) => bs.deleteBlob(snap, cb));
    expect(v.parentId).to.equal(-1);
    expect(Buffer.from(read(h, bs, bs.viewOf(v), 0, 1)).equals(Buffer.from(A))).to.equal(true);
    expect(Buffer.from(read(h, bs, bs.viewOf(v), 1, 1)).equals(Buffer.from(B))).to.equal(true);
    h.run((cb) => bs.inflateBlob(id, cb));
    expect(v.thin).to.equal(false);
    expect(v.allocated).to.equal(8);
    closeAll(h, bs);
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('loads the lvstore SPDK made, and its blobs read back the bytes SPDK wrote', () => {
    const h = harness();
    const d = disk(h, { image: image('lvs') });
    const bs = load(h, d);
    expect(bs.problems).to.deep.equal([]);
    expect(bs.bstype).to.equal('LVOLSTORE');
    const m = manifest();
    expect(bs.freeClusters).to.equal(m.lvstores[0].free_clusters);
    const byName = new Map<string, Blob>();
    for (const id of bs.blobIds()) {
      if (id === bs.superBlob) continue;
      const b = open(h, bs, id);
      const n = b.getXattr('name') as Uint8Array;
      byName.set(new TextDecoder().decode(n.subarray(0, n.indexOf(0))), b);
    }
    // Expected contents from the writes SPDK's spdk_dd made.
    const bsz = 4096;
    const expectRange = (name: string, seek: number, bytes: Uint8Array) => {
      const b = byName.get(name) as Blob;
      const got = read(h, bs, bs.viewOf(b), seek, bytes.length / bsz);
      expect(Buffer.from(got).equals(Buffer.from(bytes)), `${name} at ${seek}`).to.equal(true);
    };
    expectRange('thick1', 0, pattern('p1'));
    expectRange('snap1', 100, pattern('p2'));
    expectRange('thin1', 100, pattern('p2'));
    expectRange('thin1', 300, pattern('p1').subarray(0, 2 * bsz));
    const clone = new Uint8Array(pattern('p2'));
    clone.set(pattern('p3'), bsz);
    expectRange('clone1', 100, clone);
    expectRange('big1', 0, pattern('p4'));
    expectRange('big1', 24560, pattern('p4'));
    expect(read(h, bs, bs.viewOf(byName.get('big1') as Blob), 12000, 4).every((x) => x === 0)).to.equal(true);
    closeAll(h, bs);
    h.run((cb) => bs.unload(cb));
    d.close();
  });
});
