import { PerformanceObserver } from 'node:perf_hooks';

import { expect } from 'chai';

import { codec, defineHandler } from '../src/index.js';
import { createMeshMemory, MeshEndpoint, Reactor } from '../src/module.js';
import { createTestHarness, ManualClock } from '../src/testing.js';

describe('steady-state message paths allocate nothing', () => {
  it('5 M ring messages (u32 and struct payloads) and 320 k same-thread messages run without a GC', async () => {
    const mem = createMeshMemory(2, 1024);
    const a = new MeshEndpoint(mem, 0);
    const b = new MeshEndpoint(mem, 1);
    const rb = new Reactor({ index: 1, clock: new ManualClock(), allocThreadId: () => b.allocThreadId() });
    b.attach(rb);
    rb.createThread('rx', 2);
    let got = 0;
    const S = codec.struct('test.alloc.s', { x: 'u32', y: 'f64' });
    const hu = defineHandler('test.alloc.u32', codec.u32, (v) => {
      got += v;
    });
    const hs = defineHandler('test.alloc.struct', S, (v) => {
      got += v.x;
    });
    const to = { id: 2, reactor: 1 };
    const msg = { x: 1, y: 2.5 };
    const h = createTestHarness();
    const t = h.threads[0];
    const inc = (v: number) => {
      got += v;
    };
    const run = (n: number) => {
      for (let k = 0; k < n; k++) {
        for (let i = 0; i < 256; i++) {
          a.send(to, hu, i);
          a.send(to, hs, msg);
        }
        a.flush();
        rb.poll(0);
        rb.poll(0);
        for (let i = 0; i < 32; i++) t.sendMsg(inc, i);
        t.poll(0);
      }
    };
    try {
      run(2000); // warm up: queues at their steady size, code optimised
      let gcs = 0;
      const obs = new PerformanceObserver((l) => {
        gcs += l.getEntries().length;
      });
      obs.observe({ entryTypes: ['gc'] });
      await new Promise((r) => setTimeout(r, 20));
      gcs = 0;
      const before = process.memoryUsage().heapUsed;
      run(10_000);
      const after = process.memoryUsage().heapUsed;
      await new Promise((r) => setTimeout(r, 20));
      obs.disconnect();
      // 5 M messages allocating even 16 bytes each would be 80 MB: several scavenges.
      expect(gcs).to.be.at.most(1);
      expect(after - before).to.be.lessThan(1 << 20);
      expect(got).to.be.greaterThan(0);
    } finally {
      rb.close();
      h.close();
    }
  });
});
