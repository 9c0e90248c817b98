import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import { IoatModel } from '../src/testing.js';

const IOAT = new URL('../src/index.js', import.meta.url).href;
const NATIVE = import.meta.resolve('@storkit/native');

// Each worker opens its own function of the same model, claims the channel and copies through it;
// the engines run concurrently in the model's worker, each channel owned by one thread.
const BODY = `
const { parentPort, workerData: d } = require('node:worker_threads');
(async () => {
  const { IoatChannel } = await import(d.ioat);
  const { DmaRegion, attachPciDevice } = await import(d.native);
  const ch = await IoatChannel.attach(attachPciDevice(d.share));
  ch.claim();
  const mem = DmaRegion.create(1 << 20, { hugepages: 'never' });
  let done = 0, bad = 0;
  for (let i = 0; i < d.ops; ) {
    const len = 1 + ((i * 7919) % 60000);
    const so = (i * 31) % 4096, doff = 512 * 1024 + ((i * 17) % 4096);
    for (let k = 0; k < len; k += 509) mem.bytes[so + k] = (k + i + d.seed) & 0xff;
    const expectByte = (k) => (k + i + d.seed) & 0xff;
    if (!ch.submitCopy(mem.bytes.subarray(doff), mem.bytes.subarray(so), len, () => {
      for (let k = 0; k < len; k += 509) if (mem.bytes[doff + k] !== expectByte(k)) bad++;
      done++;
    })) { ch.processEvents(); continue; }
    while (done <= i) ch.processEvents();
    i++;
  }
  await ch.detach();
  mem.close();
  parentPort.postMessage({ done, bad });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`;

describe('ioat: many threads, each with its own channel', function () {
  this.timeout(120_000);
  it('runs four channels from four workers at once, every copy intact', async () => {
    await using model = await IoatModel.start({ channels: 4, xfercap: 14 });
    // The owner turns bus mastering on; workers reach the functions through attachPciDevice.
    for (const d of model.devices) d.enableBusMaster();
    const results = await Promise.all(
      model.devices.map(
        (f, i) =>
          new Promise<{ done: number; bad: number; error?: string }>((resolve, reject) => {
            const w = new Worker(BODY, {
              eval: true,
              workerData: {
                ioat: IOAT,
                native: NATIVE,
                share: f.share(),
                ops: 150,
                seed: i * 11,
              },
            });
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    for (const r of results) {
      expect(r.error).to.equal(undefined);
      expect(r).to.deep.equal({ done: 150, bad: 0 });
    }
    for (let i = 0; i < 4; i++) expect(model.stats(i).descriptors).to.be.above(150);
  });
});
