// The NVMe/TCP host engine's command timeouts, on the engine alone (a sink that never answers).
import { AdminOpcode, encodeIcResp, HLEN } from '@storkit/nvme-spec';
import { expect } from 'chai';

import { TcpHostEngine } from '../src/tcp/engine.js';

describe('nvme/tcp host engine: command timeouts', () => {
  it('an Asynchronous Event Request on the admin queue has no deadline (it waits for an event); a Keep Alive does', async () => {
    const timedOut: number[] = [];
    const e = new TcpHostEngine(
      { qid: 0, depth: 8, timeoutMs: 20 },
      { fatal: () => {}, timedOut: (_cid, opcode) => timedOut.push(opcode) },
    );
    // The target takes every PDU and answers nothing but the ICResp.
    const ic = e.begin((_b, release) => release(), null);
    const icr = new Uint8Array(HLEN.ICResp);
    encodeIcResp(new DataView(icr.buffer), 0, { cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 131072 });
    e.receive(icr, icr.length);
    await ic;
    expect(e.submit({ opcode: AdminOpcode.AsyncEventRequest }, () => {}, null)).to.equal(true);
    expect(e.submit({ opcode: AdminOpcode.KeepAlive }, () => {}, null)).to.equal(true);
    // The scan for overdue commands runs in processCompletions; the AER went first, so when the
    // Keep Alive is reported the AER is as overdue as it, had it a deadline.
    while (timedOut.length === 0) {
      e.processCompletions();
      await new Promise((r) => setTimeout(r, 5));
    }
    e.processCompletions();
    expect(timedOut).to.deep.equal([AdminOpcode.KeepAlive]);
  });
});
