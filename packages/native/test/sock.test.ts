import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

import { expect } from 'chai';

import {
  NativeError,
  SOCK_ACCEPT,
  SOCK_EAGAIN,
  SOCK_ECONNREFUSED,
  SOCK_ERR,
  SOCK_EVENT_WORDS,
  SOCK_HUP,
  SOCK_IN,
  SOCK_OUT,
  SockGroup,
} from '../src/index.js';

interface Ev {
  fd: number;
  flags: number;
  aux: number;
}

const events = new Int32Array(64 * SOCK_EVENT_WORDS);

function pollOnce(g: SockGroup): Ev[] {
  const n = g.poll(events);
  const out: Ev[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * SOCK_EVENT_WORDS;
    out.push({ fd: events[o], flags: events[o + 1], aux: events[o + 2] });
  }
  return out;
}

/** Poll (yielding to the event loop between tries, so node:net peers make progress) until `pred`. */
async function pollUntil(g: SockGroup, pred: (e: Ev) => boolean, ms = 2000): Promise<Ev[]> {
  const end = Date.now() + ms;
  const seen: Ev[] = [];
  while (Date.now() < end) {
    const evs = pollOnce(g);
    seen.push(...evs);
    if (evs.some(pred)) return seen;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error('no such event');
}

async function client(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

describe('SockGroup', () => {
  let g: SockGroup;
  beforeEach(() => {
    g = new SockGroup();
  });
  afterEach(() => g.destroy());

  it('accepts, reads, writes, reports addresses and end of stream', async () => {
    const l = g.listen('127.0.0.1', 0);
    const c = await client(l.port);
    const acc = (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!;
    expect(acc.aux).to.equal(l.fd);
    const fd = acc.fd;
    const a = g.addresses(fd);
    expect(a).to.deep.equal({
      address: '127.0.0.1',
      port: c.localPort,
      localAddress: '127.0.0.1',
      localPort: l.port,
    });
    const buf = new Uint8Array(64);
    expect(g.recv(fd, buf)).to.equal(SOCK_EAGAIN);
    c.write('hello');
    await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_IN) !== 0);
    expect(g.recv(fd, buf)).to.equal(5);
    expect(Buffer.from(buf.subarray(0, 5)).toString()).to.equal('hello');
    const got = once(c, 'data');
    const out = new TextEncoder().encode('xxworldyy');
    expect(g.send(fd, out, 2, 5)).to.equal(5);
    expect(String((await got)[0])).to.equal('world');
    c.end();
    await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_HUP) !== 0);
    expect(g.recv(fd, buf)).to.equal(0);
    g.close(fd);
    expect(() => g.close(fd))
      .to.throw(NativeError)
      .with.property('code', 'ENOENT');
    expect(g.recv(fd, buf)).to.equal(-9); // EBADF: no longer the group's
  });

  it('partial send: SOCK_OUT while write interest is on, once the peer reads', async () => {
    const l = g.listen('127.0.0.1', 0);
    const c = await client(l.port);
    c.pause();
    const fd = (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!.fd;
    const chunk = new Uint8Array(1 << 20);
    let sent = 0;
    for (;;) {
      const r = g.send(fd, chunk);
      if (r === SOCK_EAGAIN) break;
      expect(r).to.be.greaterThan(0);
      sent += r;
      if (r < chunk.length) continue;
    }
    g.wantWrite(fd, true);
    expect(pollOnce(g).some((e) => e.fd === fd && (e.flags & SOCK_OUT) !== 0)).to.equal(false);
    let read = 0;
    c.on('data', (d: Buffer) => {
      read += d.length;
    });
    c.resume();
    await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_OUT) !== 0);
    g.wantWrite(fd, false);
    while (read < sent) await new Promise((r) => setTimeout(r, 1));
    expect(read).to.equal(sent);
    c.destroy();
  });

  it('sendv gathers buffers in order, starting at an offset in the first', async () => {
    const l = g.listen('127.0.0.1', 0);
    const c = await client(l.port);
    const fd = (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!.fd;
    const enc = new TextEncoder();
    const got = once(c, 'data');
    expect(g.sendv(fd, [enc.encode('xxab'), new Uint8Array(0), enc.encode('cd')], 2)).to.equal(4);
    expect(String((await got)[0])).to.equal('abcd');
    expect(() => g.sendv(fd, [enc.encode('a')], 2))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    c.destroy();
  });

  it('a reset shows as HUP/ERR and a negative errno from recv', async () => {
    const l = g.listen('127.0.0.1', 0);
    const c = await client(l.port);
    const fd = (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!.fd;
    c.resetAndDestroy();
    await pollUntil(g, (e) => e.fd === fd && (e.flags & (SOCK_HUP | SOCK_ERR)) !== 0);
    expect(g.recv(fd, new Uint8Array(8))).to.equal(-104); // ECONNRESET
  });

  it('serves many connections, each with its own bytes', async () => {
    const l = g.listen('127.0.0.1', 0);
    const cs = await Promise.all(Array.from({ length: 50 }, () => client(l.port)));
    const fds = new Set<number>();
    const end = Date.now() + 2000;
    while (fds.size < cs.length && Date.now() < end) {
      for (const e of pollOnce(g)) if (e.flags === SOCK_ACCEPT) fds.add(e.fd);
      await new Promise((r) => setTimeout(r, 1));
    }
    expect(fds.size).to.equal(cs.length);
    // Each client sends its local port; each accepted fd echoes it back doubled.
    for (const c of cs) c.write(String(c.localPort));
    const echoed = cs.map((c) => once(c, 'data').then((d) => String(d[0])));
    const buf = new Uint8Array(64);
    const done = new Set<number>();
    while (done.size < fds.size && Date.now() < end + 2000) {
      for (const e of pollOnce(g)) {
        if (!(e.flags & SOCK_IN)) continue;
        const n = g.recv(e.fd, buf);
        expect(n).to.be.greaterThan(0);
        const s = Buffer.from(buf.subarray(0, n)).toString();
        expect(s).to.equal(String(g.addresses(e.fd).port));
        const back = new TextEncoder().encode(s + s);
        expect(g.send(e.fd, back)).to.equal(back.length);
        done.add(e.fd);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    const got = await Promise.all(echoed);
    cs.forEach((c, i) => {
      expect(got[i]).to.equal(String(c.localPort).repeat(2));
      c.destroy();
    });
  });

  it('the armed waiter calls wake on this thread when bytes arrive, once per arm', async () => {
    const l = g.listen('127.0.0.1', 0);
    const c = await client(l.port);
    const fd = (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!.fd;
    let wakes = 0;
    let woke: (() => void) | null = null;
    g.startWaiter(() => {
      wakes++;
      woke?.();
    });
    g.arm();
    await new Promise((r) => setTimeout(r, 20));
    expect(wakes).to.equal(0);
    const w = new Promise<void>((r) => {
      woke = r;
    });
    c.write('x');
    // The waiter thread calls back when the byte arrives (were it not to, the test would time out).
    await w;
    expect(wakes).to.equal(1);
    // Not re-armed: more bytes do not call it again.
    c.write('y');
    await new Promise((r) => setTimeout(r, 20));
    expect(wakes).to.equal(1);
    expect(g.recv(fd, new Uint8Array(8))).to.equal(2);
    g.disarm();
    c.destroy();
  });

  it('connects out to a listener (IPv4 and IPv6) and moves bytes both ways', async () => {
    for (const host of ['127.0.0.1', '::1']) {
      const l = g.listen(host, 0);
      const fd = g.connect(host, l.port);
      const seen = await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_OUT) !== 0);
      const acc =
        seen.find((e) => e.flags === SOCK_ACCEPT) ??
        (await pollUntil(g, (e) => e.flags === SOCK_ACCEPT)).find((e) => e.flags === SOCK_ACCEPT)!;
      expect(g.connectError(fd)).to.equal(0);
      g.wantWrite(fd, false);
      const a = g.addresses(fd);
      expect(a.address).to.equal(host);
      expect(a.port).to.equal(l.port);
      expect(g.addresses(acc.fd).port).to.equal(a.localPort);
      expect(g.send(fd, new TextEncoder().encode('ping'))).to.equal(4);
      await pollUntil(g, (e) => e.fd === acc.fd && (e.flags & SOCK_IN) !== 0);
      const buf = new Uint8Array(16);
      expect(g.recv(acc.fd, buf)).to.equal(4);
      expect(Buffer.from(buf.subarray(0, 4)).toString()).to.equal('ping');
      expect(g.send(acc.fd, new TextEncoder().encode('pong!'))).to.equal(5);
      await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_IN) !== 0);
      expect(g.recv(fd, buf)).to.equal(5);
      expect(Buffer.from(buf.subarray(0, 5)).toString()).to.equal('pong!');
      g.close(acc.fd);
      g.close(fd);
      g.close(l.fd);
    }
  });

  it('connects out to a node:net server', async () => {
    const srv = createServer((s) => s.pipe(s));
    await once(srv.listen(0, '127.0.0.1'), 'listening');
    try {
      const port = (srv.address() as { port: number }).port;
      const fd = g.connect('127.0.0.1', port);
      await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_OUT) !== 0);
      expect(g.connectError(fd)).to.equal(0);
      g.wantWrite(fd, false);
      expect(g.send(fd, new TextEncoder().encode('echo'))).to.equal(4);
      await pollUntil(g, (e) => e.fd === fd && (e.flags & SOCK_IN) !== 0);
      const buf = new Uint8Array(16);
      expect(g.recv(fd, buf)).to.equal(4);
      expect(Buffer.from(buf.subarray(0, 4)).toString()).to.equal('echo');
      g.close(fd);
    } finally {
      srv.close();
    }
  });

  it('a refused connect reports SOCK_ERR and ECONNREFUSED', async () => {
    // A port just freed: nothing listens there.
    const srv = createServer();
    await once(srv.listen(0, '127.0.0.1'), 'listening');
    const port = (srv.address() as { port: number }).port;
    await new Promise((r) => srv.close(r));
    let fd: number;
    try {
      fd = g.connect('127.0.0.1', port);
    } catch (e) {
      // The kernel may refuse a loopback connect at once.
      expect((e as NativeError).code).to.equal('ECONNREFUSED');
      return;
    }
    const seen = await pollUntil(g, (e) => e.fd === fd && (e.flags & (SOCK_ERR | SOCK_OUT)) !== 0);
    expect(seen.find((e) => e.fd === fd)!.flags & SOCK_ERR).to.equal(SOCK_ERR);
    expect(g.connectError(fd)).to.equal(SOCK_ECONNREFUSED);
    g.close(fd);
  });

  it('refuses a connect to a host name', () => {
    expect(() => g.connect('localhost', 1)).to.throw(NativeError);
  });

  it('refuses use after destroy', () => {
    g.destroy();
    expect(() => g.poll(events))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });
});
