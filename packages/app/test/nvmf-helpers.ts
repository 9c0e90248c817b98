// Helpers for the app's NVMe/TCP tests.
import net from 'node:net';

import type { HostQpair } from '@storkit/nvme';
import { expect } from 'chai';

export const NQN = 'nqn.2016-06.io.storkit:cnode1';

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Run one I/O to completion on a qpair; resolves with its status. */
export async function io(
  qp: HostQpair,
  submit: (cb: (x: null, st: number) => void) => boolean,
): Promise<number> {
  let st = -1;
  expect(submit((_x, s) => (st = s))).to.equal(true);
  const until = Date.now() + 10000;
  while (st === -1) {
    if (Date.now() > until) throw new Error('I/O timed out');
    await new Promise((r) => setImmediate(r));
    qp.processCompletions();
  }
  return st;
}
