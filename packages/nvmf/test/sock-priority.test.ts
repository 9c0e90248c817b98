// sock_priority: the reactors' native sockets take it at accept (SO_PRIORITY); node:net cannot set
// it, so that fallback refuses a non-zero value instead of ignoring it.
import net from 'node:net';

import { type SockConn, SockHost } from '@storkit/reactor';
import { createTestHarness } from '@storkit/reactor/testing';
import { expect } from 'chai';

import { NvmfTarget } from '../src/target.js';
import { freePort, NQN } from './helpers.js';

const addr = (port: number) => ({
  trtype: 'TCP',
  adrfam: 'IPv4',
  traddr: '127.0.0.1',
  trsvcid: String(port),
});

describe('nvmf: sock_priority', () => {
  it('sets SO_PRIORITY on every accepted native connection', async () => {
    const h = createTestHarness();
    h.setThread(0);
    const host = new SockHost();
    // Keep the connections the target accepts, to read their priority.
    const accepted: SockConn[] = [];
    const listen = host.listen.bind(host);
    host.listen = (o) =>
      listen({
        ...o,
        onAccept: (c) => {
          accepted.push(c);
          o.onAccept(c);
        },
      });
    const tgt = new NvmfTarget({ listen: { sockHost: host } });
    const client = new net.Socket();
    try {
      tgt.nvmf_create_transport({ trtype: 'TCP', sock_priority: 5 });
      tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
      const port = await freePort();
      await tgt.nvmf_subsystem_add_listener({ nqn: NQN, listen_address: addr(port) });
      client.connect(port, '127.0.0.1');
      const end = Date.now() + 3000;
      while (accepted.length === 0 && Date.now() < end) {
        h.pollOnce();
        await new Promise((r) => setImmediate(r));
      }
      expect(accepted).to.have.length(1);
      expect(accepted[0].priority).to.equal(5);
    } finally {
      client.destroy();
      await tgt.close();
      host.close();
      h.setThread(null);
      h.close();
    }
  });

  it('refuses values outside 0-6, and a non-zero value on node:net sockets', async () => {
    const tgt = new NvmfTarget();
    try {
      expect(() => tgt.nvmf_create_transport({ trtype: 'TCP', sock_priority: 7 })).to.throw(/sock_priority/);
      tgt.nvmf_create_transport({ trtype: 'TCP', sock_priority: 2 });
      tgt.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
      const e = await tgt
        .nvmf_subsystem_add_listener({ nqn: NQN, listen_address: addr(await freePort()) })
        .catch((x) => x);
      expect(e).to.be.instanceOf(Error);
      expect((e as Error).message).to.match(/sock_priority 2 needs native sockets/);
    } finally {
      await tgt.close();
    }
  });
});
