import { crc32c } from '@storkit/native';
import { expect } from 'chai';
import fc from 'fast-check';
import {
  CH_SIZE,
  cqeCid,
  cqeDw0,
  cqeStatus,
  cqeWrite,
  DataOff,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNamespaceDescriptors,
  decodeNamespaceList,
  encodeDataHeader,
  encodeIdentifyController,
  encodeIdentifyNamespace,
  encodeNamespaceDescriptors,
  encodeNamespaceList,
  Fes,
  HLEN,
  makeStatus,
  NvmeTcpProtocolError,
  PduFlag,
  PduType,
  pduLayout,
  putHeaderDigest,
  readU64,
  sqeCid,
  sqeInit,
  sqeNlb,
  sqeNsid,
  sqeOpcode,
  sqeSlba,
  statusSc,
  statusSct,
  writeCh,
  writeU64,
} from '../src/index.js';
import { type PduHandler, PduReader } from '../src/tcp/reader.js';

interface Seen {
  type: number;
  flags: number;
  header: number[];
  data: number[];
  digestOk: boolean;
}

class Collector implements PduHandler {
  readonly pdus: Seen[] = [];
  #cur: Seen | null = null;
  onPduHeader(type: number, flags: number, dv: DataView, off: number, _dataLen: number): void {
    const hlen = dv.getUint8(off + 2);
    const header = Array.from({ length: hlen }, (_, i) => dv.getUint8(off + i));
    this.#cur = { type, flags, header, data: [], digestOk: true };
  }
  onPduData(buf: Uint8Array, start: number, end: number, dataOffset: number): void {
    expect(dataOffset).to.equal(this.#cur!.data.length);
    for (let i = start; i < end; i++) this.#cur!.data.push(buf[i]);
  }
  onPduEnd(ok: boolean): void {
    this.#cur!.digestOk = ok;
    this.pdus.push(this.#cur!);
    this.#cur = null;
  }
}

// An H2CData-like PDU (valid for the reader) with the given digests and payload.
function dataPdu(type: number, payload: Uint8Array, hd: boolean, dd: boolean, cid: number): Uint8Array {
  const { pdo, plen } = pduLayout(HLEN.H2CData, payload.length, hd, dd);
  const b = new Uint8Array(plen);
  const dv = new DataView(b.buffer);
  const flags = (hd ? PduFlag.HDGSTF : 0) | (dd && payload.length ? PduFlag.DDGSTF : 0);
  writeCh(dv, 0, type, flags, HLEN.H2CData, pdo, plen);
  encodeDataHeader(dv, 0, cid, 0, 0, payload.length);
  if (hd) putHeaderDigest(b, dv, 0, HLEN.H2CData);
  b.set(payload, pdo || HLEN.H2CData + (hd ? 4 : 0));
  if (dd && payload.length) dv.setUint32(plen - 4, crc32c(payload), true);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// Split `b` at the given cut points (sorted, deduplicated).
function split(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const pts = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

describe('nvme spec: SQE/CQE layout', () => {
  it('round-trips SQE fields and 64-bit LBAs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 1, max: 65536 }),
        (op, cid, nsid, slba, nlb) => {
          const dv = new DataView(new ArrayBuffer(80));
          sqeInit(dv, 8, op, 0x40, cid, nsid);
          writeU64(dv, 8 + 40, slba);
          dv.setUint16(8 + 48, nlb - 1, true);
          expect([
            sqeOpcode(dv, 8),
            sqeCid(dv, 8),
            sqeNsid(dv, 8),
            sqeSlba(dv, 8),
            sqeNlb(dv, 8),
          ]).to.deep.equal([op, cid, nsid, slba, nlb]);
          expect(readU64(dv, 48)).to.equal(slba);
        },
      ),
    );
  });

  it('puts the status field above the phase bit', () => {
    const dv = new DataView(new ArrayBuffer(16));
    const st = makeStatus(2, 0x85, true);
    cqeWrite(dv, 0, 0xdeadbeef, 0, 3, 1, 77, st);
    expect(cqeStatus(dv, 0)).to.equal(st);
    expect(statusSct(st)).to.equal(2);
    expect(statusSc(st)).to.equal(0x85);
    expect(dv.getUint16(14, true) & 1).to.equal(0);
    expect(cqeCid(dv, 0)).to.equal(77);
    expect(cqeDw0(dv, 0)).to.equal(0xdeadbeef);
  });
});

describe('nvme spec: identify structures', () => {
  it('round-trips identify controller, namespace, lists and descriptors', () => {
    const buf = new Uint8Array(4096);
    const c = {
      vid: 0x1b36,
      ssvid: 0x1af4,
      serialNumber: 'SPDK00000000000001',
      modelNumber: 'storkit bdev Controller',
      firmwareRevision: '0.1.0',
      ieee: 0x123456,
      cmic: 2,
      mdts: 5,
      cntlid: 9,
      version: 0x10300,
      oaes: 0x100,
      ctratt: 1,
      cntrltype: 1,
      oacs: 0x16,
      abortLimit: 4,
      aerLimit: 4,
      frmw: 3,
      lpa: 4,
      errorLogEntries: 16,
      kas: 1,
      maxcmd: 128,
      nn: 32,
      oncs: 0xd,
      fuses: 1,
      vwc: 4,
      acwu: 0,
      sgls: 0x100001,
      subnqn: 'nqn.2016-06.io.spdk:cnode1',
      ioccsz: 260,
      iorcsz: 1,
      icdoff: 0,
      msdbd: 1,
    };
    encodeIdentifyController(c, buf);
    const { details, ...decoded } = decodeIdentifyController(buf);
    expect(decoded).to.deep.equal(c);
    // What only tools read: the bytes the encoder fixes (entry sizes, power state 0, RAB).
    expect(details).to.deep.include({
      ieeeBytes: [0x56, 0x34, 0x12],
      sqes: 0x66,
      cqes: 0x44,
      rab: 6,
      npss: 0,
    });
    expect(details?.ps0.maxPowerCw).to.equal(2500);
    const n = {
      nsze: 2 ** 40,
      ncap: 2 ** 40,
      nuse: 5,
      nsfeat: 1,
      blockSize: 4096,
      nmic: 1,
      dlfeat: 9,
      noiob: 64,
      nguid: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
      eui64: Uint8Array.from({ length: 8 }, (_, i) => 0xa0 + i),
    };
    encodeIdentifyNamespace(n, buf);
    const { lbaFormats, currentLbaFormat, nsattr, ...ns } = decodeIdentifyNamespace(buf);
    expect(ns).to.deep.equal(n);
    expect([lbaFormats, currentLbaFormat, nsattr]).to.deep.equal([
      [{ dataSize: 4096, metadataSize: 0, relativePerformance: 0 }],
      0,
      0,
    ]);
    encodeNamespaceList([7, 1, 3, 1000], 1, buf);
    expect(decodeNamespaceList(buf)).to.deep.equal([3, 7, 1000]);
    const d = { nguid: n.nguid, uuid: Uint8Array.from({ length: 16 }, (_, i) => 0xf0 - i), csi: 0 };
    encodeNamespaceDescriptors(d, buf);
    expect(decodeNamespaceDescriptors(buf)).to.deep.equal(d);
  });
});

describe('nvme tcp: PDU reader', () => {
  const payloadArb = fc.uint8Array({ minLength: 1, maxLength: 3000 });
  const streamArb = fc.array(fc.tuple(payloadArb, fc.boolean()), { minLength: 1, maxLength: 6 });

  it('reassembles PDUs split across and packed within reads, with and without digests', () => {
    fc.assert(
      fc.property(
        streamArb,
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        (pdus, hd, dd, cuts) => {
          const wire = concat(
            pdus.map(([p, c2h], i) => dataPdu(c2h ? PduType.C2HData : PduType.H2CData, p, hd, dd, i)),
          );
          const col = new Collector();
          const rd = new PduReader(col, 1 << 20);
          rd.hdgst = hd;
          rd.ddgst = dd;
          for (const piece of split(wire, cuts)) rd.push(piece);
          expect(rd.idle).to.equal(true);
          expect(col.pdus.length).to.equal(pdus.length);
          col.pdus.forEach((s, i) => {
            expect(s.type).to.equal(pdus[i][1] ? PduType.C2HData : PduType.H2CData);
            expect(s.data).to.deep.equal(Array.from(pdus[i][0]));
            expect(s.digestOk).to.equal(true);
            expect(new DataView(Uint8Array.from(s.header).buffer).getUint16(DataOff.cccid, true)).to.equal(i);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reports a data digest mismatch without losing framing', () => {
    const a = dataPdu(PduType.H2CData, Uint8Array.of(1, 2, 3, 4), false, true, 1);
    a[a.length - 1] ^= 0xff;
    const b = dataPdu(PduType.H2CData, Uint8Array.of(5, 6), false, true, 2);
    const col = new Collector();
    const rd = new PduReader(col, 1 << 16);
    rd.ddgst = true;
    rd.push(concat([a, b]));
    expect(col.pdus.map((p) => p.digestOk)).to.deep.equal([false, true]);
  });

  it('rejects a header digest mismatch with FES 3', () => {
    const a = dataPdu(PduType.H2CData, Uint8Array.of(1, 2, 3, 4), true, false, 1);
    a[HLEN.H2CData] ^= 1;
    const rd = new PduReader(new Collector(), 1 << 16);
    rd.hdgst = true;
    expect(() => rd.push(a))
      .to.throw(NvmeTcpProtocolError)
      .with.property('fes', 3);
    expect(rd.errorHeader?.length).to.equal(HLEN.H2CData);
  });

  it('rejects oversized PDUs, unknown types and wrong HLEN with typed errors', () => {
    const big = dataPdu(PduType.H2CData, new Uint8Array(5000), false, false, 0);
    expect(() => new PduReader(new Collector(), 4096).push(big))
      .to.throw(NvmeTcpProtocolError)
      .that.includes({ code: 'EPROTO', fes: Fes.DataTransferLimitExceeded });
    const unk = new Uint8Array(CH_SIZE);
    unk[0] = 0x0f;
    expect(() => new PduReader(new Collector(), 4096).push(unk))
      .to.throw(NvmeTcpProtocolError)
      .with.property('fei', 0);
    const badHlen = dataPdu(PduType.H2CData, Uint8Array.of(1), false, false, 0);
    badHlen[2] = 30;
    expect(() => new PduReader(new Collector(), 4096).push(badHlen))
      .to.throw(NvmeTcpProtocolError)
      .with.property('fei', 2);
  });

  it('fuzz: arbitrary bytes, in any split, throw nothing but NvmeTcpProtocolError', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        (chunks, hd, dd) => {
          const rd = new PduReader(new Collector(), 8192);
          rd.hdgst = hd;
          rd.ddgst = dd;
          try {
            for (const c of chunks) rd.push(c);
          } catch (e) {
            expect(e).to.be.instanceOf(NvmeTcpProtocolError);
            expect((e as NvmeTcpProtocolError).fes).to.be.within(1, 6);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('fuzz: valid PDUs with mutated header bytes fail only with typed errors', () => {
    fc.assert(
      fc.property(payloadArb, fc.nat(27), fc.integer({ min: 0, max: 255 }), (p, at, v) => {
        const b = dataPdu(PduType.C2HData, p, false, false, 1);
        b[at % CH_SIZE === 3 ? at : at] = v;
        const rd = new PduReader(new Collector(), 1 << 16);
        try {
          rd.push(b);
        } catch (e) {
          expect(e).to.be.instanceOf(NvmeTcpProtocolError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
