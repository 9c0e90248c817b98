// A target engine driven in memory (no sockets): capsule/H2CData encoders and a connected
// admin + I/O qpair pair, for fuzzing and allocation tests.

import { RamBackend } from '@storkit/block/testing';
import {
  CH_SIZE,
  CONNECT_DATA_SIZE,
  ConnectDataOff,
  cqeStatus,
  encodeDataHeader,
  encodeIcReq,
  HLEN,
  PduType,
  sqeInit,
  sqeSetSgl,
  writeCh,
} from '@storkit/nvme-spec';
import { expect } from 'chai';
import type { TcpTransportParams } from '../src/options.js';
import { NvmfTarget } from '../src/target.js';
import { TcpQpair } from '../src/tcp-qpair.js';

export const NQN = 'nqn.2016-06.io.spdk:cnode1';
export const local = { traddr: '127.0.0.1', trsvcid: '4420' };

export interface Capsule {
  opcode: number;
  flags: number;
  cid: number;
  nsid: number;
  fctype: number;
  cdws: number[];
  sglId: number;
  sglLen: number;
  icd: number;
}

export function capsule(c: Capsule, fill?: (dv: DataView, s: number) => void): Uint8Array {
  const b = new Uint8Array(HLEN.CapsuleCmd + c.icd);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.CapsuleCmd, 0, HLEN.CapsuleCmd, c.icd ? HLEN.CapsuleCmd : 0, b.length);
  sqeInit(dv, CH_SIZE, c.opcode, c.flags, c.cid, c.nsid);
  if (c.opcode === 0x7f) dv.setUint8(CH_SIZE + 4, c.fctype);
  c.cdws.forEach((v, i) => {
    dv.setUint32(CH_SIZE + 40 + 4 * i, v, true);
  });
  sqeSetSgl(dv, CH_SIZE, 0, c.sglLen, c.sglId);
  fill?.(dv, CH_SIZE);
  for (let i = 0; i < c.icd; i++) b[HLEN.CapsuleCmd + i] = i & 0xff;
  return b;
}

export function h2c(ttag: number, cccid: number, datao: number, datal: number, len: number): Uint8Array {
  const b = new Uint8Array(HLEN.H2CData + len);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.H2CData, 0, HLEN.H2CData, len ? HLEN.H2CData : 0, b.length);
  encodeDataHeader(dv, 0, cccid, ttag, datao, datal);
  return b;
}

function connectData(cntlid: number): Uint8Array {
  const d = new Uint8Array(CONNECT_DATA_SIZE);
  new DataView(d.buffer).setUint16(ConnectDataOff.cntlid, cntlid, true);
  d.set(Buffer.from(NQN), ConnectDataOff.subnqn);
  d.set(Buffer.from('nqn.2024-01.io.example:fuzz'), ConnectDataOff.hostnqn);
  return d;
}

/**
 * A target with a TCP transport and one RAM namespace (nsid 1 of NQN), no socket: the listener is
 * only recorded, so that `connected()`'s Connect to the `local` address is accepted.
 */
export function ramTarget(
  transport: Omit<TcpTransportParams, 'trtype'>,
  geometry: { blockSize: number; numBlocks: number },
): { tgt: NvmfTarget; ram: RamBackend } {
  const tgt = new NvmfTarget();
  tgt.nvmf_create_transport({ trtype: 'TCP', ...transport });
  const ram = new RamBackend({ name: 'Malloc0', ...geometry });
  tgt.registerBackend(ram);
  tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
  tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
  tgt.subsystems.get(NQN)!.listeners.push({ trtype: 'TCP', adrfam: 'IPv4', ...local });
  return { tgt, ram };
}

export const tick = () => new Promise((r) => setImmediate(r));

export class Peer {
  readonly out: number[] = [];
  closed = false;
  readonly statuses: number[] = [];
  /** Sees every batch the target sends (before it is released). */
  onOut: ((b: Uint8Array) => void) | null = null;
  readonly qp: TcpQpair;
  constructor(tgt: NvmfTarget) {
    this.qp = new TcpQpair(
      tgt,
      (b, release) => {
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let o = 0; o < b.length; o += dv.getUint32(o + 4, true)) {
          this.out.push(b[o]);
          if (b[o] === PduType.CapsuleResp) this.statuses.push(cqeStatus(dv, o + CH_SIZE));
        }
        this.onOut?.(b);
        release();
      },
      () => {
        this.closed = true;
      },
      'fuzz:1',
      local,
    );
    tgt.qpairOpened(this.qp);
  }
  send(b: Uint8Array): void {
    this.qp.receive(b);
  }
}

const ic = new Uint8Array(HLEN.ICReq);
encodeIcReq(new DataView(ic.buffer), 0, { hpda: 0, hdgst: false, ddgst: false, maxr2t: 1 });
export const base: Capsule = {
  opcode: 0,
  flags: 0x40,
  cid: 0,
  nsid: 0,
  fctype: 0,
  cdws: [],
  sglId: 0x5a,
  sglLen: 0,
  icd: 0,
};

export async function connected(tgt: NvmfTarget): Promise<{ admin: Peer; io: Peer }> {
  const admin = new Peer(tgt);
  admin.send(ic);
  const conn = capsule(
    { ...base, opcode: 0x7f, fctype: 1, sglId: 0x01, sglLen: CONNECT_DATA_SIZE, icd: CONNECT_DATA_SIZE },
    (dv, s) => dv.setUint16(s + 44, 31, true),
  );
  conn.set(connectData(0xffff), HLEN.CapsuleCmd);
  admin.send(conn);
  admin.send(capsule({ ...base, opcode: 0x7f, fctype: 0, cid: 1, cdws: [0, 0x14, 0x460001] }));
  await tick();
  expect(admin.statuses).to.deep.equal([0, 0]);
  const cntlid = admin.qp.ctrlr!.cntlid;
  const io = new Peer(tgt);
  io.send(ic);
  const b = capsule(
    { ...base, opcode: 0x7f, fctype: 1, sglId: 0x01, sglLen: CONNECT_DATA_SIZE, icd: CONNECT_DATA_SIZE },
    (dv, s) => {
      dv.setUint16(s + 42, 1, true);
      dv.setUint16(s + 44, 31, true);
    },
  );
  b.set(connectData(cntlid), HLEN.CapsuleCmd);
  io.send(b);
  await tick();
  expect(io.statuses).to.deep.equal([0]);
  return { admin, io };
}
