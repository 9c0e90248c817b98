// The codec against bytes it did not produce: NVMe/TCP sessions recorded with tshark between
// storkit and implementations storkit did not write (fixtures/README.md says how and when). Each
// connection's bytes, one file per direction, go through PduReader as they came off the wire;
// every PDU must frame, every digest must check, and the fields the foreign side wrote decode to
// what that side printed or was configured with. Where content is deterministic (ICReq, ICResp,
// CQEs, Identify fields), storkit's encoder must produce the foreign bytes exactly.

import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import {
  AdminOpcode,
  bytesToUuid,
  CH_SIZE,
  Cns,
  CONNECT_DATA_SIZE,
  ConnectDataOff,
  ConnectOff,
  cqeWrite,
  DataOff,
  decodeIdentifyController,
  decodeIdentifyNamespace,
  decodeNamespaceDescriptors,
  encodeIcReq,
  encodeIcResp,
  encodeIdentifyController,
  FabricsType,
  HLEN,
  IcOff,
  IDENTIFY_SIZE,
  IoOpcode,
  PduFlag,
  PduType,
  PropertyOff,
  Reg,
  SglId,
  SqeOff,
} from '../src/index.js';
import { type PduHandler, PduReader } from '../src/tcp/index.js';

const NQN = 'nqn.2016-06.io.storkit:golden';
const fixture = (session: string, file: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/${session}/${file}`, import.meta.url)));

/** One PDU as it came: its header (common header included), its data, whether its data digest held. */
interface Pdu {
  type: number;
  flags: number;
  header: Uint8Array;
  data: Uint8Array;
  digestOk: boolean;
}

/**
 * Frame a recorded byte stream into PDUs, in reads of `chunk` bytes (TCP's arbitrary slicing).
 * Digests are on from the PDU after IC if the ICResp of the connection (`digests`) granted them;
 * a header digest that does not check throws, as it would end a live connection.
 */
function frame(bytes: Uint8Array, digests: { hdgst: boolean; ddgst: boolean }, chunk = 1460): Pdu[] {
  const out: Pdu[] = [];
  let cur: Pdu | null = null;
  const parts: Uint8Array[] = [];
  let reader: PduReader;
  const h: PduHandler = {
    onPduHeader(type, flags, dv, off, dataLen) {
      const hlen = dv.getUint8(off + 2);
      cur = {
        type,
        flags,
        header: new Uint8Array(dv.buffer.slice(dv.byteOffset + off, dv.byteOffset + off + hlen)),
        data: new Uint8Array(0),
        digestOk: true,
      };
      parts.length = 0;
      void dataLen;
    },
    onPduData(buf, start, end) {
      parts.push(buf.slice(start, end));
    },
    onPduEnd(digestOk) {
      const p = cur!;
      p.data = new Uint8Array(Buffer.concat(parts));
      p.digestOk = digestOk;
      out.push(p);
      if (p.type === PduType.ICReq || p.type === PduType.ICResp) {
        reader.hdgst = digests.hdgst;
        reader.ddgst = digests.ddgst;
      }
    },
  };
  reader = new PduReader(h, 1 << 20);
  for (let o = 0; o < bytes.length; o += chunk)
    reader.push(bytes.subarray(o, Math.min(o + chunk, bytes.length)));
  return out;
}

const dvOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const sqe = (p: Pdu): DataView => new DataView(p.header.buffer, p.header.byteOffset + CH_SIZE, 64);
const ascii = (b: Uint8Array, off: number, len: number): string =>
  String.fromCharCode(...b.subarray(off, off + len)).replace(/\0.*$/s, '');

/** The negotiated digests of a connection, from its controller side's ICResp. */
function negotiated(ctrl: Uint8Array): { hdgst: boolean; ddgst: boolean } {
  expect(ctrl[0]).to.equal(PduType.ICResp);
  const d = ctrl[IcOff.dgst];
  return { hdgst: (d & 1) !== 0, ddgst: (d & 2) !== 0 };
}

/** Both directions of connection `c` of a session, framed. */
function connection(session: string, c: number, chunk?: number): { host: Pdu[]; ctrl: Pdu[] } {
  const hostBytes = fixture(session, `c${c}.host.bin`);
  const ctrlBytes = fixture(session, `c${c}.ctrl.bin`);
  const d = negotiated(ctrlBytes);
  return { host: frame(hostBytes, d, chunk), ctrl: frame(ctrlBytes, d, chunk) };
}

/** Commands of a framed host stream with the data that came with them (in-capsule or H2CData). */
function capsules(host: Pdu[]): Pdu[] {
  return host.filter((p) => p.type === PduType.CapsuleCmd);
}

/**
 * The data each command got back, in command order: a controller reuses CIDs, so the k-th command
 * with a CID gets the k-th completed transfer for it (C2HData until its CapsuleResp, or the
 * C2HData that carries SUCCESS).
 */
function readData(host: Pdu[], ctrl: Pdu[]): Uint8Array[] {
  const open = new Map<number, Uint8Array[]>();
  const done = new Map<number, Uint8Array[]>();
  const close = (cid: number): void => {
    if (!done.has(cid)) done.set(cid, []);
    done.get(cid)!.push(new Uint8Array(Buffer.concat(open.get(cid) ?? [])));
    open.delete(cid);
  };
  for (const p of ctrl) {
    if (p.type === PduType.C2HData) {
      const cid = dvOf(p.header).getUint16(DataOff.cccid, true);
      if (!open.has(cid)) open.set(cid, []);
      open.get(cid)!.push(p.data);
      if (p.flags & PduFlag.SUCCESS) close(cid);
    } else if (p.type === PduType.CapsuleResp) close(dvOf(p.header).getUint16(CH_SIZE + 12, true));
  }
  const seen = new Map<number, number>();
  return capsules(host).map((c) => {
    const cid = sqe(c).getUint16(SqeOff.cid, true);
    const k = seen.get(cid) ?? 0;
    seen.set(cid, k + 1);
    return done.get(cid)?.[k] ?? new Uint8Array(0);
  });
}

/** The ICReq a host would send with these parameters, encoded by storkit. */
function icReq(o: { hpda: number; hdgst: boolean; ddgst: boolean; maxr2t: number }): Uint8Array {
  const b = new Uint8Array(HLEN.ICReq);
  encodeIcReq(dvOf(b), 0, o);
  return b;
}

/** The host's Connect command and its data (the first capsule of a queue). */
function connectOf(host: Pdu[]): {
  qid: number;
  sqsize: number;
  kato: number;
  cntlid: number;
  subnqn: string;
  hostnqn: string;
} {
  const c = capsules(host)[0];
  const s = sqe(c);
  expect([s.getUint8(SqeOff.opcode), s.getUint8(SqeOff.fctype)]).to.deep.equal([
    AdminOpcode.Fabrics,
    FabricsType.Connect,
  ]);
  expect(c.data.length, 'Connect data in the capsule').to.equal(CONNECT_DATA_SIZE);
  return {
    qid: s.getUint16(ConnectOff.qid, true),
    sqsize: s.getUint16(ConnectOff.sqsize, true),
    kato: s.getUint32(ConnectOff.kato, true),
    cntlid: dvOf(c.data).getUint16(ConnectDataOff.cntlid, true),
    subnqn: ascii(c.data, ConnectDataOff.subnqn, 256),
    hostnqn: ascii(c.data, ConnectDataOff.hostnqn, 256),
  };
}

describe('nvme-spec: golden bytes from foreign NVMe/TCP sessions', () => {
  describe("SPDK's spdk_nvme_identify (host) against storkit tgt", () => {
    const { host, ctrl } = connection('spdk-identify', 0);

    it('frames every PDU SPDK sent', () => {
      expect(host.length).to.be.greaterThan(10);
      expect(new Set(host.map((p) => p.type))).to.deep.equal(new Set([PduType.ICReq, PduType.CapsuleCmd]));
    });

    it("SPDK's ICReq is the one storkit encodes for the same parameters", () => {
      expect(host[0].header).to.deep.equal(icReq({ hpda: 0, hdgst: false, ddgst: false, maxr2t: 1 }));
    });

    it("SPDK's Connect decodes: admin queue, dynamic controller, the subsystem, its (empty) host NQN", () => {
      const c = connectOf(host);
      // spdk_nvme_identify sends no host NQN unless given one (-H is not identify's).
      expect(c).to.include({ qid: 0, cntlid: 0xffff, subnqn: NQN, hostnqn: '' });
      expect(c.sqsize).to.be.greaterThan(0);
      expect(c.kato).to.be.greaterThan(0);
    });

    it('property accesses decode to registers: CAP as 8 bytes, VS, CC, CSTS; CC set with EN', () => {
      const props = capsules(host)
        .map(sqe)
        .filter(
          (s) =>
            s.getUint8(SqeOff.opcode) === AdminOpcode.Fabrics &&
            s.getUint8(SqeOff.fctype) !== FabricsType.Connect,
        );
      const gets = props
        .filter((s) => s.getUint8(SqeOff.fctype) === FabricsType.PropertyGet)
        .map((s) => [s.getUint32(PropertyOff.ofst, true), s.getUint8(PropertyOff.attrib) & 7]);
      expect(gets).to.deep.include.members([
        [Reg.CAP, 1],
        [Reg.VS, 0],
        [Reg.CC, 0],
        [Reg.CSTS, 0],
      ]);
      const sets = props.filter((s) => s.getUint8(SqeOff.fctype) === FabricsType.PropertySet);
      expect(sets.map((s) => s.getUint32(PropertyOff.ofst, true))).to.include(Reg.CC);
      expect(sets.some((s) => (s.getUint32(PropertyOff.value, true) & 1) === 1)).to.equal(true);
    });

    it('SPDK asked for Identify controller, active namespaces, namespace and descriptors, with transport SGLs', () => {
      const ids = capsules(host)
        .map(sqe)
        .filter((s) => s.getUint8(SqeOff.opcode) === AdminOpcode.Identify);
      const cns = new Set(ids.map((s) => s.getUint32(SqeOff.cdw10, true) & 0xff));
      for (const c of [Cns.Controller, Cns.ActiveNamespaceList, Cns.Namespace, Cns.NamespaceDescriptorList])
        expect(cns.has(c), `CNS ${c}`).to.equal(true);
      for (const s of ids) {
        expect(s.getUint8(SqeOff.sglId)).to.equal(SglId.TransportDataBlock);
        expect(s.getUint32(SqeOff.sglLength, true)).to.equal(IDENTIFY_SIZE);
      }
    });

    it("what SPDK printed from storkit's Identify data is what storkit's decoder reads in it", () => {
      const printed = readFileSync(
        new URL('../../test/fixtures/spdk-identify/identify.txt', import.meta.url),
        'utf8',
      );
      const field = (label: string) => new RegExp(`^${label}:\\s*(.*)$`, 'm').exec(printed)?.[1].trim();
      const cmds = capsules(host).map(sqe);
      const k = cmds.findIndex(
        (s) =>
          s.getUint8(SqeOff.opcode) === AdminOpcode.Identify &&
          (s.getUint32(SqeOff.cdw10, true) & 0xff) === Cns.Controller,
      );
      const c = decodeIdentifyController(readData(host, ctrl)[k]);
      expect(c.serialNumber).to.equal(field('Serial Number'));
      expect(c.modelNumber).to.equal(field('Model Number'));
      expect(c.firmwareRevision).to.equal(field('Firmware Version'));
      expect(c.subnqn).to.equal(field('Subsystem NQN'));
      expect(String(c.nn)).to.equal(field('Number of Namespaces'));
      expect(String(c.aerLimit)).to.equal(field('Async Event Request Limit'));
      expect(String(2 ** c.mdts * 4096)).to.equal(field('Max Data Transfer Size'));
    });
  });

  describe("SPDK's spdk_nvme_perf -H -I (host, digests) against storkit tgt", () => {
    const admin = connection('spdk-perf-dgst', 0);
    const io = connection('spdk-perf-dgst', 1, 997);

    it("SPDK's ICReq asks for both digests, byte for byte as storkit encodes it", () => {
      expect(admin.host[0].header).to.deep.equal(icReq({ hpda: 0, hdgst: true, ddgst: true, maxr2t: 1 }));
      expect(io.host[0].header).to.deep.equal(icReq({ hpda: 0, hdgst: true, ddgst: true, maxr2t: 1 }));
    });

    it("every header digest SPDK computed checks, and every data digest (storkit's CRC32C agrees)", () => {
      const all = [...admin.host.slice(1), ...io.host.slice(1)];
      expect(all.length).to.be.greaterThan(5);
      for (const p of all) expect(p.flags & PduFlag.HDGSTF, `type ${p.type}`).to.equal(PduFlag.HDGSTF);
      const withData = all.filter((p) => p.data.length > 0);
      expect(withData.length).to.be.greaterThan(0);
      for (const p of withData) {
        expect(p.flags & PduFlag.DDGSTF).to.equal(PduFlag.DDGSTF);
        expect(p.digestOk).to.equal(true);
      }
    });

    it('I/O queue Connect, then 8 KiB reads and writes: write data as H2CData answering R2Ts', () => {
      const c = connectOf(io.host);
      expect(c.qid).to.be.greaterThan(0);
      expect(c.cntlid).to.not.equal(0xffff);
      const cmds = capsules(io.host).slice(1).map(sqe);
      const ops = new Set(cmds.map((s) => s.getUint8(SqeOff.opcode)));
      expect(ops.has(IoOpcode.Write) || ops.has(IoOpcode.Read)).to.equal(true);
      for (const s of cmds) {
        expect(s.getUint32(SqeOff.nsid, true)).to.equal(1);
        expect(s.getUint32(SqeOff.sglLength, true)).to.equal(8192);
        expect(s.getUint16(SqeOff.cdw12, true)).to.equal(15);
      }
      const h2c = io.host.filter((p) => p.type === PduType.H2CData);
      for (const p of h2c) {
        const dv = dvOf(p.header);
        expect(dv.getUint32(DataOff.datal, true)).to.equal(p.data.length);
        expect(dv.getUint32(DataOff.datao, true) + p.data.length).to.be.at.most(8192);
      }
    });
  });

  describe("SPDK's spdk_tgt (controller, digests) answering storkit's host", () => {
    const admin = connection('spdk-tgt-dgst', 0);
    const io = connection('spdk-tgt-dgst', 2, 4096);

    it("SPDK's ICResp is the one storkit encodes for the same parameters", () => {
      const r = admin.ctrl[0].header;
      const dv = dvOf(r);
      const mine = new Uint8Array(HLEN.ICResp);
      encodeIcResp(dvOf(mine), 0, {
        cpda: dv.getUint8(IcOff.cpda),
        hdgst: true,
        ddgst: true,
        maxh2cdata: dv.getUint32(IcOff.maxh2cdata, true),
      });
      expect(r).to.deep.equal(mine);
      expect(dv.getUint32(IcOff.maxh2cdata, true)).to.equal(131072);
    });

    it("every CQE SPDK sent is the one storkit's cqeWrite makes from its fields", () => {
      const resps = [...admin.ctrl, ...io.ctrl].filter((p) => p.type === PduType.CapsuleResp);
      expect(resps.length).to.be.greaterThan(10);
      for (const p of resps) {
        const foreign = p.header.subarray(CH_SIZE, CH_SIZE + 16);
        const dv = dvOf(foreign);
        const mine = new Uint8Array(16);
        cqeWrite(
          dvOf(mine),
          0,
          dv.getUint32(0, true),
          dv.getUint32(4, true),
          dv.getUint16(8, true),
          dv.getUint16(10, true),
          dv.getUint16(12, true),
          dv.getUint16(14, true) >>> 1,
        );
        expect(mine).to.deep.equal(foreign);
        expect(p.flags & PduFlag.HDGSTF).to.equal(PduFlag.HDGSTF);
      }
    });

    it("SPDK's Identify data decodes to what it was configured with; storkit encodes the same fields the same", () => {
      const host = capsules(admin.host).map(sqe);
      const data = readData(admin.host, admin.ctrl);
      const of = (cns: number, nsid = 0): Uint8Array =>
        data[
          host.findIndex(
            (x) =>
              x.getUint8(SqeOff.opcode) === AdminOpcode.Identify &&
              (x.getUint32(SqeOff.cdw10, true) & 0xff) === cns &&
              (nsid === 0 || x.getUint32(SqeOff.nsid, true) === nsid),
          )
        ];
      const raw = of(Cns.Controller);
      const c = decodeIdentifyController(raw);
      expect(c).to.include({
        vid: 0x8086,
        ssvid: 0x8086,
        serialNumber: 'SPDK00000000GOLD',
        modelNumber: 'SPDK bdev Controller',
        firmwareRevision: '24.01',
        subnqn: NQN,
        mdts: 5,
      });
      const mine = new Uint8Array(IDENTIFY_SIZE);
      encodeIdentifyController(c, mine);
      // VID through FR (bytes 0-71), CNTLID and VER, SUBNQN: laid out identically.
      expect(mine.subarray(0, 72)).to.deep.equal(raw.subarray(0, 72));
      expect(mine.subarray(78, 84)).to.deep.equal(raw.subarray(78, 84));
      expect(mine.subarray(768, 1024)).to.deep.equal(raw.subarray(768, 1024));
      const ns = decodeIdentifyNamespace(of(Cns.Namespace, 1));
      expect([ns.nsze, ns.blockSize]).to.deep.equal([32768, 512]);
      expect(bytesToUuid(ns.nguid)).to.equal('6f1c2b3a-4d5e-4f60-8a71-92b3c4d5e6f7');
      expect(bytesToUuid(decodeNamespaceDescriptors(of(Cns.NamespaceDescriptorList, 1)).uuid!)).to.equal(
        '6f1c2b3a-4d5e-4f60-8a71-92b3c4d5e6f7',
      );
    });

    it("SPDK's C2HData, R2T and their digests on the I/O queue", () => {
      const c2h = io.ctrl.filter((p) => p.type === PduType.C2HData);
      const r2t = io.ctrl.filter((p) => p.type === PduType.R2T);
      expect(c2h.length).to.be.greaterThan(0);
      expect(r2t.length).to.be.greaterThan(0);
      for (const p of c2h) {
        expect(p.digestOk).to.equal(true);
        expect(dvOf(p.header).getUint32(DataOff.datal, true)).to.equal(p.data.length);
      }
      for (const p of r2t) {
        const dv = dvOf(p.header);
        expect(dv.getUint32(DataOff.r2to, true)).to.equal(0);
        expect(dv.getUint32(DataOff.r2tl, true)).to.equal(8192);
      }
    });
  });

  describe("the Linux kernel's nvme-tcp initiator (QEMU guest) against storkit tgt", () => {
    const admin = connection('kernel-host', 0);
    const io = connection('kernel-host', 1, 512);

    it("the kernel's ICReqs are the ones storkit encodes for the same parameters", () => {
      for (const c of [admin, io])
        expect(c.host[0].header).to.deep.equal(icReq({ hpda: 0, hdgst: false, ddgst: false, maxr2t: 1 }));
    });

    it("the kernel's Connects decode: admin then I/O queue of the controller it got, the subsystem", () => {
      const a = connectOf(admin.host);
      expect(a).to.include({ qid: 0, cntlid: 0xffff, subnqn: NQN });
      const i = connectOf(io.host);
      expect(i.qid).to.equal(1);
      expect(i.subnqn).to.equal(NQN);
      expect(i.hostnqn).to.equal(a.hostnqn);
    });

    it("the kernel's writes carry their data in capsule or as H2CData, every byte accounted for", () => {
      const cmds = capsules(io.host).slice(1);
      const writes = cmds.filter((p) => sqe(p).getUint8(SqeOff.opcode) === IoOpcode.Write);
      expect(writes.length).to.be.greaterThan(0);
      const h2c = io.host.filter((p) => p.type === PduType.H2CData);
      let bytes = 0;
      for (const w of writes) {
        const s = sqe(w);
        const len = s.getUint32(SqeOff.sglLength, true);
        expect(len).to.equal((s.getUint16(SqeOff.cdw12, true) + 1) * 512);
        if (s.getUint8(SqeOff.sglId) === SglId.InCapsuleData) expect(w.data.length).to.equal(len);
        bytes += len;
      }
      const inCapsule = writes.reduce((n, w) => n + w.data.length, 0);
      expect(inCapsule + h2c.reduce((n, p) => n + p.data.length, 0)).to.equal(bytes);
      // What the guest wrote: its sector-numbered pattern.
      const all = Buffer.concat([...writes.map((w) => w.data), ...h2c.map((p) => p.data)]).toString('latin1');
      expect(all).to.include('kernel nvme-tcp golden sector 0');
    });
  });
});
