// The on-disk codec against images SPDK v24.01 wrote itself: every field, mask and metadata page
// decodes, and encodes back to the same bytes; every blob's metadata chain, parsed and serialized
// again with SPDK's page-breaking rules, is byte for byte what SPDK wrote.
import { expect } from 'chai';
import {
  applyExtentPage,
  blobIdToPage,
  decodeMask,
  decodeMdPage,
  decodeSuper,
  encodeMdPage,
  encodeSuper,
  INVALID_PAGE,
  MaskType,
  type MdPage,
  PAGE_SIZE,
  pageToBlobId,
  parseBlob,
  type SuperBlock,
  serializeBlob,
  serializeExtentPage,
} from '../src/format/index.js';
import { image, manifest } from '../src/testing.js';

const page = (img: Uint8Array, p: number) => img.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE);

function masks(img: Uint8Array, sb: SuperBlock) {
  const region = (start: number, len: number) => img.subarray(start * PAGE_SIZE, (start + len) * PAGE_SIZE);
  const clusters = Math.floor(sb.size / sb.clusterSize);
  return {
    pages: decodeMask(
      region(sb.usedPageMaskStart, sb.usedPageMaskLen),
      MaskType.USED_PAGES,
      sb.mdLen,
      sb.mdLen,
    ),
    clusters: decodeMask(
      region(sb.usedClusterMaskStart, sb.usedClusterMaskLen),
      MaskType.USED_CLUSTERS,
      clusters,
      clusters,
    ),
    blobids: decodeMask(
      region(sb.usedBlobidMaskStart, sb.usedBlobidMaskLen),
      MaskType.USED_BLOBIDS,
      sb.mdLen,
      sb.mdLen,
    ),
  };
}

/** Every blob of an image: its chain pages (decoded and raw), parsed model and extent pages. */
function blobs(img: Uint8Array, sb: SuperBlock) {
  const m = masks(img, sb);
  const md = (p: number) => page(img, sb.mdStart + p);
  const out: { id: number; chain: number[]; pages: MdPage[]; model: ReturnType<typeof parseBlob> }[] = [];
  for (let p = m.blobids.findFirstSet(); p >= 0; p = m.blobids.findFirstSet(p + 1)) {
    const id = pageToBlobId(p);
    const chain = [p];
    const pages = [decodeMdPage(md(p), p)];
    while (pages[pages.length - 1].next !== INVALID_PAGE) {
      const n = pages[pages.length - 1].next;
      chain.push(n);
      pages.push(decodeMdPage(md(n), n));
    }
    const model = parseBlob(id, pages, (c) => m.clusters.get(c));
    model.extentPages.forEach((ep, i) => {
      applyExtentPage(id, model, i, ep === 0 ? null : decodeMdPage(md(ep), ep), (c) => m.clusters.get(c));
    });
    out.push({ id, chain, pages, model });
  }
  return { masks: m, list: out, md };
}

