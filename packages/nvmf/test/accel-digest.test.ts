// The target's C2HData data digests through the accel framework when an engine has crc32c: the
// PDUs wait for the engine's callback and go out with its digests. The engine here is a module of
// the test's own that completes its tasks a poll later (as a DMA engine or a pool would); the
// storkit host checks every digest it receives.
import {
  ACCEL_OPC,
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
import { createTestHarness } from '@storkit/reactor/testing';
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

describe('nvmf: data digests through an accel engine', function () {
  this.timeout(30_000);

  it('C2HData PDUs (one per command and several) wait for the engine; the host verifies every digest', async () => {
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
    accelAssignOpc('crc32c', 'test_later_crc');
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
    // io_unit_size 8 KiB: a 64 KiB read leaves as eight C2HData PDUs; 32 KiB from the buffer itself.
    const f = await startTarget({ io_unit_size: 8192 }, { blocks: 4096, accel: io.ctx });
    const c = await NvmeController.connect(f.trid, { ddgst: true });
    try {
      const qp = (await c.allocIoQpair({ depth: 8 })) as TcpHostQpair;
      expect(qp.ddgst).to.equal(true);
      for (let i = 0; i < f.ram.data.length; i++) f.ram.data[i] = (i * 7 + (i >> 9)) & 0xff;
      for (const nlb of [8, 64, 128, 17]) {
        const back = new Uint8Array(nlb * 512);
        let st = -1;
        expect(qp.read(1, 33, nlb, back, (_c, s) => (st = s), null)).to.equal(true);
        await pollUntil(
          () => qp.processCompletions(),
          () => st !== -1,
        );
        expect(st, `read of ${nlb} blocks`).to.equal(0);
        expect(Buffer.compare(back, f.ram.data.subarray(33 * 512, (33 + nlb) * 512))).to.equal(0);
      }
      expect(completed).to.be.greaterThan(4);
      const offloaded = [...f.tgt.qpairs].reduce((n, q) => n + q.stats.digestsOffloaded, 0);
      expect(offloaded).to.be.at.least(4);
    } finally {
      await c.close();
      await f.tgt.close();
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
  });
});
