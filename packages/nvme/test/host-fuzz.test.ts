// A hostile target: after a valid ICResp it answers the host's first command with arbitrary bytes,
// then hangs up. The host qpair must fail cleanly (typed error, no exception out of the socket
// handler) and complete every outstanding command exactly once. The garbage waits for the command
// (not for a timer), so a slow host cannot see it before it has anything outstanding.

import net from 'node:net';
import { encodeIcResp, HLEN } from '@storkit/nvme-spec';
import { expect } from 'chai';
import fc from 'fast-check';
import { TcpHostQpair } from '../src/tcp/qpair.js';

async function hostileTarget(payload: Uint8Array[]): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      const ic = new Uint8Array(HLEN.ICResp);
      encodeIcResp(new DataView(ic.buffer), 0, { cpda: 0, hdgst: false, ddgst: false, maxh2cdata: 8192 });
      s.write(ic);
      s.once('data', () => {
        for (const p of payload) s.write(p);
        s.end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('nvme host: hostile targets', function () {
  this.timeout(60000);

  for (const socket of ['node', 'native'] as const)
    it(`arbitrary bytes after ICResp fail the qpair cleanly and complete outstanding commands once (${socket})`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 4 }),
          async (payload) => {
            const t = await hostileTarget(payload);
            const qp = new TcpHostQpair({
              traddr: '127.0.0.1',
              trsvcid: String(t.port),
              qid: 1,
              depth: 4,
              socket,
            });
            try {
              await qp.open();
              const calls: number[] = [];
              expect(qp.read(1, 0, 1, new Uint8Array(512), (_c, st) => calls.push(st), null)).to.equal(true);
              const until = Date.now() + 3000;
              while (!qp.failed && Date.now() < until) {
                await new Promise((r) => setTimeout(r, 2));
                qp.processCompletions();
              }
              qp.processCompletions();
              expect(qp.failed).to.not.equal(null);
              expect(qp.failed!.name).to.equal('HostQpairError');
              expect(calls).to.have.length(1);
              expect(qp.outstanding).to.equal(0);
            } finally {
              qp.close();
              await t.close();
            }
          },
        ),
        { numRuns: 40 },
      );
    });
});
