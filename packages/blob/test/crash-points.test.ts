// Crash at every point of a metadata operation, deterministically: while the operation runs on
// the harness, the disk is copied after every poll (every completed batch of writes is a possible
// crash point). Each copy must load (dirty), hold no blob that fails to open, leak no cluster (used
// clusters = metadata + what the blobs map, none mapped twice), and show the blob either as it was
// before the operation or as it is after.

import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';
import { decodeSuper, PAGE_SIZE } from '../src/format/index.js';
import { type Blob, Blobstore, blobReadv, blobWritev } from '../src/index.js';
import { type Disk, disk, harness } from './helpers.js';

const MiB = 1024 * 1024;

function fill(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed * 101) & 0xff;
  return b;
}

/** Run `op` on `bs`, copying the disk after every poll; returns the copies (and the final image). */
function crashPoints(h: TestHarness, d: Disk, op: (cb: (err: Error | null) => void) => void): Uint8Array[] {
  const copies: Uint8Array[] = [Buffer.from(d.bytes)];
  let done = false;
  let err: Error | null = null;
  h.setThread(0);
  op((e) => {
    done = true;
    err = e;
  });
  for (let i = 0; i < 1_000_000 && !done; i++) {
    h.pollOnce();
    h.advanceTime(10);
    const last = copies[copies.length - 1];
    if (!Buffer.from(d.bytes).equals(last as Buffer)) copies.push(Buffer.from(d.bytes));
  }
  expect(done, 'operation finished').to.equal(true);
  if (err) throw err;
  return copies;
}

/** Called with the loaded blobstore: throws if the blob is neither as before nor as after. */
type Check = (h: TestHarness, bs: Blobstore) => void;

function verify(h: TestHarness, images: Uint8Array[], check: Check): void {
  for (const [i, img] of images.entries()) {
    const d = disk(h, { image: img, name: `Crash${i}` });
    const bs = h.run<Blobstore>((cb) => Blobstore.load(d.desc, { forceRecover: true }, cb as never));
    try {
      expect(bs.problems, `image ${i}: blobs that fail to open`).to.deep.equal([]);
      const seen = new Set<number>();
      let mapped = 0;
      for (const id of bs.blobIds()) {
        const b = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
        for (let c = 0; c < b.numClusters; c++) {
          const x = b.clusters[c];
          if (x === 0) continue;
          expect(seen.has(x), `image ${i}: cluster ${x} mapped twice`).to.equal(false);
          seen.add(x);
          mapped++;
        }
      }
      expect(bs.usedClusters.count, `image ${i}: used clusters = metadata + mapped (no leak)`).to.equal(
        bs.mdClusters + mapped,
      );
      check(h, bs);
    } catch (e) {
      (e as Error).message = `crash point ${i} of ${images.length}: ${(e as Error).message}`;
      throw e;
    } finally {
      for (const b of [...bs.open.values()]) while (bs.open.has(b.id)) h.run((cb) => bs.closeBlob(b, cb));
      h.run((cb) => bs.unload(cb));
      d.close();
    }
  }
}

function readBlob(h: TestHarness, bs: Blobstore, id: number, offset: number, blocks: number): Uint8Array {
  const b = bs.open.get(id) ?? h.run<Blob>((cb) => bs.openBlob(id, cb as never));
  const ch = bs.view.getChannel();
  const buf = new Uint8Array(blocks * 4096);
  h.run((cb) =>
    blobReadv(
      bs.viewOf(b),
      ch,
      [buf],
      offset,
      blocks,
      (st) => cb(st === 0 ? null : new Error(`read ${st}`)),
      null,
    ),
  );
  ch.put();
  return buf;
}

