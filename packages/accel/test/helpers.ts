import type { IoChannel } from '@storkit/reactor';
import { TestHarness } from '@storkit/reactor/testing';
import { accelResetForTests } from '../src/framework.js';
import { type AccelChannel, accelFinish, accelGetIoChannel, accelInitialize } from '../src/index.js';

/** A harness with the framework started and thread i's channel to it; close() undoes all. */
export class AccelHarness {
  readonly h: TestHarness;
  readonly channels: IoChannel<AccelChannel>[] = [];

  private constructor(h: TestHarness) {
    this.h = h;
  }

  static async start(reactors = 1): Promise<AccelHarness> {
    const h = new TestHarness({ reactors });
    await accelInitialize();
    const a = new AccelHarness(h);
    for (let i = 0; i < h.threads.length; i++) {
      h.setThread(i);
      a.channels.push(accelGetIoChannel());
    }
    h.setThread(0);
    return a;
  }

  ch(i = 0): AccelChannel {
    this.h.setThread(i);
    return this.channels[i].ctx;
  }

  /** Poll until `done()` (for engines in other workers: real time passes). */
  async until(done: () => boolean, ms = 10_000): Promise<void> {
    const end = performance.now() + ms;
    while (!done()) {
      this.h.pollOnce();
      if (performance.now() > end) throw new Error('timed out');
      await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.channels.length; i++) {
      this.h.setThread(i);
      this.channels[i].put();
    }
    this.h.setThread(0);
    const p = accelFinish();
    this.h.pollThreads();
    await p;
    this.h.setThread(null);
    this.h.close();
    accelResetForTests();
  }
}
