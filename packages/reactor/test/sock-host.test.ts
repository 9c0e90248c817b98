import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

import { expect } from 'chai';

import { type SockConn, SockHost } from '../src/index.js';
import { createTestHarness, type TestHarness } from '../src/testing.js';

/** Poll the harness (yielding to node:net peers between rounds) until `pred` or 3 s. */
async function until(h: TestHarness, pred: () => boolean): Promise<void> {
  const end = Date.now() + 3000;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met within 3 s');
    h.pollOnce();
    await new Promise((r) => setImmediate(r));
  }
}

describe('SockHost (harness)', () => {
  let h: TestHarness;
  let host: SockHost;
  const clients: Socket[] = [];
  beforeEach(() => {
    h = createTestHarness();
    h.setThread(0);
    host = new SockHost({ rxBuffer: 1024 });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    h.setThread(0);
    host.close();
    h.setThread(null);
    h.close();
  });

  async function accept(): Promise<{
    conn: SockConn;
    client: Socket;
    data: number[];
    closed: () => boolean;
  }> {
    let conn: SockConn | null = null;
    const data: number[] = [];
    let closed = false;
    const l = host.listen({
      host: '127.0.0.1',
      port: 0,
      onAccept: (c) => {
        conn = c;
        c.handler = {
          onData: (n) => data.push(...c.rx.subarray(0, n)),
          onClose: () => {
            closed = true;
          },
        };
      },
    });
    const client = connect(l.port, '127.0.0.1');
    clients.push(client);
    await until(h, () => conn !== null);
    return { conn: conn!, client, data, closed: () => closed };
  }

  it('holds buffers the kernel did not take, sends them in order on EPOLLOUT, releases each once', async () => {
    const { conn, client } = await accept();
    client.pause();
    const bufs = Array.from({ length: 16 }, (_, i) => new Uint8Array(1 << 20).fill(i + 1));
    const released: number[] = [];
    for (const [i, b] of bufs.entries()) conn.write(b, () => released.push(i));
    // 16 MiB cannot fit in loopback socket buffers while the peer does not read.
    expect(conn.txPending).to.be.greaterThan(0);
    expect(released.length).to.be.lessThan(16);
    let got = 0;
    let bad = -1;
    client.on('data', (d: Buffer) => {
      for (let k = 0; k < d.length; k++) {
        const want = Math.floor((got + k) / (1 << 20)) + 1;
        if (d[k] !== want && bad < 0) bad = got + k;
      }
      got += d.length;
    });
    client.resume();
    await until(h, () => got === 16 << 20);
    expect(bad).to.equal(-1);
    expect(released).to.deep.equal([...Array(16).keys()]);
    expect(conn.txPending).to.equal(0);
    expect(conn.bytesOut).to.equal(16 << 20);
  });

  it('queue holds writes until flushed; close flushes them first, then onClose once', async () => {
    const { conn, client, closed } = await accept();
    const enc = new TextEncoder();
    let released = 0;
    for (const w of ['one ', 'two ', 'three']) conn.queue(enc.encode(w), () => released++);
    expect(released).to.equal(0); // nothing leaves before flush
    let text = '';
    client.on('data', (d: Buffer) => {
      text += d.toString();
    });
    conn.close(); // flushes first
    const ended = once(client, 'end');
    await until(h, () => closed());
    await ended;
    expect(text).to.equal('one two three');
    expect(released).to.equal(3);
    expect(host.connections).to.equal(0);
  });

  it("sets and reads a connection's SO_PRIORITY", async () => {
    const { conn } = await accept();
    expect(conn.priority).to.equal(0);
    conn.priority = 6;
    expect(conn.priority).to.equal(6);
  });

  it('reads into the fixed buffer in pieces no larger than it; end of stream closes', async () => {
    const { client, data, closed } = await accept();
    const big = new Uint8Array(10_000).map((_, i) => i & 0xff);
    client.end(big);
    await until(h, () => closed());
    expect(data.length).to.equal(big.length);
    expect(data.every((v, i) => v === (i & 0xff))).to.equal(true);
  });

  it('a reset connection is reported once and its queued buffers are released', async () => {
    const { conn, client, closed } = await accept();
    client.pause();
    let released = 0;
    for (let i = 0; i < 16; i++) conn.write(new Uint8Array(1 << 20), () => released++);
    client.resetAndDestroy();
    await until(h, () => closed());
    expect(released).to.equal(16);
    conn.write(new Uint8Array(1), () => released++); // after the end: released at once
    expect(released).to.equal(17);
  });
});

