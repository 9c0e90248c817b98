// Test helpers shared by the host's tests against foreign targets (the kernel's, SPDK's).
import type { Completion, HostQpair } from '../src/index.js';

export interface Done {
  status: number;
}

/**
 * Submit (retrying while the queue is full), then poll until the callback ran; its status. Gives up
 * after `seconds` (a target that stopped answering, not a slow one).
 */
export async function io(
  qp: HostQpair,
  submit: (cb: Completion<Done>, d: Done) => boolean,
  seconds: number,
): Promise<number> {
  const d: Done = { status: -1 };
  const cb: Completion<Done> = (x, st) => {
    x.status = st;
  };
  const until = Date.now() + seconds * 1000;
  while (!submit(cb, d)) {
    if (Date.now() > until) throw new Error(`queue full for ${seconds} s`);
    qp.processCompletions();
    await new Promise((r) => setImmediate(r));
  }
  while (d.status === -1) {
    if (Date.now() > until) throw new Error(`no completion within ${seconds} s`);
    await new Promise((r) => setImmediate(r));
    qp.processCompletions();
  }
  return d.status;
}