function setup(h: TestHarness): { d: Disk; bs: Blobstore; id: number; blob: Blob } {
  const d = disk(h, { size: 8 * MiB });
  const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: 64 * 1024 }, cb as never));
  const id = h.run<number>((cb) => bs.createBlob({ numClusters: 6, thin: true }, cb as never));
  const blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
  const ch = bs.view.getChannel();
  h.run((cb) =>
    blobWritev(
      bs.viewOf(blob),
      ch,
      [fill(8192, 1)],
      0,
      2,
      (st) => cb(st === 0 ? null : new Error(`${st}`)),
      null,
    ),
  );
  ch.put();
  return { d, bs, id, blob };
}

function teardown(h: TestHarness, bs: Blobstore, d: Disk): void {
  for (const b of [...bs.open.values()]) while (bs.open.has(b.id)) h.run((cb) => bs.closeBlob(b, cb));
  h.run((cb) => bs.unload(cb));
  d.close();
}

describe('blobstore: a crash at every point of a metadata operation', function () {
  this.timeout(300000);

  it('snapshot: the blob keeps its data; the snapshot exists whole or not at all', () => {
    const h = harness();
    const { d, bs, id } = setup(h);
    const images = crashPoints(h, d, (cb) => bs.createSnapshot(id, [], (e) => cb(e)));
    expect(images.length).to.be.greaterThan(4);
    expect(
      decodeSuper(images[images.length - 1].subarray(0, PAGE_SIZE), images[0].length, 4096).clean,
    ).to.equal(false);
    teardown(h, bs, d);
    verify(h, images, (h2, bs2) => {
      expect(Buffer.from(readBlob(h2, bs2, id, 0, 2)).equals(Buffer.from(fill(8192, 1)))).to.equal(true);
      const ids = bs2.blobIds();
      expect(ids.length).to.be.oneOf([1, 2]);
      if (ids.length === 2) {
        const snap = ids.find((x) => x !== id) as number;
        const s = bs2.open.get(snap) ?? h2.run<Blob>((cb) => bs2.openBlob(snap, cb as never));
        expect(s.dataRo, 'a snapshot that survives is read-only').to.equal(true);
        expect((bs2.open.get(id) as Blob).parentId).to.equal(snap);
      }
    });
  });

  it('thin allocation, resize, xattr sync, clone and deletes', () => {
    const h = harness();
    const { d, bs, id, blob } = setup(h);
    const images: Uint8Array[] = [];
    const ch = bs.view.getChannel();
    images.push(
      ...crashPoints(h, d, (cb) =>
        blobWritev(
          bs.viewOf(blob),
          ch,
          [fill(4096, 2)],
          16 * 4 + 1,
          1,
          (st) => cb(st === 0 ? null : new Error(`${st}`)),
          null,
        ),
      ),
    );
    ch.put();
    images.push(...crashPoints(h, d, (cb) => bs.resizeBlob(blob, 40, cb)));
    blob.setXattr('k', new Uint8Array(3000).fill(7));
    blob.setXattr('l', new Uint8Array(3000).fill(8));
    images.push(...crashPoints(h, d, (cb) => bs.syncMd(blob, cb)));
    images.push(...crashPoints(h, d, (cb) => bs.resizeBlob(blob, 3, cb)));
    let snap = 0;
    h.run<number>((cb) =>
      bs.createSnapshot(id, [], (e, s) => {
        snap = s;
        cb(e);
      }),
    );
    let clone = 0;
    images.push(
      ...crashPoints(h, d, (cb) =>
        bs.createClone(snap, [], (e, c) => {
          clone = c;
          cb(e);
        }),
      ),
    );
    images.push(...crashPoints(h, d, (cb) => bs.deleteBlob(clone, cb)));
    // The snapshot has one clone (the blob): deleting it merges it into the blob.
    images.push(...crashPoints(h, d, (cb) => bs.deleteBlob(snap, cb)));
    teardown(h, bs, d);
    verify(h, images, (h2, bs2) => {
      const data = readBlob(h2, bs2, id, 0, 2);
      expect(Buffer.from(data).equals(Buffer.from(fill(8192, 1))), 'first write intact').to.equal(true);
    });
  });
});
