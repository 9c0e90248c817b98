// Damaged images at load: what SPDK cannot load fails with an EILSEQ naming the damage and writes
// nothing (the image is byte-identical afterwards); a blob SPDK would skip is skipped, the others
// load. Each damage is made to the SPDK-made image.
import { expect } from 'chai';
import { decodeMdPage, INVALID_PAGE, MD, PAGE_SIZE, pageCrc, SUPER } from '../src/format/index.js';
import { Blobstore } from '../src/index.js';
import { image } from '../src/testing.js';
import { disk, harness } from './helpers.js';

const MD_START = 4;

function setU32(img: Uint8Array, at: number, v: number): void {
  new DataView(img.buffer, img.byteOffset).setUint32(at, v, true);
}
function fixMdCrc(img: Uint8Array, page: number): void {
  const off = (MD_START + page) * PAGE_SIZE;
  setU32(img, off + MD.CRC, pageCrc(img.subarray(off, off + PAGE_SIZE)));
}
function dirty(img: Uint8Array): void {
  setU32(img, SUPER.CLEAN, 0);
  setU32(img, SUPER.CRC, pageCrc(img.subarray(0, PAGE_SIZE)));
}

function loadFails(img: Uint8Array, re: RegExp): void {
  const h = harness();
  const d = disk(h, { image: img });
  const before = Buffer.from(d.bytes);
  const err = h.runErr((cb) => Blobstore.load(d.desc, {}, cb as never));
  expect(err, 'load should fail').to.not.equal(null);
  expect((err as { code?: string }).code).to.equal('EILSEQ');
  expect(err?.message).to.match(re);
  expect(Buffer.from(d.bytes).equals(before), 'nothing written').to.equal(true);
  d.close();
}

describe('blobstore: damaged images at load', function () {
  this.timeout(60000);

  it('a corrupted super block: EILSEQ, nothing written', () => {
    const img = image('lvs');
    img[SUPER.CLUSTER_SIZE + 1] ^= 0x40;
    loadFails(img, /super block: CRC mismatch/);
  });

  it('a super block whose masks lie outside the device: EILSEQ, nothing written', () => {
    const img = image('lvs');
    setU32(img, SUPER.USED_CLUSTER_MASK_START, 1_000_000);
    setU32(img, SUPER.CRC, pageCrc(img.subarray(0, PAGE_SIZE)));
    loadFails(img, /used cluster mask \(pages 1000000\+1\) lies outside the device/);
  });

  it('a metadata chain that loops: EILSEQ naming the loop, nothing written (clean and dirty)', () => {
    for (const d of [false, true]) {
      const img = image('lvs');
      // thick1's root (page 1) continues to itself.
      setU32(img, (MD_START + 1) * PAGE_SIZE + MD.NEXT, 1);
      fixMdCrc(img, 1);
      if (d) dirty(img);
      loadFails(img, /loops back to page 1/);
    }
  });

  it('a dirty image with an extent outside the device: EILSEQ, nothing written', () => {
    const img = image('lvs');
    // thick1's extent page (page 2): its first cluster becomes 70000 (the device has 256).
    setU32(img, (MD_START + 2) * PAGE_SIZE + MD.DESCRIPTORS + 9, 70000);
    fixMdCrc(img, 2);
    dirty(img);
    loadFails(img, /points at cluster 70000, outside the blobstore \(256 clusters\)/);
  });

  it('one blob with a bad CRC in a clean image is skipped (as SPDK skips it); the rest load', () => {
    const h = harness();
    const img = image('lvs');
    // thin1's root page (page 3) damaged.
    img[(MD_START + 3) * PAGE_SIZE + 200] ^= 0xff;
    const d = disk(h, { image: img });
    const bs = h.run<Blobstore>((cb) => Blobstore.load(d.desc, {}, cb as never));
    expect(bs.problems.map((p) => p.id)).to.include(2 ** 32 + 3);
    expect(bs.problems.find((p) => p.id === 2 ** 32 + 3)?.error.message).to.match(
      /metadata page 3: CRC mismatch/,
    );
    // Its clone-of-a-snapshot relatives and the other volumes open.
    const ok = bs.blobIds().filter((id) => !bs.problems.some((p) => p.id === id));
    expect(ok.length).to.equal(5);
    for (const id of ok) {
      const b = h.run((cb) => bs.openBlob(id, cb as never)) as { openRef: number };
      expect(b.openRef).to.equal(1);
    }
    for (const b of [...bs.open.values()]) while (bs.open.has(b.id)) h.run((cb) => bs.closeBlob(b, cb));
    h.run((cb) => bs.unload(cb));
    d.close();
  });

  it('the damaged page is really what the load read (the check can fail)', () => {
    const img = image('lvs');
    const raw = img.subarray((MD_START + 3) * PAGE_SIZE, (MD_START + 4) * PAGE_SIZE);
    expect(decodeMdPage(raw, 3).next).to.equal(INVALID_PAGE);
    raw[200] ^= 0xff;
    expect(() => decodeMdPage(raw, 3)).to.throw(/CRC mismatch/);
  });
});
