// The target's C2HData data digests through the accel framework when an engine has crc32c: the
// PDUs wait for the engine's callback and go out with its digests. The engine here is a module of
// the test's own that completes its tasks a poll later (as a DMA engine or a pool would); the
// storkit host checks every digest it receives.
import {
  ACCEL_OPC,
  type AccelChannel,
  accelAssignOpc,
  accelFinish,
  accelGetIoChannel,
  accelSettingsDefault,
  accelSettingsInstall,
  accelStartDefault,
  accelStarted,
} from '@storkit/accel';
import { type AccelModule, type AccelTask, accelModuleRegister, accelModules } from '@storkit/accel/module';
import { crc32cRange } from '@storkit/native';
import { NvmeController, type TcpHostQpair } from '@storkit/nvme';
import type { IoChannel } from '@storkit/reactor';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { pollUntil, startTarget } from './helpers.js';

const waiting: AccelTask[] = [];
let completed = 0;
/** Enabled for this test only: other test files of the process see the usual modules. */
let active = false;
const laterCrc: AccelModule<null> = {
  name: 'test_later_crc',
  priority: 0,
  supportsOpcode: (op) => op === ACCEL_OPC.CRC32C,
  enabled: () => active,
  createChannel: () => null,
  submit(_mc, t) {
    waiting.push(t);
    return 0;
  },
  poll() {
    const n = waiting.length;
    for (const t of waiting.splice(0)) {
      let crc = t.seed;
      if (t.iovs === null) crc = crc32cRange(t.src, t.srcOff, t.srcOff + t.len, crc);
      else
        for (let i = 0; i < t.iovs.count; i++)
          crc = crc32cRange(t.iovs.bufs[i], t.iovs.offs[i], t.iovs.offs[i] + t.iovs.lens[i], crc);
      completed++;
      t.complete(0, crc);
    }
    return n;
  },
};

/** Thread 0 of a one-reactor harness with the framework started (crc32c to `crc` if given). */
async function withAccel(
  crc: string | null,
  body: (io: IoChannel<AccelChannel>, h: TestHarness) => Promise<void>,
): Promise<void> {
  if (!accelModules().includes(laterCrc as AccelModule)) accelModuleRegister(laterCrc as AccelModule);
  const h = createTestHarness({ reactors: 1 });
  h.setThread(0);
  if (accelStarted()) {
    let done = false;
    void accelFinish().then(() => (done = true));
    await pollUntil(
      () => h.pollOnce(),
      () => done,
    );
  }
  active = true;
  if (crc !== null) accelAssignOpc('crc32c', crc);
  accelStartDefault();
  const io = accelGetIoChannel();
  // The engine's completions come from the accel channel's poller: poll the harness meanwhile
  // (the admin queue's Identify data has digests too).
  let polling = true;
  const pump = (): void => {
    if (!polling) return;
    h.setThread(0);
    h.pollOnce();
    h.setThread(null);
    setImmediate(pump);
  };
  setImmediate(pump);
  try {
    await body(io, h);
  } finally {
    polling = false;
    h.setThread(0);
    io.put();
    let done = false;
    void accelFinish().then(() => (done = true));
    await pollUntil(
      () => h.pollOnce(),
      () => done,
    );
    accelSettingsInstall(accelSettingsDefault());
    active = false;
    h.setThread(null);
    h.close();
  }
}

async function io(
  qp: TcpHostQpair,
  write: boolean,
  lba: number,
  nlb: number,
  buf: Uint8Array,
): Promise<number> {
  let st = -1;
  const cb = (_c: unknown, s: number): void => {
    st = s;
  };
  expect(write ? qp.write(1, lba, nlb, buf, cb, null) : qp.read(1, lba, nlb, buf, cb, null)).to.equal(true);
  await pollUntil(
    () => qp.processCompletions(),
    () => st !== -1,
  );
  return st;
}

describe('nvmf: data digests through an accel engine', function () {
  this.timeout(30_000);

  it('C2HData PDUs (one per command and several) wait for the engine; the host verifies every digest', async () => {
    await withAccel('test_later_crc', async (ch) => {
      // io_unit_size 8 KiB: a 64 KiB read leaves as eight C2HData PDUs; 32 KiB from the buffer itself.
      const f = await startTarget({ io_unit_size: 8192 }, { blocks: 4096, accel: ch.ctx });
      const c = await NvmeController.connect(f.trid, { ddgst: true });
      try {
        const qp = (await c.allocIoQpair({ depth: 8 })) as TcpHostQpair;
        expect(qp.ddgst).to.equal(true);
        for (let i = 0; i < f.ram.data.length; i++) f.ram.data[i] = (i * 7 + (i >> 9)) & 0xff;
        for (const nlb of [8, 64, 128, 17]) {
          const back = new Uint8Array(nlb * 512);
          expect(await io(qp, false, 33, nlb, back), `read of ${nlb} blocks`).to.equal(0);
          expect(Buffer.compare(back, f.ram.data.subarray(33 * 512, (33 + nlb) * 512))).to.equal(0);
        }
        expect(completed).to.be.greaterThan(4);
        const offloaded = [...f.tgt.qpairs].reduce((n, q) => n + q.stats.digestsOffloaded, 0);
        expect(offloaded).to.be.at.least(4);
        // Inbound data is verified as it arrives: the engine cannot do that, the CPU does.
        const data = new Uint8Array(64 * 512).fill(0x5a);
        expect(await io(qp, true, 200, 64, data)).to.equal(0);
        expect(Buffer.compare(data, f.ram.data.subarray(200 * 512, 264 * 512))).to.equal(0);
      } finally {
        await c.close();
        await f.tgt.close();
      }
    });
  });

  it('H2CData and in-capsule data digests are verified through the channel (software module)', async () => {
    await withAccel(null, async (ch) => {
      const f = await startTarget(
        { io_unit_size: 8192, in_capsule_data_size: 4096 },
        { blocks: 4096, accel: ch.ctx },
      );
      const c = await NvmeController.connect(f.trid, { ddgst: true });
      try {
        const qp = (await c.allocIoQpair({ depth: 8 })) as TcpHostQpair;
        const crcs = (): number => ch.ctx.stats.executed[ACCEL_OPC.CRC32C];
        const before = crcs();
        // 4 KiB in the capsule; 64 KiB as R2T'd H2CData PDUs of 8 KiB.
        for (const nlb of [8, 128]) {
          const data = new Uint8Array(nlb * 512);
          for (let i = 0; i < data.length; i++) data[i] = (i * 13 + nlb) & 0xff;
          expect(await io(qp, true, 40, nlb, data), `write of ${nlb} blocks`).to.equal(0);
          expect(Buffer.compare(data, f.ram.data.subarray(40 * 512, (40 + nlb) * 512))).to.equal(0);
        }
        // One in-capsule PDU and at least eight H2CData PDUs, each verified through accel.
        expect(crcs() - before).to.be.at.least(9);
        expect([...f.tgt.qpairs].reduce((n, q) => n + q.stats.digestErrors, 0)).to.equal(0);
      } finally {
        await c.close();
        await f.tgt.close();
      }
    });
  });
});