describe('SockHost: a connection moves to another host (detach, adopt)', () => {
  let a: SockHost;
  let b: SockHost;
  const clients: Socket[] = [];
  beforeEach(() => {
    a = SockHost.ownerPolled({ rxBuffer: 1024 });
    b = SockHost.ownerPolled({ rxBuffer: 1024 });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
    a.close();
    b.close();
  });

  async function spin(pred: () => boolean): Promise<void> {
    const end = Date.now() + 3000;
    while (!pred()) {
      if (Date.now() > end) throw new Error('condition not met within 3 s');
      a.poll();
      b.poll();
      await new Promise((r) => setImmediate(r));
    }
  }

  it('detached from inside onData, the fd is adopted by the other host and keeps its stream; the first is not told', async () => {
    let fd = -1;
    let firstBytes: number[] = [];
    let closedOnA = 0;
    const l = a.listen({
      host: '127.0.0.1',
      port: 0,
      onAccept: (c) => {
        c.handler = {
          onData: (n) => {
            firstBytes = [...c.rx.subarray(0, n)];
            fd = a.detach(c); // the read loop must stop here: the fd is b's from now on
          },
          onClose: () => closedOnA++,
        };
      },
    });
    const client = connect(l.port, '127.0.0.1');
    clients.push(client);
    client.write(Uint8Array.of(1, 2, 3));
    await spin(() => fd >= 0);
    expect(firstBytes).to.deep.equal([1, 2, 3]);
    expect(a.connections).to.equal(0);
    const got: number[] = [];
    let closedOnB = 0;
    const moved = b.adopt(fd, (c) => {
      c.handler = { onData: (n) => got.push(...c.rx.subarray(0, n)), onClose: () => closedOnB++ };
    });
    expect(b.connections).to.equal(1);
    client.write(Uint8Array.of(4, 5));
    await spin(() => got.length === 2);
    expect(got).to.deep.equal([4, 5]);
    const seen: number[] = [];
    client.on('data', (d: Buffer) => seen.push(...d));
    moved.write(Uint8Array.of(6), () => {});
    await spin(() => seen.length === 1);
    expect(seen).to.deep.equal([6]);
    client.end();
    await spin(() => closedOnB === 1);
    expect(closedOnA).to.equal(0);
    expect(b.connections).to.equal(0);
  });

  it('refuses to detach a connection with sends queued, and adopting a closed fd fails without leaking', async () => {
    let conn: SockConn | null = null;
    const l = a.listen({
      host: '127.0.0.1',
      port: 0,
      onAccept: (c) => {
        conn = c;
        c.handler = { onData: () => {}, onClose: () => {} };
      },
    });
    const client = connect(l.port, '127.0.0.1');
    clients.push(client);
    await spin(() => conn !== null);
    conn!.queue(Uint8Array.of(1), () => {});
    expect(() => a.detach(conn!))
      .to.throw()
      .with.property('code', 'EBUSY');
    conn!.flush();
    expect(() => b.adopt(1 << 20, () => {})).to.throw();
    expect(b.connections).to.equal(0);
  });
});

describe('SockHost: outbound connects, owner-polled', () => {
  let host: SockHost;
  let server: Server;
  const peers: Socket[] = [];
  beforeEach(async () => {
    host = SockHost.ownerPolled({ rxBuffer: 1024 });
    server = createServer((s) => peers.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  afterEach(async () => {
    for (const s of peers.splice(0)) s.destroy();
    host.close();
    await new Promise((r) => server.close(r));
  });

  /** Poll by hand (the owner's spin loop), yielding to node:net peers, until `pred` or 3 s. */
  async function spin(pred: () => boolean): Promise<void> {
    const end = Date.now() + 3000;
    while (!pred()) {
      if (Date.now() > end) throw new Error('condition not met within 3 s');
      host.poll();
      await new Promise((r) => setImmediate(r));
    }
  }

  it('needs no reactor thread, and only its owner polls it', () => {
    expect(host.thread).to.equal(null);
    expect(host.polledByOwner).to.equal(true);
    expect(() => new SockHost()).to.throw(/outside a reactor thread/);
  });

  it('connects, sends what was written before the connect finished (in order), reads, and closes', async () => {
    const port = (server.address() as AddressInfo).port;
    let rc: number | null = null;
    const got: number[] = [];
    let closed = 0;
    const conn = host.connect({
      host: '127.0.0.1',
      port,
      handler: {
        onConnect: (r) => (rc = r),
        onData: (n) => got.push(...conn.rx.subarray(0, n)),
        onClose: () => closed++,
      },
    });
    expect(conn.connecting).to.equal(true);
    const released: number[] = [];
    conn.write(Uint8Array.of(1, 2), () => released.push(1));
    conn.queue(Uint8Array.of(3), () => released.push(2));
    conn.flush();
    await spin(() => rc !== null && peers.length === 1);
    expect(rc).to.equal(0);
    expect(conn.connecting).to.equal(false);
    const seen: number[] = [];
    peers[0].on('data', (d: Buffer) => seen.push(...d));
    await spin(() => seen.length === 3);
    expect(seen).to.deep.equal([1, 2, 3]);
    expect(released).to.deep.equal([1, 2]);
    peers[0].write(Uint8Array.of(9, 8, 7));
    await spin(() => got.length === 3);
    expect(got).to.deep.equal([9, 8, 7]);
    const ended = once(peers[0], 'end');
    conn.close();
    await spin(() => closed === 1);
    await ended;
    expect(host.connections).to.equal(0);
  });

  it('a refused connect is reported by onConnect with the errno, and never by onClose', async () => {
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    let rc: number | null = null;
    let closed = 0;
    let released = 0;
    const conn = host.connect({
      host: '127.0.0.1',
      port,
      handler: { onConnect: (r) => (rc = r), onData: () => {}, onClose: () => closed++ },
    });
    conn.write(Uint8Array.of(1), () => released++);
    await spin(() => rc !== null);
    expect(rc).to.equal(-111);
    expect(released).to.equal(1);
    expect(conn.closed).to.equal(true);
    for (let i = 0; i < 3; i++) host.poll();
    expect(closed).to.equal(0);
    expect(host.connections).to.equal(0);
  });
});
