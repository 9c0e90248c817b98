// max_sessions is target-wide in `storkit tgt`: sessions on both reactors count against one limit
// (a counter shared by every reactor's copy of the target). A raw initiator over TCP holds sessions
// open, follows login redirects to a node's owner reactor, logs out, and reconnects.
import { createConnection, type Socket } from 'node:net';

import { expect } from 'chai';

import { iscsiGet } from '../src/controls/iscsi.js';
import { IQN_BASE, iscsiConfig, type Running, runTarget } from './iscsi-helpers.js';

const MAX = 3;
const OUT_OF_RESOURCES = 0x0302; // RFC 7143 11.13.5: Target Error, Out of resources
const MOVED = 0x0101;

type Counts = { local: number; target: number }[];

/** One initiator connection: PDUs out, whole PDUs in (BHS + padded data). */
class Conn {
  readonly sock: Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  constructor(sock: Socket) {
    this.sock = sock;
    sock.on('data', (d) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.#wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    sock.on('error', () => {});
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async pdu(): Promise<{ bhs: Buffer; data: Buffer }> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (this.#buf.length >= 48) {
        const len = this.#buf.readUIntBE(5, 3);
        const total = 48 + this.#buf[4] * 4 + len + ((4 - (len % 4)) % 4);
        if (this.#buf.length >= total) {
          const bhs = this.#buf.subarray(0, 48);
          const data = this.#buf.subarray(48 + this.#buf[4] * 4, 48 + this.#buf[4] * 4 + len);
          this.#buf = this.#buf.subarray(total);
          return { bhs, data };
        }
      }
      if (this.closed) throw new Error('connection closed before a whole PDU');
      if (Date.now() > deadline) throw new Error('no PDU within 10 s');
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 500);
      });
    }
  }

  send(bhs: Buffer, text = ''): void {
    const data = Buffer.from(text);
    bhs.writeUIntBE(data.length, 5, 3);
    this.sock.write(Buffer.concat([bhs, data, Buffer.alloc((4 - (data.length % 4)) % 4)]));
  }

  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise((r) => setTimeout(r, 10));
  }
}

interface Login {
  status: number;
  conn: Conn;
  /** The port that answered (a reactor's private port after a redirect). */
  port: number;
}

/**
 * A leading login (operational stage straight to full feature phase) for `node` (null: discovery)
 * with ISID …`isid`, following Target Moved Temporarily redirects.
 */
async function login(port: number, node: string | null, isid: number): Promise<Login> {
  for (let hop = 0; hop < 3; hop++) {
    const conn = await Conn.open(port);
    const b = Buffer.alloc(48);
    b[0] = 0x43; // Login Request, immediate
    b[1] = 0x87; // T, CSG 1 (operational), NSG 3 (full feature)
    b[8] = 0x80; // ISID: random qualifier type
    b[13] = isid;
    b.writeUInt32BE(0x1000 + isid, 16); // ITT
    b.writeUInt32BE(1, 24); // CmdSN
    const keys = ['InitiatorName=iqn.2024-01.io.storkit:test-init'];
    keys.push(node === null ? 'SessionType=Discovery' : `SessionType=Normal\0TargetName=${node}`);
    conn.send(b, `${keys.join('\0')}\0`);
    const r = await conn.pdu();
    expect(r.bhs[0] & 0x3f, 'Login Response').to.equal(0x23);
    const status = r.bhs.readUInt16BE(36);
    if (status !== MOVED) return { status, conn, port };
    const to = /TargetAddress=[^\0]*:(\d+),\d+/.exec(r.data.toString())?.[1];
    if (!to) throw new Error(`redirect without TargetAddress: ${r.data.toString()}`);
    conn.sock.destroy();
    port = Number(to);
  }
  throw new Error('redirected in a loop');
}

/** Logout (close the session); the target answers and closes the connection. */
async function logout(c: Conn): Promise<void> {
  const b = Buffer.alloc(48);
  b[0] = 0x46; // Logout Request, immediate
  b[1] = 0x80; // reason 0: close the session
  b.writeUInt32BE(0x77, 16);
  b.writeUInt32BE(1, 24); // CmdSN (immediate: not advanced by the login)
  c.send(b);
  const r = await c.pdu();
  expect(r.bhs[0] & 0x3f, 'Logout Response').to.equal(0x26);
  expect(r.bhs[2], 'logout response').to.equal(0);
  await c.waitClosed();
}

