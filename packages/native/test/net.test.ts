import { once } from 'node:events';
import { connect, createServer } from 'node:net';

import { expect } from 'chai';

import { closeFd, NativeError, reuseportListen } from '../src/index.js';
import { exited, nextMessage, startWorker } from './workers.js';

// A worker that makes its own SO_REUSEPORT socket on the port, serves it with net, and answers
// each connection with its id; it reports how many it accepted when told to stop.
const WORKER = `
const net = require('node:net');
const l = n.reuseportListen('127.0.0.1', data.port);
let accepted = 0;
const srv = net.createServer((s) => { accepted++; s.end(String(data.id)); });
srv.listen({ fd: l.fd }, () => port.postMessage({ ready: l.port }));
port.on('message', () => srv.close(() => { port.postMessage({ accepted }); port.close(); }));
`;

function ask(p: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(p, '127.0.0.1');
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
    });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

describe('reuseportListen', () => {
  it('lets two workers accept on one port; the kernel spreads connections', async () => {
    // Pick a free port with a throwaway member of a group, then start two workers on it.
    const probe = reuseportListen('127.0.0.1', 0);
    const p = probe.port;
    const ws = [0, 1].map((id) => startWorker(WORKER, { id, port: p }));
    // Listen to both at once: a worker's message is dropped if nobody listens when it arrives.
    const ready = await Promise.all(ws.map((w) => nextMessage<{ ready: number }>(w)));
    for (const r of ready) expect(r.ready).to.equal(p);
    closeFd(probe.fd); // its queued-but-unaccepted connections would be lost: none yet
    const seen = new Map<string, number>();
    for (let i = 0; i < 64; i++) {
      const who = await ask(p);
      seen.set(who, (seen.get(who) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).to.deep.equal(['0', '1']); // both workers accepted some
    let total = 0;
    for (const w of ws) {
      w.postMessage('stop');
      total += (await nextMessage<{ accepted: number }>(w)).accepted;
      await exited(w);
    }
    expect(total).to.equal(64);
  });

  it('a plain net listener cannot join the group; bad hosts are EINVAL', async () => {
    const l = reuseportListen('127.0.0.1', 0);
    const srv = createServer();
    srv.listen(l.port, '127.0.0.1');
    const [err] = (await once(srv, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).to.equal('EADDRINUSE');
    closeFd(l.fd);
    expect(() => reuseportListen('localhost', 0))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });
});
