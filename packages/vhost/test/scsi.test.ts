import { RamBackend } from '@storkit/block/testing';
import type { TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { DriverQueue, type DriverSegment } from '../src/driver.js';
import { VhostController, VhostScsiDevice, VhostUserFrontend } from '../src/index.js';
import { bits, Scsi } from '../src/spec.js';
import { harness, pattern, pumper, sockPath, until } from './helpers.js';

const DATA = 64 * 1024;
const RESP = 108;

/** A mock virtio-scsi driver: control, event and one request queue in its own shared memory. */
async function open(
  h: TestHarness,
  path: string,
): Promise<{ fe: VhostUserFrontend; qs: DriverQueue[]; mem: Uint8Array }> {
  const fe = VhostUserFrontend.connect(path, { memSize: 1 << 20, pump: pumper(h) });
  await fe.negotiate(bits(Scsi.Feature.Hotplug));
  const qs: DriverQueue[] = [];
  for (let i = 0; i < 3; i++) {
    const q = new DriverQueue(fe.memory.bytes, 0, i * 0x2000, 16);
    await fe.startQueue(i, 16, q.descAddr, q.availAddr, q.usedAddr);
    qs.push(q);
  }
  return { fe, qs, mem: fe.memory.bytes };
}

async function used(h: TestHarness, q: DriverQueue): Promise<[number, number]> {
  q.kick();
  let u: [number, number] | null = null;
  await until(
    h,
    () => {
      u = q.takeUsed();
      return u !== null;
    },
    'used entry',
  );
  return u as unknown as [number, number];
}

/** A command to `target` with `cdb`; data-out bytes or a data-in length. */
function command(
  mem: Uint8Array,
  target: number,
  cdb: number[],
  out: Uint8Array | null,
  inLen: number,
): DriverSegment[] {
  mem.fill(0, DATA, DATA + 0x3000);
  mem[DATA] = 1;
  mem[DATA + 1] = target;
  mem[DATA + 2] = 0x40;
  mem.set(cdb, DATA + 19);
  const segs: DriverSegment[] = [{ addr: DATA, len: 51, write: false }];
  if (out !== null) {
    mem.set(out, DATA + 0x1000);
    segs.push({ addr: DATA + 0x1000, len: out.length, write: false });
  }
  segs.push({ addr: DATA + 0x200, len: RESP, write: true });
  if (inLen > 0) segs.push({ addr: DATA + 0x2000, len: inLen, write: true });
  return segs;
}

describe('virtio-scsi device (mock driver)', () => {
  it('runs commands through the SCSI layer, answers TMFs, reports bad targets and hot add/remove events', async () => {
    const h = harness();
    const ram = new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 1024 });
    ram.data.set(pattern(4096, 5));
    const dev = new VhostScsiDevice({ name: 'scsi0' });
    dev.addTarget(0, ram);
    const path = sockPath('scsi');
    const ctrl = new VhostController({ name: 'scsi0', socketPath: path, device: dev });
    ctrl.start();
    try {
      const { fe, qs, mem } = await open(h, path);
      const [ctl, evq, rq] = qs;
      for (let i = 0; i < 4; i++) evq.add([{ addr: DATA + 0x8000 + 16 * i, len: 16, write: true }]);
      evq.kick();
      // INQUIRY
      rq.add(command(mem, 0, [0x12, 0, 0, 0, 96, 0], null, 96));
      let [, len] = await used(h, rq);
      expect(mem[DATA + 0x200 + 11]).to.equal(Scsi.R.Ok);
      expect(mem[DATA + 0x200 + 10]).to.equal(0); // GOOD
      expect(len).to.be.greaterThan(RESP);
      expect(mem[DATA + 0x2000] & 0x1f).to.equal(0); // direct-access block device
      // READ(10) LBA 2, one block
      rq.add(command(mem, 0, [0x28, 0, 0, 0, 0, 2, 0, 0, 1, 0], null, 512));
      [, len] = await used(h, rq);
      expect(len).to.equal(RESP + 512);
      expect(
        Buffer.from(mem.subarray(DATA + 0x2000, DATA + 0x2200)).equals(
          Buffer.from(ram.data.subarray(1024, 1536)),
        ),
      ).to.equal(true);
      // WRITE(10) LBA 3, one block
      const w = pattern(512, 77);
      rq.add(command(mem, 0, [0x2a, 0, 0, 0, 0, 3, 0, 0, 1, 0], w, 0));
      [, len] = await used(h, rq);
      expect(len).to.equal(RESP);
      expect(mem[DATA + 0x200 + 10]).to.equal(0);
      expect(Buffer.from(ram.data.subarray(1536, 2048)).equals(Buffer.from(w))).to.equal(true);
      // Absent target
      rq.add(command(mem, 5, [0x00, 0, 0, 0, 0, 0], null, 0));
      await used(h, rq);
      expect(mem[DATA + 0x200 + 11]).to.equal(Scsi.R.BadTarget);
      // Hostile: a response buffer too small for the response header, and a garbage LUN format.
      const short = command(mem, 0, [0x12, 0, 0, 0, 96, 0], null, 0);
      short[1] = { addr: DATA + 0x200, len: 20, write: true };
      rq.add(short);
      [, len] = await used(h, rq);
      expect(len).to.equal(0);
      const wild = command(mem, 0, [0x00, 0, 0, 0, 0, 0], null, 0);
      mem[DATA] = 0x7f;
      rq.add(wild);
      await used(h, rq);
      expect(mem[DATA + 0x200 + 11]).to.equal(Scsi.R.BadTarget);
      // A data-out buffer outside memory: the chain is refused (length 0), the queue goes on.
      const bad = command(mem, 0, [0x2a, 0, 0, 0, 0, 3, 0, 0, 1, 0], w, 0);
      bad[1] = { addr: 2 ** 40, len: 512, write: false };
      rq.add(bad);
      [, len] = await used(h, rq);
      expect(len).to.equal(0);
      // Hot add: TRANSPORT_RESET / RESCAN for target 1
      dev.addTarget(1, new RamBackend({ name: 'Malloc1', blockSize: 512, numBlocks: 64 }));
      await used(h, evq);
      const ev = new DataView(mem.buffer, mem.byteOffset + DATA + 0x8000, 16);
      expect(ev.getUint32(0, true)).to.equal(Scsi.E.TransportReset);
      expect([mem[DATA + 0x8004], mem[DATA + 0x8005]]).to.deep.equal([1, 1]);
      expect(ev.getUint32(12, true)).to.equal(Scsi.Evt.Rescan);
      // TMF: logical unit reset on target 1
      mem.fill(0, DATA + 0x4000, DATA + 0x4100);
      new DataView(mem.buffer, mem.byteOffset).setUint32(DATA + 0x4000, Scsi.T.Tmf, true);
      new DataView(mem.buffer, mem.byteOffset).setUint32(DATA + 0x4004, Scsi.Tmf.LogicalUnitReset, true);
      mem[DATA + 0x4008] = 1;
      mem[DATA + 0x4009] = 1;
      mem[DATA + 0x4080] = 0xff;
      ctl.add([
        { addr: DATA + 0x4000, len: 24, write: false },
        { addr: DATA + 0x4080, len: 1, write: true },
      ]);
      await used(h, ctl);
      expect(mem[DATA + 0x4080]).to.equal(Scsi.R.Ok);
      // Hot remove
      dev.removeTarget(1);
      await used(h, evq);
      expect(new DataView(mem.buffer, mem.byteOffset + DATA + 0x8010, 16).getUint32(12, true)).to.equal(
        Scsi.Evt.Removed,
      );
      fe.close();
      await until(h, () => !ctrl.connected, 'disconnect');
    } finally {
      ctrl.close();
      h.close();
    }
  });
});
