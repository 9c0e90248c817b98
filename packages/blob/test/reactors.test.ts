// Blob I/O from several reactors of the harness: thin allocations asked of the metadata thread by
// every reactor at once land one cluster per blob cluster; a write acknowledged on one reactor is
// read back on another at once; a resize (a freeze on every reactor) holds I/O and lets it go.
import { expect } from 'chai';
import { type Blob, Blobstore, blobReadv, blobWritev } from '../src/index.js';
import { disk, harness } from './helpers.js';

describe('blobstore: I/O on several reactors', function () {
  this.timeout(60000);

  it('racing first writes from three reactors allocate each cluster once and keep every write', () => {
    const h = harness(3);
    const d = disk(h, { size: 16 * 1024 * 1024 });
    const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: 64 * 1024 }, cb as never));
    const id = h.run<number>((cb) => bs.createBlob({ numClusters: 32, thin: true }, cb as never));
    const blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
    const view = bs.viewOf(blob);
    const chans = [0, 1, 2].map((t) => {
      h.setThread(t);
      return bs.view.getChannel();
    });
    // Every reactor writes a different 4 KiB block of each of clusters 0..7 (16 blocks per cluster).
    let left = 0;
    let failed = 0;
    for (let t = 0; t < 3; t++) {
      h.setThread(t);
      for (let c = 0; c < 8; c++) {
        left++;
        const buf = new Uint8Array(4096).fill(t * 16 + c + 1);
        blobWritev(
          view,
          chans[t],
          [buf],
          c * 16 + t,
          1,
          (st) => {
            if (st !== 0) failed++;
            left--;
          },
          null,
        );
      }
    }
    h.until(() => left === 0, 'writes');
    expect(failed).to.equal(0);
    expect(blob.allocated).to.equal(8);
    expect(bs.freeClusters).to.equal(bs.totalDataClusters - 8);
    // Read each block back on a reactor that did not write it.
    for (let t = 0; t < 3; t++) {
      for (let c = 0; c < 8; c++) {
        const r = (t + 1) % 3;
        const buf = new Uint8Array(4096);
        h.run(
          (cb) =>
            blobReadv(
              view,
              chans[r],
              [buf],
              c * 16 + t,
              1,
              (st) => cb(st === 0 ? null : new Error(`${st}`)),
              null,
            ),
          r,
        );
        expect(
          buf.every((x) => x === t * 16 + c + 1),
          `cluster ${c} block ${t}`,
        ).to.equal(true);
      }
    }
    chans.forEach((ch, t) => {
      h.setThread(t);
      ch.put();
    });
    h.run((cb) => bs.closeBlob(blob, cb));
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('a write acknowledged on reactor 1 reads back on reactor 2 in the same poll', () => {
    const h = harness(3);
    const d = disk(h, { size: 16 * 1024 * 1024 });
    const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: 64 * 1024 }, cb as never));
    const id = h.run<number>((cb) => bs.createBlob({ numClusters: 4, thin: true }, cb as never));
    const blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
    const view = bs.viewOf(blob);
    h.setThread(1);
    const c1 = bs.view.getChannel();
    h.setThread(2);
    const c2 = bs.view.getChannel();
    const out = new Uint8Array(4096);
    let read = -1;
    h.setThread(1);
    blobWritev(
      view,
      c1,
      [new Uint8Array(4096).fill(0x5a)],
      20,
      1,
      (st) => {
        expect(st).to.equal(0);
        // The map entry the allocation published is there for every reactor now.
        expect(view.map[1]).to.not.equal(0);
        h.threads[2].sendMsg(() =>
          blobReadv(
            view,
            c2,
            [out],
            20,
            1,
            (s2) => {
              read = s2;
            },
            null,
          ),
        );
      },
      null,
    );
    h.until(() => read !== -1, 'read');
    expect(read).to.equal(0);
    expect(out.every((x) => x === 0x5a)).to.equal(true);
    h.setThread(1);
    c1.put();
    h.setThread(2);
    c2.put();
    h.run((cb) => bs.closeBlob(blob, cb));
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('a resize holds I/O on every reactor, then lets it through', () => {
    const h = harness(2);
    const d = disk(h, { size: 16 * 1024 * 1024 });
    const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: 64 * 1024 }, cb as never));
    const id = h.run<number>((cb) => bs.createBlob({ numClusters: 2 }, cb as never));
    const blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
    const view = bs.viewOf(blob);
    h.setThread(1);
    const ch = bs.view.getChannel();
    let resized = false;
    let wrote = false;
    h.setThread(0);
    bs.resizeBlob(blob, 200, (err) => {
      expect(err).to.equal(null);
      resized = true;
    });
    // Step until reactor 1 has seen the freeze, then submit there: the write waits for the resize.
    h.until(() => view.frozen > 0, 'freeze');
    h.setThread(1);
    blobWritev(
      view,
      ch,
      [new Uint8Array(4096).fill(9)],
      16 + 3,
      1,
      (st) => {
        expect(st).to.equal(0);
        expect(view.numClusters, 'the write went through after the new size was applied').to.equal(200);
        wrote = true;
      },
      null,
    );
    h.until(() => wrote && resized, 'write and resize');
    expect(view.numClusters).to.equal(200);
    h.setThread(1);
    ch.put();
    h.run((cb) => bs.closeBlob(blob, cb));
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  for (const op of ['snapshot', 'resize', 'delete of its snapshot (merge)'] as const) {
    it(`a ${op} while first writes to a thin blob wait for their clusters: both finish, every write reads back`, () => {
      const h = harness(2);
      const d = disk(h, { size: 16 * 1024 * 1024 });
      const bs = h.run<Blobstore>((cb) => Blobstore.init(d.desc, { clusterSize: 64 * 1024 }, cb as never));
      const id = h.run<number>((cb) => bs.createBlob({ numClusters: 8, thin: true }, cb as never));
      const snap0 =
        op === 'delete of its snapshot (merge)'
          ? h.run<number>((cb) => bs.createSnapshot(id, [], cb as never))
          : -1;
      const blob = h.run<Blob>((cb) => bs.openBlob(id, cb as never));
      const view = bs.viewOf(blob);
      h.setThread(1);
      const ch = bs.view.getChannel();
      // The operation takes the blob's lock; then, before its freeze reaches reactor 1, one write
      // into each of four unallocated clusters there: the freeze waits for them, they wait for
      // their clusters.
      h.setThread(0);
      let opDone = false;
      const doneCb = (err: unknown) => {
        expect(err).to.equal(null);
        opDone = true;
      };
      if (op === 'snapshot') bs.createSnapshot(id, [], doneCb as never);
      else if (op === 'resize') bs.resizeBlob(blob, 12, doneCb);
      else bs.deleteBlob(snap0, doneCb);
      h.until(() => blob.locked, 'the lock');
      expect(view.frozen, 'reactor 1 not frozen yet').to.equal(0);
      h.setThread(1);
      let acked = 0;
      for (let c = 0; c < 4; c++) {
        blobWritev(
          view,
          ch,
          [new Uint8Array(4096).fill(c + 1)],
          c * 16 + 5,
          1,
          (st) => {
            expect(st).to.equal(0);
            acked++;
          },
          null,
        );
      }
      h.until(() => opDone && acked === 4, `the ${op} and the writes`);
      for (let c = 0; c < 4; c++) {
        const b = new Uint8Array(4096);
        let read = false;
        h.setThread(1);
        blobReadv(
          view,
          ch,
          [b],
          c * 16 + 5,
          1,
          (st) => {
            expect(st).to.equal(0);
            read = true;
          },
          null,
        );
        h.until(() => read, 'read');
        expect(
          b.every((x) => x === c + 1),
          `cluster ${c}`,
        ).to.equal(true);
      }
      h.setThread(1);
      ch.put();
      h.run((cb) => bs.closeBlob(blob, cb));
      h.run((cb) => bs.unload(cb));
      d.close();
    });
  }
});
