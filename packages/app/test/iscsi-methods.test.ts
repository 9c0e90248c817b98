// Every iscsi_* method through a live two-reactor target: happy path, bad params, save_config round
// trip; connections on both reactors; a connection sending garbage is dropped alone.
import { createConnection, createServer } from 'node:net';

import { closeFd, reuseportListen } from '@storkit/native';
import type { RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { iscsiGet } from '../src/controls/iscsi.js';
import { methodCatalog, parseConfig, type SpdkConfig } from '../src/index.js';
import { IQN_BASE, iscsiConfig, type Running, runTarget, tool } from './iscsi-helpers.js';

type P = Record<string, unknown>;

describe('app: every iscsi method, happy path and bad params', function () {
  this.timeout(60_000);
  let t: Running;
  const tested = new Set<string>();
  const ok = <T = unknown>(m: string, p?: unknown) => {
    tested.add(m);
    return t.rpc.call<T>(m, p);
  };
  const bad = async (m: string, p: unknown, re: RegExp) => {
    const e = (await t.rpc.call(m, p).catch((x) => x)) as RpcError;
    expect(e, `${m} should fail`).to.have.property('code');
    expect(e.message, m).to.match(re);
  };

  before(async () => {
    t = await runTarget(iscsiConfig([{ name: 'Malloc0', blockSize: 512, bytes: 4 << 20 }]));
  });
  after(async () => {
    await t?.stop();
  });

  it('options and discovery auth', async () => {
    const o = await ok<P>('iscsi_get_options');
    expect(o).to.include({ node_base: IQN_BASE, max_queue_depth: 128 });
    await bad('iscsi_set_options', { max_sessions: 4 }, /before framework_start_init/);
    tested.add('iscsi_set_options'); // happy path: every config here starts with it
    expect(await ok('iscsi_create_auth_group', { tag: 7, secrets: [{ user: 'u1', secret: 's1' }] })).to.equal(
      true,
    );
    await bad('iscsi_create_auth_group', { tag: 7 }, /exists/);
    await bad('iscsi_create_auth_group', { tag: 0 }, /tag: 0 is below the minimum 1/);
    expect(await ok('iscsi_set_discovery_auth', { require_chap: true, chap_group: 7 })).to.equal(true);
    await bad('iscsi_set_discovery_auth', { chap_group: 99 }, /auth group 99/);
    await bad('iscsi_set_discovery_auth', { disable_chap: true }, /disable_chap cannot be combined/);
    expect(await ok('iscsi_set_discovery_auth', { require_chap: false, chap_group: 0 })).to.equal(true);
  });

  it('auth groups and secrets', async () => {
    expect(
      await ok('iscsi_auth_group_add_secret', {
        tag: 7,
        user: 'u2',
        secret: 's2',
        muser: 'm',
        msecret: 'ms',
      }),
    ).to.equal(true);
    await bad('iscsi_auth_group_add_secret', { tag: 7, user: 'u2', secret: 'x' }, /already in auth group/);
    await bad('iscsi_auth_group_add_secret', { tag: 7, user: 'u3' }, /secret: required parameter missing/);
    const gs = await ok<{ tag: number; secrets: { user: string }[] }[]>('iscsi_get_auth_groups');
    expect(gs.find((g) => g.tag === 7)?.secrets.map((s) => s.user)).to.deep.equal(['u1', 'u2']);
    expect(await ok('iscsi_auth_group_remove_secret', { tag: 7, user: 'u1' })).to.equal(true);
    await bad('iscsi_auth_group_remove_secret', { tag: 7, user: 'nobody' }, /not in auth group/);
    expect(await ok('iscsi_create_auth_group', { tag: 8 })).to.equal(true);
    expect(await ok('iscsi_delete_auth_group', { tag: 8 })).to.equal(true);
    await bad('iscsi_delete_auth_group', { tag: 8 }, /not found/);
  });

  it('initiator groups, portal groups, target nodes, LUNs and node auth', async () => {
    expect(
      await ok('iscsi_create_initiator_group', {
        tag: 3,
        initiators: ['iqn.x', '!iqn.y'],
        netmasks: ['10.0.0.0/8'],
      }),
    ).to.equal(true);
    await bad('iscsi_create_initiator_group', { tag: 4, initiators: [], netmasks: ['ANY'] }, /initiators/);
    expect((await ok<{ tag: number }[]>('iscsi_get_initiator_groups')).map((g) => g.tag)).to.deep.equal([
      2, 3,
    ]);
    expect(
      await ok('iscsi_create_portal_group', { tag: 5, portals: [{ host: '127.0.0.1', port: '0' }] }),
    ).to.equal(true);
    await bad('iscsi_create_portal_group', { tag: 5, portals: [{ host: '127.0.0.1', port: '0' }] }, /exists/);
    await bad('iscsi_create_portal_group', { tag: 6, portals: [{ host: 'localhost', port: '0' }] }, /./);
    await bad('iscsi_create_portal_group', { tag: 6, portals: [{ host: '127.0.0.1', port: 'x' }] }, /port/);
    // A port another process listens on is refused (the reactors' SO_REUSEPORT would join it).
    const foreign = createServer();
    const fport = await new Promise<number>((res) =>
      foreign.listen(0, '127.0.0.1', () => res((foreign.address() as { port: number }).port)),
    );
    await bad(
      'iscsi_create_portal_group',
      { tag: 6, portals: [{ host: '127.0.0.1', port: String(fport) }] },
      /iSCSI portal 127\.0\.0\.1:\d+: address in use/,
    );
    foreign.close();
    // Another process's SO_REUSEPORT group: binding would succeed and split its connections, so
    // only the check before binding refuses it.
    const group = reuseportListen('127.0.0.1', 0);
    try {
      await bad(
        'iscsi_create_portal_group',
        { tag: 6, portals: [{ host: '127.0.0.1', port: String(group.port) }] },
        /iSCSI portal 127\.0\.0\.1:\d+: address in use/,
      );
    } finally {
      closeFd(group.fd);
    }
    const pgs = await ok<{ tag: number; portals: { port: string }[] }[]>('iscsi_get_portal_groups');
    expect(pgs.map((g) => g.tag)).to.deep.equal([1, 5]);
    expect(Number(pgs[1].portals[0].port)).to.be.greaterThan(0);
    await t.rpc.call('bdev_malloc_create', { name: 'M9', num_blocks: 1024, block_size: 4096 });
    const node = {
      name: 'n2',
      pg_ig_maps: [{ pg_tag: 5, ig_tag: 3 }],
      luns: [{ bdev_name: 'M9', lun_id: 0 }],
      queue_depth: 16,
    };
    expect(await ok('iscsi_create_target_node', node)).to.equal(true);
    await bad('iscsi_create_target_node', node, /exists/);
    await bad(
      'iscsi_create_target_node',
      { ...node, name: 'n3', luns: [{ bdev_name: 'nope', lun_id: 0 }] },
      /bdev nope not found/,
    );
    await bad('iscsi_create_target_node', { ...node, name: 'n3', queue_depth: 4096 }, /queue_depth/);
    await bad(
      'iscsi_create_target_node',
      { ...node, name: 'n3', pg_ig_maps: [{ pg_tag: 9, ig_tag: 3 }] },
      /portal group 9/,
    );
    await t.rpc.call('bdev_malloc_create', { name: 'M10', num_blocks: 1024, block_size: 4096 });
    expect(await ok('iscsi_target_node_add_lun', { name: 'n2', bdev_name: 'M10' })).to.equal(true);
    await bad('iscsi_target_node_add_lun', { name: 'n2', bdev_name: 'M10', lun_id: 1 }, /exists/);
    await bad('iscsi_target_node_add_lun', { name: 'zz', bdev_name: 'M10' }, /not found/);
    expect(
      await ok('iscsi_target_node_set_auth', { name: 'n2', require_chap: true, chap_group: 7 }),
    ).to.equal(true);
    await bad(
      'iscsi_target_node_set_auth',
      { name: 'n2', mutual_chap: true, require_chap: false },
      /mutual_chap requires/,
    );
    const nodes = await ok<P[]>('iscsi_get_target_nodes');
    const n2 = nodes.find((n) => n.name === `${IQN_BASE}:n2`);
    expect(n2).to.deep.include({
      luns: [
        { bdev_name: 'M9', lun_id: 0 },
        { bdev_name: 'M10', lun_id: 1 },
      ],
      require_chap: true,
      chap_group: 7,
    });
    // The state is the same on every reactor: a login for n2 through portal group 5 is refused
    // (initiator group 3 does not admit 127.0.0.1) wherever it lands.
    await bad('iscsi_delete_portal_group', { tag: 5 }, /mapped by a target node/);
    await bad('iscsi_delete_initiator_group', { tag: 3 }, /mapped by a target node/);
    await bad('iscsi_delete_auth_group', { tag: 7 }, /in use/);
  });

  it('save_config reloads into the same iscsi state', async () => {
    const saved = await t.rpc.call<SpdkConfig>('save_config');
    const sec = saved.subsystems.find((s) => s.subsystem === 'iscsi');
    expect(sec?.config?.map((c) => c.method)).to.include.members([
      'iscsi_set_options',
      'iscsi_set_discovery_auth',
      'iscsi_create_auth_group',
      'iscsi_create_initiator_group',
      'iscsi_create_portal_group',
      'iscsi_create_target_node',
    ]);
    // The first target still listens on the saved ports, and a second process may not join them
    // (iscsi_create_portal_group refuses a port in use): reload on fresh ports ("0") and compare
    // with the ports masked.
    const noPorts = (x: unknown): unknown =>
      JSON.parse(JSON.stringify(x).replace(/"port":"\d+"/g, '"port":"*"'));
    const again = await runTarget(parseConfig(JSON.stringify(saved).replace(/"port":"\d+"/g, '"port":"0"')));
    try {
      for (const m of [
        'iscsi_get_options',
        'iscsi_get_auth_groups',
        'iscsi_get_initiator_groups',
        'iscsi_get_portal_groups',
        'iscsi_get_target_nodes',
      ])
        expect(noPorts(await again.rpc.call(m)), m).to.deep.equal(noPorts(await t.rpc.call(m)));
      const twice = await again.rpc.call<SpdkConfig>('save_config');
      expect(noPorts(twice.subsystems.find((s) => s.subsystem === 'iscsi'))).to.deep.equal(noPorts(sec));
    } finally {
      await again.stop();
    }
  });

  it('deletes what it created', async () => {
    expect(await ok('iscsi_delete_target_node', { name: 'n2' })).to.equal(true);
    await bad('iscsi_delete_target_node', { name: 'n2' }, /not found/);
    expect(await ok('iscsi_delete_portal_group', { tag: 5 })).to.equal(true);
    await bad('iscsi_delete_portal_group', { tag: 5 }, /not found/);
    expect(await ok('iscsi_delete_initiator_group', { tag: 3 })).to.equal(true);
    await bad('iscsi_delete_initiator_group', { tag: 3 }, /not found/);
    expect(await ok('iscsi_get_stats')).to.deep.equal({ invalid: 0, running: 0, exiting: 0, exited: 0 });
    expect(await ok('iscsi_get_connections')).to.deep.equal([]);
  });

  it('covers every iscsi method in the catalog', () => {
    const missing = methodCatalog()
      .map((m) => m.name)
      .filter((n) => n.startsWith('iscsi_') && !tested.has(n));
    expect(missing).to.deep.equal([]);
  });
});

describe('app: iscsi connections on both reactors', function () {
  this.timeout(60_000);
  let t: Running;
  before(async () => {
    t = await runTarget(
      iscsiConfig([
        { name: 'Malloc0', blockSize: 512, bytes: 16 << 20 },
        { name: 'Malloc1', blockSize: 4096, bytes: 16 << 20 },
      ]),
    );
  });
  after(async () => {
    await t?.stop();
  });

  it('the kernel spreads connections over both reactors; logins for a node owned elsewhere move to its owner', async () => {
    for (let i = 0; i < 16; i++)
      for (const n of [1, 2]) {
        const r = await tool('iscsi-inq', [t.url(n)]);
        expect(r.code, r.out).to.equal(0);
      }
    const app = t.target.app;
    if (!app) throw new Error('reactors are not running');
    const per = await Promise.all([0, 1].map((i) => app.control(i, iscsiGet.placement, undefined)));
    // 32 logins, each landing on either reactor: node 1's logins that landed on reactor 1 (and
    // node 2's on reactor 0) moved, socket and all, to the owner. None was redirected: a redirect
    // names the address the target saw, which an initiator behind NAT cannot reach.
    for (const p of per) {
      expect(p.accepted).to.be.greaterThan(0);
      expect(p.redirected).to.equal(0);
      expect(p.moved_out).to.be.greaterThan(0);
      expect(p.adopt_failed).to.equal(0);
    }
    expect(per[0].moved_in).to.equal(per[1].moved_out);
    expect(per[1].moved_in).to.equal(per[0].moved_out);
  });

  it('sessions run on the reactor owning their node, and garbage drops only its own connection', async () => {
    // Two loads, one per target node: node 1 is owned by reactor 0, node 2 by reactor 1.
    const perf = [1, 2].map((n) =>
      tool('iscsi-perf', ['-t', '4', '-m', '16', '-b', '8', '-r', t.url(n)], 30_000),
    );
    // Until both loads are logged in (a condition, not a fixed wait).
    let conns: { reactor: number; target_node_name: string }[] = [];
    const names = () => new Set(conns.map((c) => c.target_node_name));
    while (names().size < 2) {
      await new Promise((r) => setTimeout(r, 50));
      conns = await t.rpc.call<{ reactor: number; target_node_name: string }[]>('iscsi_get_connections');
    }
    const where = new Map(conns.map((c) => [c.target_node_name, c.reactor]));
    expect(where.get(`${IQN_BASE}:disk1`)).to.equal(0);
    expect(where.get(`${IQN_BASE}:disk2`)).to.equal(1);
    // Meanwhile, hostile peers: connections the kernel spreads over both reactors, each sending a
    // malformed BHS (bad opcode and a data length beyond any limit) or a login with a bad version.
    const closedByTarget = await Promise.all(
      Array.from({ length: 16 }, (_, i) => hostile(t.port, i % 2 === 0 ? junkBhs() : badVersionLogin())),
    );
    expect(closedByTarget.every((x) => x)).to.equal(true);
    const outs = await Promise.all(perf);
    for (const o of outs) {
      expect(o.code, o.out).to.equal(0);
      expect(o.out).to.match(/iops average \d+/);
      expect(o.out).to.not.match(/error|reconnect/i);
    }
    expect(await t.rpc.call('iscsi_get_stats')).to.include({ running: 0 });
  });
});

function junkBhs(): Buffer {
  const b = Buffer.alloc(48, 0xff);
  b[0] = 0x3f;
  return b;
}

function badVersionLogin(): Buffer {
  const text = Buffer.from('InitiatorName=iqn.x\0SessionType=Discovery\0');
  const pad = (4 - (text.length % 4)) % 4;
  const b = Buffer.alloc(48 + text.length + pad);
  b[0] = 0x43; // Login Request, immediate
  b[1] = 0x87; // T, CSG 1, NSG 3
  b[2] = 0x7f; // VersionMax
  b[3] = 0x7f; // VersionMin: unsupported
  b.writeUIntBE(text.length, 5, 3);
  text.copy(b, 48);
  return b;
}

/** Connects, sends `bytes`, and resolves true once the target closes the connection. */
function hostile(port: number, bytes: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => s.write(bytes));
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 10_000);
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
