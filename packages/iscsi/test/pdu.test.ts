import { crc32c } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';
import { BHS_LENGTH, encodePdu, IscsiError, PduParser } from '../src/index.js';
import { DigestResult } from '../src/pdu.js';

function pdu(op: number, itt: number, data: Uint8Array, digests = false): Uint8Array {
  const b = new Uint8Array(BHS_LENGTH);
  b[0] = op;
  b[16] = itt >>> 24;
  b[19] = itt & 0xff;
  return encodePdu(b, data, 0, data.length, { headerDigest: digests, dataDigest: digests });
}

function collect(
  parser: PduParser,
  chunks: Uint8Array[],
): { op: number; itt: number; data: number[]; digest: number }[] {
  const out: { op: number; itt: number; data: number[]; digest: number }[] = [];
  for (const c of chunks) {
    parser.push(c, (p, d) => out.push({ op: p.opcode, itt: p.itt, data: [...p.data()], digest: d }));
  }
  return out;
}

describe('iscsi: PDU parser', () => {
  it('delivers the same PDUs however the stream is split or packed (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3f }), fc.uint8Array({ maxLength: 3000 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 30 }),
        fc.boolean(),
        (pdus, cuts, digests) => {
          const wire = Buffer.concat(pdus.map(([op, d], i) => pdu(op, i, d, digests)));
          const chunks: Uint8Array[] = [];
          let pos = 0;
          for (let i = 0; pos < wire.length; i++) {
            const n = cuts[i % cuts.length];
            chunks.push(wire.subarray(pos, pos + n));
            pos += n;
          }
          const parser = new PduParser({
            maxDataSegment: 1 << 16,
            headerDigest: digests,
            dataDigest: digests,
          });
          const got = collect(parser, chunks);
          expect(got.map((g) => [g.op, g.itt, g.data, g.digest])).to.deep.equal(
            pdus.map(([op, d], i) => [op, i, [...d], DigestResult.Ok]),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('writes CRC32C digests least significant byte first', () => {
    const w = pdu(0x25, 1, Buffer.from('abcd'), true);
    const hd = crc32c(w.subarray(0, 48));
    expect(w[48]).to.equal(hd & 0xff);
    expect(w[51]).to.equal(hd >>> 24);
  });

  it('reports a data digest error with the PDU and throws on a header digest error', () => {
    const limits = { maxDataSegment: 1 << 16, headerDigest: true, dataDigest: true };
    const w = pdu(0x01, 1, Buffer.from('payload!'), true);
    w[w.length - 1] ^= 1;
    expect(collect(new PduParser(limits), [w])[0].digest).to.equal(DigestResult.DataError);
    const h = pdu(0x01, 1, Buffer.from('payload!'), true);
    h[49] ^= 1;
    expect(() => collect(new PduParser(limits), [h]))
      .to.throw(IscsiError, /header digest mismatch/)
      .with.property('code', 'EPROTO');
  });

  it('refuses a DataSegmentLength above the negotiated maximum before buffering it', () => {
    const b = new Uint8Array(48);
    b[5] = 0x10; // 1 MiB
    const p = new PduParser({ maxDataSegment: 8192, headerDigest: false, dataDigest: false });
    expect(() => p.push(b, () => {}))
      .to.throw(IscsiError, /DataSegmentLength 1048576 exceeds MaxRecvDataSegmentLength 8192/)
      .with.property('code', 'EPROTO');
  });

  it('survives arbitrary bytes: only typed errors, never anything else (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 10 }),
        fc.boolean(),
        (chunks, dig) => {
          const p = new PduParser({ maxDataSegment: 4096, headerDigest: dig, dataDigest: dig });
          try {
            for (const c of chunks) {
              p.push(c, (x) => {
                expect(x.dataLength).to.be.at.most(4096);
                x.cdb();
                void x.lun;
              });
            }
          } catch (e) {
            expect(e).to.be.instanceOf(IscsiError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
