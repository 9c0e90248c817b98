// What the in-process vhost benchmarks share: a reactor on this thread whose fake clock keeps up
// with the wall clock (the controller's pollers run on real time), and the loop that polls it.
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';

/** One test-harness reactor; pump() advances its clock by the wall time since the last call and polls once. */
export function wallClockReactor(): { h: TestHarness; pump: () => void } {
  const h = createTestHarness({ reactors: 1 });
  let last = performance.now();
  const pump = () => {
    const now = performance.now();
    h.advanceTime(Math.max(1, Math.round((now - last) * 1000)));
    last = now;
    h.pollOnce();
  };
  return { h, pump };
}

/**
 * Pump 8 rounds per event-loop turn (the loop's own I/O still runs) for `seconds`, then call
 * `stop()` (no new I/O) and keep pumping until `drained()`. Resolves to the seconds it took.
 */
export function pumpFor(
  pump: () => void,
  seconds: number,
  stop: () => void,
  drained: () => boolean,
): Promise<number> {
  const t0 = performance.now();
  return new Promise<number>((resolve) => {
    let stopped = false;
    const tick = () => {
      for (let k = 0; k < 8; k++) pump();
      if (!stopped && performance.now() - t0 >= seconds * 1000) {
        stopped = true;
        stop();
      }
      if (stopped && drained()) resolve((performance.now() - t0) / 1000);
      else setImmediate(tick);
    };
    tick();
  });
}
