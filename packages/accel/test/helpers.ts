import type { IoChannel } from '@storkit/reactor';
import { TestHarness } from '@storkit/reactor/testing';
import { accelResetForTests } from '../src/framework.js';
import {
  type AccelChannel,
  accelFinish,
  accelGetIoChannel,
  accelInitialize,
  accelStarted,
} from '../src/index.js';

/**
 * Stop a framework an earlier test file of this process left started (a malloc bdev starts it on
 * first use and nothing stops it), on a harness of its own, and drop its options and overrides.
 */
export async function accelStopIfStarted(): Promise<void> {
  if (accelStarted()) {
    const h = new TestHarness({ reactors: 1 });
    h.setThread(0);
    let done = false;
    void accelFinish().then(() => (done = true));
    for (let i = 0; !done; i++) {
      if (i > 100_000) throw new Error('the accel framework did not stop');
      h.pollOnce();
      await new Promise((r) => setImmediate(r));
    }
    h.setThread(null);
    h.close();
  }
  accelResetForTests();
}

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