describe('app: iscsi max_sessions over both reactors', function () {
  this.timeout(60_000);
  let t: Running;
  const open: Conn[] = [];
  const disk = (n: number) => `${IQN_BASE}:disk${n}`;
  const reactors = () => {
    const app = t.target.app;
    if (!app) throw new Error('reactors are not running');
    return app;
  };
  /** Per reactor: its own sessions, and the target-wide count it checks max_sessions against. */
  const counts = (): Promise<Counts> =>
    Promise.all([0, 1].map((i) => reactors().control(i, iscsiGet.sessions, undefined)));
  const ok = async (node: string | null, isid: number): Promise<Login> => {
    const l = await login(t.port, node, isid);
    expect(l.status, `login ${node ?? 'discovery'} isid ${isid}`).to.equal(0);
    open.push(l.conn);
    return l;
  };
  const refused = async (node: string | null, isid: number, port = t.port): Promise<void> => {
    const l = await login(port, node, isid);
    expect(l.status, `login ${node ?? 'discovery'} isid ${isid} over max_sessions`).to.equal(
      OUT_OF_RESOURCES,
    );
    await l.conn.waitClosed(); // the target closes a failed login
  };

  before(async () => {
    t = await runTarget(
      iscsiConfig(
        [
          { name: 'Malloc0', blockSize: 512, bytes: 4 << 20 },
          { name: 'Malloc1', blockSize: 512, bytes: 4 << 20 },
        ],
        { options: { max_sessions: MAX } },
      ),
    );
  });
  after(async () => {
    for (const c of open) c.sock.destroy();
    await t?.stop();
  });

  it('refuses the session over max_sessions on either reactor; a logout on one lets a login in on the other', async () => {
    // disk1 is owned by reactor 0, disk2 by reactor 1: their sessions run there.
    const a = await ok(disk(1), 1);
    const b = await ok(disk(2), 2);
    const c = await ok(disk(1), 3);
    const conns = await t.rpc.call<{ reactor: number; target_node_name: string }[]>('iscsi_get_connections');
    expect(conns.map((x) => [x.target_node_name, x.reactor]).sort()).to.deep.equal([
      [disk(1), 0],
      [disk(1), 0],
      [disk(2), 1],
    ]);

    // Each reactor alone is under the limit (2 and 1 sessions); the target is not. A counter per
    // reactor would admit both of these.
    await refused(disk(2), 4); // runs on reactor 1
    await refused(disk(1), 5); // runs on reactor 0
    // Discovery sessions count too and are served wherever they land: try each reactor's own port.
    const peers = await reactors().control(0, iscsiGet.peers, undefined);
    const priv = peers['1'].map((ports) => ports[0]);
    expect(priv).to.have.length(2);
    for (const p of priv) await refused(null, 6, p);
    expect(await counts()).to.deep.equal([
      { local: 2, target: MAX },
      { local: 1, target: MAX },
    ]);

    // A logout on reactor 1 frees a place for a login on reactor 0, and the limit holds again.
    await logout(b.conn);
    expect((await counts()).map((x) => x.target)).to.deep.equal([MAX - 1, MAX - 1]);
    const d = await ok(disk(1), 7);
    await refused(disk(2), 8);
    // And the other way round.
    await logout(a.conn);
    const e = await ok(disk(2), 9);
    await refused(disk(1), 10);
    expect(await counts()).to.deep.equal([
      { local: 2, target: MAX },
      { local: 1, target: MAX },
    ]);

    // Reinstatement at the limit (same ISID, same node): the new session takes the old one's place.
    const c2 = await ok(disk(1), 3);
    await c.conn.waitClosed();
    expect(await counts()).to.deep.equal([
      { local: 2, target: MAX },
      { local: 1, target: MAX },
    ]);
    await refused(disk(2), 11);

    // Connections dropped without a logout give their places back, each once.
    for (const l of [c2, d, e]) l.conn.sock.destroy();
    const until = Date.now() + 10_000;
    let now = await counts();
    while (now.some((x) => x.target !== 0 || x.local !== 0) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      now = await counts();
    }
    expect(now).to.deep.equal([
      { local: 0, target: 0 },
      { local: 0, target: 0 },
    ]);
    for (let i = 0; i < MAX; i++) await ok(disk(1 + (i % 2)), 20 + i);
    await refused(disk(1), 30);
  });
});
