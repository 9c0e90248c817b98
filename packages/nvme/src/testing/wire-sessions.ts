// The NVMe/TCP sessions the Wireshark checks capture (this package's and the app-hosted target's).
import net from 'node:net';
import {
  CH_SIZE,
  encodeIcReq,
  HLEN,
  PduFlag,
  PduType,
  putHeaderDigest,
  SglId,
  sqeInit,
  sqeSetSgl,
  writeCh,
} from '@storkit/nvme-spec';
import { NvmeController } from '../host/controller.js';

/** Poll until `pred` holds (or fail after `ms`). */
async function pollUntil(poll: () => void, pred: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error('timed out polling');
    await new Promise((r) => setImmediate(r));
    poll();
  }
}

/** Connect, identify, in-capsule and R2T writes, multi-PDU reads: the session every check captures. */
export async function session(trid: string, digests: boolean): Promise<void> {
  const c = await NvmeController.connect(trid, { hdgst: digests, ddgst: digests });
  try {
    await c.identifyNamespace(1);
    await c.activeNamespaces();
    const qp = await c.allocIoQpair({ depth: 8 });
    let n = 0;
    const done = (): void => {
      n++;
    };
    qp.write(1, 0, 8, new Uint8Array(4096).fill(1), done, null); // in-capsule
    qp.write(1, 8, 128, new Uint8Array(65536).fill(2), done, null); // R2T, several H2CData
    qp.read(1, 0, 136, new Uint8Array(136 * 512), done, null); // several C2HData
    qp.writeZeroes(1, 200, 8, done, null);
    await pollUntil(
      () => qp.processCompletions(),
      () => n === 4,
    );
    await c.freeIoQpair(qp);
  } finally {
    await c.close();
  }
}

// One ICReq, then a capsule whose header digest is wrong.
export async function badDigestSession(port: number): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  const ic = new Uint8Array(HLEN.ICReq);
  encodeIcReq(new DataView(ic.buffer), 0, { hpda: 0, hdgst: true, ddgst: false, maxr2t: 1 });
  s.write(ic);
  await new Promise((r) => setTimeout(r, 50));
  const b = new Uint8Array(HLEN.CapsuleCmd + 4);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.CapsuleCmd, PduFlag.HDGSTF, HLEN.CapsuleCmd, 0, b.length);
  sqeInit(dv, CH_SIZE, 0x06, 0x40, 1, 0);
  sqeSetSgl(dv, CH_SIZE, 0, 0, SglId.TransportDataBlock);
  putHeaderDigest(b, dv, 0, HLEN.CapsuleCmd);
  b[HLEN.CapsuleCmd] ^= 0xff;
  s.write(b);
  // Read (and drop) the TermReq so the close that follows it is seen.
  s.resume();
  await new Promise((r) => s.once('close', r));
}
