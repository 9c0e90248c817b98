import type { IoChannel } from '@storkit/reactor';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';
import {
  type BdevChannel,
  type BdevDesc,
  bdevClose,
  bdevGetIoChannel,
  bdevOpenExt,
  type IoStatus,
} from '../src/index.js';

export { pattern } from './fixtures/common.js';

export interface Done {
  status: IoStatus | null;
  n: number;
}

/** A completion recorder: pass `record` as cb and a Done as cbArg. */
export function record(status: IoStatus, d: Done): void {
  d.status = status;
  d.n++;
}

export function done(): Done {
  return { status: null, n: 0 };
}

const live: TestHarness[] = [];

export function harness(reactors = 1): TestHarness {
  const h = createTestHarness({ reactors });
  live.push(h);
  return h;
}

// A failed test must not leave its simulated reactors registered for the next test.
afterEach(() => {
  for (const h of live.splice(0)) {
    try {
      h.close();
    } catch {
      // Leaks were the failed test's own problem; it already failed.
    }
  }
});

export interface Opened {
  desc: BdevDesc;
  ch: IoChannel<BdevChannel>;
  events: string[];
  close(): void;
}

/** Open `name` on the current thread and get its channel; close() puts and closes. */
export function open(name: string, write = true): Opened {
  const events: string[] = [];
  const desc = bdevOpenExt(name, write, (t) => events.push(t));
  const ch = bdevGetIoChannel(desc);
  return {
    desc,
    ch,
    events,
    close() {
      ch.put();
      bdevClose(desc);
    },
  };
}

/** Poll until `pred` holds, advancing the fake clock by `stepUs` per round. */
export function until(h: TestHarness, pred: () => boolean, stepUs = 10, maxRounds = 1_000_000): void {
  for (let i = 0; i < maxRounds; i++) {
    if (pred()) return;
    h.pollOnce();
    h.advanceTime(stepUs);
  }
  throw new Error('condition not reached');
}

/** Submit one I/O through `submit(cb, arg)` and poll (advancing fake time) until it completes. */
export function run(h: TestHarness, submit: (cb: typeof record, d: Done) => number, stepUs = 10): IoStatus {
  const d = done();
  const rc = submit(record, d);
  if (rc !== 0) throw new Error(`submit returned ${rc}`);
  until(h, () => d.n > 0, stepUs);
  return d.status as IoStatus;
}
