// The NVMe/TCP host engine's command timeouts, on the engine alone (a sink that never answers).
import { AdminOpcode, encodeIcResp, HLEN, IoOpcode, PduType, writeCh } from '@storkit/nvme-spec';
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

describe('nvme/tcp host engine: a read answered before its data', () => {
  it('a success CapsuleResp for a read whose C2HData did not all come fails the qpair; the read never completes with success', async () => {
    const fatal: Error[] = [];
    const done: number[] = [];
    const e = new TcpHostEngine(
      { qid: 1, depth: 8, timeoutMs: 0 },
      { fatal: (err) => fatal.push(err), timedOut: () => {} },
    );
    const ic = e.begin((_b, release) => release(), null);
    const icr = new Uint8Array(HLEN.ICResp);
    encodeIcResp(new DataView(icr.buffer), 0, { cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 131072 });
    e.receive(icr, icr.length);
    await ic;
    const buf = new Uint8Array(4096).fill(0xee);
    expect(
      e.submit({ opcode: IoOpcode.Read, nsid: 1, cdw12: 7, buf }, (_c, st) => done.push(st), null),
    ).to.equal(true);
    // The target answers CID 0 (the first command's) with success and no data at all.
    const resp = new Uint8Array(HLEN.CapsuleResp);
    const dv = new DataView(resp.buffer);
    writeCh(dv, 0, PduType.CapsuleResp, 0, HLEN.CapsuleResp, 0, HLEN.CapsuleResp);
    dv.setUint16(8 + 12, 0, true);
    e.receive(resp, resp.length);
    // The fatal error is reported from a microtask; without the check the read completes instead.
    for (let i = 0; i < 200 && fatal.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    e.processCompletions();
    expect(
      done.filter((st) => st === 0),
      'the read completed with success',
    ).to.deep.equal([]);
    expect(fatal).to.have.length(1);
    expect(fatal[0].message).to.match(/before|after 0 of its 4096 bytes/);
    e.processCompletions();
    expect(done.filter((st) => st === 0)).to.deep.equal([]);
  });
});
