// The NVMe/TCP qpair engine alone, in memory: pre-encoded 4 KiB Read (or in-capsule Write)
// capsules fed to `receive` in batches of 32, through PDU parsing, the RAM backend and C2HData /
// CapsuleResp encoding into the send buffers; the sink releases them at once. No sockets, so this is
// the target's own CPU cost per command, away from the kernel and the client.

import { micro } from '@storkit/bench';
import { RamBackend } from '@storkit/block/testing';
import {
  CH_SIZE,
  CONNECT_DATA_SIZE,
  ConnectDataOff,
  encodeIcReq,
  HLEN,
  PduType,
  SglId,
  sqeInit,
  sqeSetSgl,
  writeCh,
  writeU64,
} from '@storkit/nvme-spec';

import { NvmfTarget } from '../src/target.js';
import { TcpQpair } from '../src/tcp-qpair.js';

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const BATCH = 32;

function capsule(
  opcode: number,
  cid: number,
  nsid: number,
  icd: Uint8Array | null,
  sglLen: number,
  fill?: (dv: DataView, s: number) => void,
) {
  const n = icd?.length ?? 0;
  const b = new Uint8Array(HLEN.CapsuleCmd + n);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.CapsuleCmd, 0, HLEN.CapsuleCmd, n ? HLEN.CapsuleCmd : 0, b.length);
  sqeInit(dv, CH_SIZE, opcode, 0x40, cid, nsid);
  sqeSetSgl(dv, CH_SIZE, 0, sglLen, n ? SglId.InCapsuleData : SglId.TransportDataBlock);
  fill?.(dv, CH_SIZE);
  if (icd) b.set(icd, HLEN.CapsuleCmd);
  return b;
}

function connectData(cntlid: number): Uint8Array {
  const d = new Uint8Array(CONNECT_DATA_SIZE);
  new DataView(d.buffer).setUint16(ConnectDataOff.cntlid, cntlid, true);
  d.set(Buffer.from(NQN), ConnectDataOff.subnqn);
  d.set(Buffer.from('nqn.2024-01.io.example:bench'), ConnectDataOff.hostnqn);
  return d;
}

const tgt = new NvmfTarget();
tgt.nvmf_create_transport({ trtype: 'TCP', max_queue_depth: 128 });
tgt.registerBackend(new RamBackend({ name: 'Malloc0', blockSize: 4096, numBlocks: 16384 }));
tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
tgt.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
const local = { traddr: '127.0.0.1', trsvcid: '4420' };
// Subsystem listener check without opening a socket: the subsystem lists this address.
tgt.subsystems.get(NQN)!.listeners.push({ trtype: 'TCP', adrfam: 'IPv4', ...local });

let responses = 0;
const sink = (b: Uint8Array, release: () => void): void => {
  // Count CapsuleResp and SUCCESS-flagged C2HData PDUs by walking the batch.
  let o = 0;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (o < b.length) {
    const t = b[o];
    if (t === PduType.CapsuleResp || (t === PduType.C2HData && b[o + 1] & 0x08)) responses++;
    o += dv.getUint32(o + 4, true);
  }
  release();
};
const tick = () => new Promise((r) => setImmediate(r));

const ic = new Uint8Array(HLEN.ICReq);
encodeIcReq(new DataView(ic.buffer), 0, { hpda: 0, hdgst: false, ddgst: false, maxr2t: 1 });
const admin = new TcpQpair(tgt, sink, () => {}, 'bench:1', local);
admin.receive(ic);
admin.receive(
  capsule(0x7f, 0, 0, connectData(0xffff), CONNECT_DATA_SIZE, (dv, s) => {
    dv.setUint8(s + 4, 1);
    dv.setUint16(s + 44, 31, true);
  }),
);
await tick();
admin.receive(
  capsule(0x7f, 1, 0, null, 0, (dv, s) => {
    dv.setUint8(s + 4, 0); // Property Set CC.EN
    dv.setUint32(s + 44, 0x14, true);
    dv.setUint32(s + 48, 0x460001, true);
  }),
);
await tick();
const cntlid = [...tgt.subsystems.get(NQN)!.controllers.keys()][0];
const io = new TcpQpair(tgt, sink, () => {}, 'bench:2', local);
io.receive(ic);
io.receive(
  capsule(0x7f, 0, 0, connectData(cntlid), CONNECT_DATA_SIZE, (dv, s) => {
    dv.setUint8(s + 4, 1);
    dv.setUint16(s + 42, 1, true);
    dv.setUint16(s + 44, 127, true);
  }),
);
await tick();
if (io.qid !== 1) throw new Error('I/O qpair did not connect');

function batch(write: boolean): Uint8Array {
  const parts = Array.from({ length: BATCH }, (_, i) =>
    capsule(write ? 0x01 : 0x02, i, 1, write ? new Uint8Array(4096).fill(i) : null, 4096, (dv, s) => {
      writeU64(dv, s + 40, (i * 97) % 16384);
    }),
  );
  return Buffer.concat(parts);
}

// Each call feeds one batch of 32 capsules and yields once (completions are deferred to the next
// turn); every command must come back completed, or the figure would flatter the engine.
let calls = 0;
const before = responses;
const reads = batch(false);
const writes = batch(true);
await micro(
  'NVMe/TCP qpair engine in memory (RAM namespace, no sockets)',
  [
    {
      name: `engine: ${BATCH} x read 4 KiB (C2HData + SUCCESS) per receive (per command)`,
      batch: BATCH,
      fn: async () => {
        calls++;
        io.receive(reads);
        await tick();
      },
    },
    {
      name: `engine: ${BATCH} x write 4 KiB in-capsule per receive (per command)`,
      batch: BATCH,
      fn: async () => {
        calls++;
        io.receive(writes);
        await tick();
      },
    },
  ],
  { time: 1500, warmupTime: 300 },
);
if (responses - before !== calls * BATCH)
  throw new Error(`expected ${calls * BATCH} completions, saw ${responses - before}`);
await tgt.close();
