// What the PCIe specs (host and guest) share: one command submitted and polled to its end.
import type { HostQpair } from '../src/index.js';

/** Submit one command and poll until it completes; resolves with its status. */
export function once1(
  qp: HostQpair,
  submit: (cb: (c: null, s: number, dw0: number) => void) => boolean,
): Promise<number> {
  return new Promise((resolve, reject) => {
    if (!submit((_c, s) => resolve(s))) reject(new Error('queue full'));
    const loop = (): void => {
      qp.processCompletions();
      if (qp.outstanding > 0) setImmediate(loop);
    };
    setImmediate(loop);
  });
}
