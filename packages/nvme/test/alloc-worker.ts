// The measurement behind alloc.test.ts, in a worker of its own so only this isolate's heap counts:
// the host NVMe/TCP engine against an in-memory responder that answers each capsule it sent
// (4 KiB C2HData with SUCCESS for reads, a CapsuleResp for in-capsule writes) from preallocated
// buffers. Heap growth per command between scavenges is the engine's own allocation on the I/O
// path: submit, PDU encoding, receive, completion callback.

import v8 from 'node:v8';
import { parentPort } from 'node:worker_threads';

import { CH_SIZE, DataOff, encodeIcResp, HLEN, PduFlag, PduType, writeCh } from '@storkit/nvme-spec';

import type { Completion } from '../src/host/qpair.js';
import { TcpHostEngine } from '../src/tcp/engine.js';

export interface AllocResult {
  read: number[];
  write: number[];
  completed: number;
  errors: number;
}

const BATCH = 32;
const IO = 4096;
const tick = () => new Promise((r) => setImmediate(r));

async function measure(): Promise<AllocResult> {
  // What the responder answers with, built in place per batch (no allocation).
  const resp = new Uint8Array(BATCH * (HLEN.C2HData + IO));
  const rdv = new DataView(resp.buffer);
  let respLen = 0;
  // The host's sends: answer every capsule in the batch.
  const sink = (b: Uint8Array, release: () => void): void => {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let o = 0; o < b.length; ) {
      const type = dv.getUint8(o);
      const plen = dv.getUint32(o + 4, true);
      if (type === PduType.CapsuleCmd) {
        const cid = dv.getUint16(o + CH_SIZE + 2, true);
        const read = dv.getUint8(o + CH_SIZE) === 0x02;
        if (read) {
          writeCh(
            rdv,
            respLen,
            PduType.C2HData,
            PduFlag.LAST_PDU | PduFlag.SUCCESS,
            HLEN.C2HData,
            HLEN.C2HData,
            HLEN.C2HData + IO,
          );
          rdv.setUint16(respLen + DataOff.cccid, cid, true);
          rdv.setUint32(respLen + DataOff.datao, 0, true);
          rdv.setUint32(respLen + DataOff.datal, IO, true);
          respLen += HLEN.C2HData + IO;
        } else {
          writeCh(rdv, respLen, PduType.CapsuleResp, 0, HLEN.CapsuleResp, 0, HLEN.CapsuleResp);
          for (let i = CH_SIZE; i < HLEN.CapsuleResp; i += 4) rdv.setUint32(respLen + i, 0);
          rdv.setUint16(respLen + CH_SIZE + 12, cid, true);
          respLen += HLEN.CapsuleResp;
        }
      }
      o += plen;
    }
    release();
  };
  let completed = 0;
  let errors = 0;
  const done: Completion<null> = (_c, status) => {
    completed++;
    if (status !== 0) errors++;
  };
  const e = new TcpHostEngine(
    { qid: 1, depth: 64, inCapsuleData: 8192, maxTransfer: 131072 },
    { fatal: () => errors++, timedOut: () => {} },
  );
  const ic = e.begin(sink, null);
  const icr = new Uint8Array(HLEN.ICResp);
  encodeIcResp(new DataView(icr.buffer), 0, { cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 131072 });
  e.receive(icr, icr.length);
  await ic;
  const bufs = Array.from({ length: BATCH }, () => new Uint8Array(IO));
  const batch = (write: boolean): void => {
    for (let i = 0; i < BATCH; i++)
      if (write) e.write(1, i * 8, 8, bufs[i], done, null);
      else e.read(1, i * 8, 8, bufs[i], done, null);
    e.flush();
    const n = respLen;
    respLen = 0;
    e.receive(resp, n);
    e.processCompletions();
  };
  const bytesPerCommand = async (write: boolean): Promise<number[]> => {
    const samples: number[] = [];
    for (let attempt = 0; attempt < 20 && samples.length < 5; attempt++) {
      const before = v8.getHeapStatistics().used_heap_size;
      for (let i = 0; i < 20; i++) {
        batch(write);
        await tick();
      }
      const grew = v8.getHeapStatistics().used_heap_size - before;
      // A scavenge in the window shrinks the heap: drop that sample.
      if (grew > 0) samples.push(grew / (20 * BATCH));
    }
    return samples;
  };
  for (let i = 0; i < 300; i++) {
    batch(i % 2 === 0);
    await tick();
  }
  const read = await bytesPerCommand(false);
  const write = await bytesPerCommand(true);
  return { read, write, completed, errors };
}

parentPort!.postMessage(await measure());