describe('blob format: SPDK v24.01 golden images', () => {
  it('decodes the lvstore super block SPDK wrote and encodes it back byte for byte', () => {
    const img = image('lvs');
    const sb = decodeSuper(page(img, 0), img.length, 4096);
    expect(sb).to.include({
      version: 3,
      clean: true,
      superBlob: 0x100000000,
      clusterSize: 65536,
      usedPageMaskStart: 1,
      usedPageMaskLen: 1,
      usedClusterMaskStart: 2,
      usedClusterMaskLen: 1,
      usedBlobidMaskStart: 3,
      usedBlobidMaskLen: 1,
      mdStart: 4,
      mdLen: 256,
      bstype: 'LVOLSTORE',
      size: 16 * 1024 * 1024,
      ioUnitSize: 4096,
    });
    expect(Buffer.from(encodeSuper(sb)).equals(Buffer.from(page(img, 0)))).to.equal(true);
  });

  it('reads the used masks: cluster counts agree with what SPDK reported', () => {
    const img = image('lvs');
    const sb = decodeSuper(page(img, 0), img.length, 4096);
    const m = masks(img, sb);
    const lvs = manifest().lvstores[0];
    const mdClusters = 256 - lvs.total_data_clusters;
    expect(m.clusters.countClear).to.equal(lvs.free_clusters);
    for (let c = 0; c < mdClusters; c++) expect(m.clusters.get(c), `md cluster ${c}`).to.equal(true);
    expect(m.blobids.count).to.equal(1 + manifest().lvols.length);
  });

  for (const name of ['lvs', 'bs'] as const) {
    it(`${name}.img: every used metadata page decodes and encodes to the same bytes`, () => {
      const img = image(name);
      const sb = decodeSuper(page(img, 0), img.length, name === 'lvs' ? 4096 : 512);
      const m = masks(img, sb);
      let n = 0;
      for (let p = m.pages.findFirstSet(); p >= 0; p = m.pages.findFirstSet(p + 1)) {
        const raw = page(img, sb.mdStart + p);
        const dec = decodeMdPage(raw, p);
        expect(Buffer.from(encodeMdPage(dec)).equals(Buffer.from(raw)), `page ${p}`).to.equal(true);
        n++;
      }
      expect(n).to.be.greaterThan(4);
    });

    it(`${name}.img: each blob's chain and extent pages serialize exactly as SPDK wrote them`, () => {
      const img = image(name);
      const sb = decodeSuper(page(img, 0), img.length, name === 'lvs' ? 4096 : 512);
      const { list, md } = blobs(img, sb);
      for (const b of list) {
        const model = b.model;
        const pages = serializeBlob({
          id: b.id,
          invalidFlags: model.invalidFlags,
          dataRoFlags: model.dataRoFlags,
          mdRoFlags: model.mdRoFlags,
          xattrs: model.xattrs,
          internalXattrs: model.internalXattrs,
          useExtentTable: model.useExtentTable,
          numClusters: model.clusters.length,
          clusters: model.clusters,
          numExtentPages: model.extentPages.length,
          extentPages: model.extentPages,
        });
        expect(pages.length, `chain of 0x${b.id.toString(16)}`).to.equal(b.chain.length);
        pages.forEach((p, i) => {
          p.next = i + 1 < b.chain.length ? b.chain[i + 1] : INVALID_PAGE;
          expect(
            Buffer.from(encodeMdPage(p)).equals(Buffer.from(md(b.chain[i]))),
            `blob 0x${b.id.toString(16)} page ${i}`,
          ).to.equal(true);
        });
        model.extentPages.forEach((ep, i) => {
          if (ep === 0) return;
          // An extent page keeps the id of the blob that wrote it: after a snapshot swapped the maps,
          // the snapshot's pages still name the original blob (SPDK does not check that id).
          const id = decodeMdPage(md(ep), ep).id;
          const mdl = { id, numClusters: model.clusters.length, clusters: model.clusters };
          expect(
            Buffer.from(encodeMdPage(serializeExtentPage(mdl, i))).equals(Buffer.from(md(ep))),
            `extent page ${ep}`,
          ).to.equal(true);
        });
      }
    });
  }

  it('lvs.img: the lvols carry SPDK lvol xattrs (name padded to 64 bytes, uuid with its NUL)', () => {
    const img = image('lvs');
    const sb = decodeSuper(page(img, 0), img.length, 4096);
    const { list } = blobs(img, sb);
    const text = (v: Uint8Array) => new TextDecoder().decode(v.subarray(0, v.indexOf(0)));
    const byName = new Map(list.map((b) => [text(b.model.xattrs.find((x) => x.name === 'name')!.value), b]));
    const m = manifest();
    const root = list.find((b) => b.id === sb.superBlob)!;
    expect(text(root.model.xattrs.find((x) => x.name === 'uuid')!.value)).to.equal(m.lvstores[0].uuid);
    for (const l of m.lvols) {
      const b = byName.get(l.name)!;
      expect(b, l.name).to.not.equal(undefined);
      const name = b.model.xattrs.find((x) => x.name === 'name')!.value;
      expect(name.length).to.equal(64);
      const uuid = b.model.xattrs.find((x) => x.name === 'uuid')!.value;
      expect(uuid.length).to.equal(37);
      expect(text(uuid)).to.equal(l.uuid);
      expect((b.model.invalidFlags & 1n) !== 0n).to.equal(l.is_thin_provisioned);
    }
    const big = byName.get('big1')!;
    expect(big.model.extentPages.length).to.equal(3);
    expect(big.model.extentPages[1]).to.equal(0);
    expect(big.model.clusters.length).to.equal(96 * 16);
    const clone = byName.get('clone1')!;
    const snap = byName.get('snap1')!;
    const parent = clone.model.internalXattrs.find((x) => x.name === 'SNAP')!.value;
    expect(Number(new DataView(parent.buffer, parent.byteOffset).getBigUint64(0, true))).to.equal(snap.id);
    expect(blobIdToPage(snap.id)).to.be.a('number');
    expect(snap.model.dataRoFlags).to.equal(1n);
  });
});
