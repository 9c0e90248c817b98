// Bad on-disk input to the codec: each kind of damage gets an EILSEQ naming what is wrong, never
// another exception. (The blobstore's load tests check that such images load nothing and write
// nothing; these check the messages.)
import { expect } from 'chai';
import { BlobError } from '../src/errors.js';
import {
  DescType,
  decodeMdPage,
  decodeSuper,
  encodeMdPage,
  encodeSuper,
  INVALID_PAGE,
  MD,
  PAGE_SIZE,
  pageCrc,
  parseBlob,
  SUPER,
} from '../src/format/index.js';
import { image } from '../src/testing.js';

function throwsCode(f: () => unknown, code: string, re: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a throw').to.be.instanceOf(BlobError);
  expect((err as BlobError).code).to.equal(code);
  expect((err as BlobError).message).to.match(re);
}

function fixCrc(p: Uint8Array, at: number): void {
  new DataView(p.buffer, p.byteOffset).setUint32(at, pageCrc(p), true);
}

describe('blob format: bad input', () => {
  const img = image('lvs');
  const superPage = () => img.slice(0, PAGE_SIZE);
  const dev = img.length;

  it('super block: wrong signature, version, CRC', () => {
    const a = superPage();
    a[0] = 0x58;
    throwsCode(() => decodeSuper(a, dev, 4096), 'EILSEQ', /signature is "XPDKBLOB"/);
    const b = superPage();
    new DataView(b.buffer).setUint32(SUPER.VERSION, 4, true);
    fixCrc(b, SUPER.CRC);
    throwsCode(() => decodeSuper(b, dev, 4096), 'EILSEQ', /version 4/);
    const c = superPage();
    c[SUPER.CLUSTER_SIZE] ^= 1;
    throwsCode(
      () => decodeSuper(c, dev, 4096),
      'EILSEQ',
      /super block: CRC mismatch \(stored 0x[0-9a-f]+, computed/,
    );
  });

  it('super block with a valid CRC but impossible fields', () => {
    const sb = decodeSuper(superPage(), dev, 4096);
    const bad = (patch: Partial<typeof sb>, re: RegExp, devBytes = dev) =>
      throwsCode(() => decodeSuper(encodeSuper({ ...sb, ...patch }), devBytes, 4096), 'EILSEQ', re);
    bad({ mdLen: 5000 }, /the metadata \(pages 4\+5000\) lies outside the device \(4096 pages\)/);
    bad({ usedClusterMaskStart: 4 }, /the used cluster mask overlaps the metadata/);
    bad({ clusterSize: 1000 }, /cluster size 1000 is not a multiple of 4096/);
    bad({ size: dev * 2 }, /blobstore size \d+ is larger than the device/);
    bad({ usedPageMaskStart: 0 }, /overlaps the super block/);
    bad({ ioUnitSize: 512 }, /io unit size 512 does not suit/);
  });

  const md = (p: number) => img.slice((4 + p) * PAGE_SIZE, (5 + p) * PAGE_SIZE);

  it('metadata page: CRC mismatch names the page', () => {
    const p = md(1);
    p[100] ^= 0xff;
    throwsCode(() => decodeMdPage(p, 1), 'EILSEQ', /metadata page 1: CRC mismatch/);
  });

  it('metadata page: a descriptor whose length runs past the page', () => {
    const p = md(1);
    // The second descriptor (after flags) is an xattr; claim it is 5000 bytes long.
    new DataView(p.buffer).setUint32(MD.DESCRIPTORS + 29 + 1, 5000, true);
    fixCrc(p, MD.CRC);
    throwsCode(
      () => decodeMdPage(p, 1),
      'EILSEQ',
      /metadata page 1: descriptor type 2 at offset 29 has length 5000, past the end/,
    );
  });

  it('metadata page: descriptors with impossible lengths', () => {
    const enc = (len: number, type: number) => {
      const p = new Uint8Array(PAGE_SIZE);
      const v = new DataView(p.buffer);
      v.setUint8(MD.DESCRIPTORS, type);
      v.setUint32(MD.DESCRIPTORS + 1, len, true);
      v.setUint32(MD.NEXT, INVALID_PAGE, true);
      fixCrc(p, MD.CRC);
      return p;
    };
    throwsCode(() => decodeMdPage(enc(23, DescType.FLAGS), 3), 'EILSEQ', /flags descriptor of length 23/);
    throwsCode(
      () => decodeMdPage(enc(4, DescType.EXTENT_TABLE), 3),
      'EILSEQ',
      /extent table descriptor of length 4/,
    );
    throwsCode(
      () => decodeMdPage(enc(12, DescType.EXTENT_RLE), 3),
      'EILSEQ',
      /extent descriptor of length 12/,
    );
    throwsCode(
      () => decodeMdPage(enc(4, DescType.EXTENT_PAGE), 3),
      'EILSEQ',
      /extent page descriptor of length 4/,
    );
    throwsCode(
      () => decodeMdPage(enc(9, DescType.XATTR), 3),
      'EILSEQ',
      /xattr descriptor of length 9 holds a 0-byte name/,
    );
  });

  it('blob chains: wrong owner, sequence, unknown invalid flags, extents to free clusters', () => {
    const root = decodeMdPage(md(1), 1);
    const used = () => true;
    throwsCode(() => parseBlob(root.id + 1, [root], used), 'ENOENT', /first page belongs to 0x100000001/);
    throwsCode(
      () => parseBlob(root.id, [root, { ...root, sequence: 7 }], used),
      'EILSEQ',
      /page 1 of its chain has sequence number 7/,
    );
    const flags = {
      ...root,
      descriptors: [{ type: DescType.FLAGS, invalid: 0x100n, dataRo: 0n, mdRo: 0n } as const],
    };
    throwsCode(() => parseBlob(root.id, [flags], used), 'EILSEQ', /unknown invalid_flags 0x100/);
    const rle = {
      ...root,
      descriptors: [{ type: DescType.EXTENT_RLE, runs: [[40, 2]] as [number, number][] } as const],
    };
    throwsCode(
      () => parseBlob(root.id, [rle], (c) => c !== 41),
      'EILSEQ',
      /extent points at cluster 41, which is not in use/,
    );
    const both = { ...root, descriptors: [...root.descriptors, rle.descriptors[0]] };
    throwsCode(
      () => parseBlob(root.id, [both], used),
      'EILSEQ',
      /both an extent table and run-length extents/,
    );
    // Found by the fuzzer: a run of 2^32-1 unallocated clusters in a thin blob was looped over.
    const thin = {
      ...root,
      descriptors: [
        { type: DescType.FLAGS, invalid: 1n, dataRo: 0n, mdRo: 0n } as const,
        { type: DescType.EXTENT_RLE, runs: [[0, 0xffffffff]] as [number, number][] } as const,
      ],
    };
    throwsCode(
      () => parseBlob(root.id, [thin], used),
      'EILSEQ',
      /extents add up to more than 134217728 clusters/,
    );
    // A decode of what encodeMdPage wrote is accepted, so the errors above are about the damage.
    expect(() => parseBlob(root.id, [decodeMdPage(encodeMdPage(root), 1)], used)).to.not.throw();
  });
});
