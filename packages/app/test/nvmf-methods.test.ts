// Every nvmf_* method through a live two-reactor target: the happy path, and bad params naming the field.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient, type RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, methodCatalog, Target } from '../src/index.js';

const NQN = 'nqn.2016-06.io.storkit:methods1';

function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

describe('app: every nvmf method, happy path and bad params', function () {
  this.timeout(60_000);
  let dir: string;
  let t: Target;
  let c: RpcClient;
  let port: number;
  const tested = new Set<string>();
  const ok = async (m: string, p?: unknown) => {
    tested.add(m);
    return c.call(m, p);
  };
  const bad = async (m: string, p: unknown, re: RegExp) => {
    const e = (await c.call(m, p).catch((x) => x)) as RpcError;
    expect(e, `${m} should fail`).to.have.property('code');
    expect(e.message, m).to.match(re);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-nvmf-methods-'));
    port = await freePort();
    t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      waitForRpc: true,
    });
    await t.start();
    c = await RpcClient.connect(join(dir, 'rpc.sock'));
  });
  after(async () => {
    c.close();
    const r = await t.stop();
    expect(r.leaked).to.deep.equal([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('nvmf_set_config before framework_start_init only', async () => {
    await bad(
      'nvmf_set_config',
      { discovery_filter: 'match_all_the_things' },
      /discovery_filter: 'match_all_the_things' is not one of/,
    );
    expect(await ok('nvmf_set_config', { discovery_filter: 'match_any' })).to.equal(true);
    await bad('nvmf_set_max_subsystems', { max_subsystems: 0 }, /max_subsystems: 0 is below the minimum 1/);
    expect(await ok('nvmf_set_max_subsystems', { max_subsystems: 1 })).to.equal(true);
    await bad('nvmf_set_crdt', { crdt1: -1 }, /crdt1: -1 is below the minimum 0/);
    expect(await ok('nvmf_set_crdt', { crdt1: 0, crdt2: 0, crdt3: 0 })).to.equal(true);
    expect(await c.call('framework_start_init')).to.equal(true);
    await bad('nvmf_set_max_subsystems', { max_subsystems: 8 }, /before framework_start_init/);
    await bad('nvmf_set_config', { discovery_filter: 'match_any' }, /before framework_start_init/);
  });

  it('transports, subsystems, namespaces, hosts, listeners, referrals', async () => {
    const addr = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
    await c.call('bdev_malloc_create', { name: 'NM0', num_blocks: 2048, block_size: 512 });

    await bad('nvmf_create_transport', { trtype: 'RDMA' }, /trtype: 'RDMA' is not one of TCP/);
    expect(await ok('nvmf_create_transport', { trtype: 'TCP', max_queue_depth: 64 })).to.equal(true);
    const tr = (await ok('nvmf_get_transports')) as { trtype: string; max_queue_depth: number }[];
    expect(tr[0]).to.include({ trtype: 'TCP', max_queue_depth: 64 });
    await bad('nvmf_get_transports', { trtype: 'FC' }, /trtype: 'FC' is not one of/);

    await bad('nvmf_create_subsystem', { nqn: 'not-an-nqn' }, /nqn/);
    expect(
      await ok('nvmf_create_subsystem', { nqn: NQN, serial_number: 'SN123', model_number: 'storkit test' }),
    ).to.equal(true);
    await bad('nvmf_create_subsystem', { nqn: NQN }, /exist/i);
    // nvmf_set_max_subsystems 1 (above): a second subsystem does not fit.
    await bad('nvmf_create_subsystem', { nqn: `${NQN}-2` }, /at most 1 subsystems/);

    expect(
      await ok('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { bdev_name: 'NM0', nsid: 3 } }),
    ).to.equal(3);
    await bad('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { bdev_name: 'ghost' } }, /ghost/);

    expect(await ok('nvmf_subsystem_add_host', { nqn: NQN, host: 'nqn.2014-08.org.example:host1' })).to.equal(
      true,
    );
    await bad('nvmf_subsystem_add_host', { nqn: NQN }, /host: required parameter missing/);
    expect(
      await ok('nvmf_subsystem_remove_host', { nqn: NQN, host: 'nqn.2014-08.org.example:host1' }),
    ).to.equal(true);
    await bad('nvmf_subsystem_remove_host', { nqn: NQN, host: 7 }, /host: expected a string, got number/);
    expect(await ok('nvmf_subsystem_allow_any_host', { nqn: NQN, allow_any_host: true })).to.equal(true);
    await bad(
      'nvmf_subsystem_allow_any_host',
      { nqn: NQN, allow_any_host: 'yes' },
      /allow_any_host: expected a boolean/,
    );

    expect(await ok('nvmf_subsystem_add_listener', { nqn: NQN, listen_address: addr })).to.equal(true);
    await bad(
      'nvmf_subsystem_add_listener',
      { nqn: NQN, listen_address: { ...addr, trtype: 'PCIe' } },
      /trtype/,
    );
    // A port another process listens on is refused: SO_REUSEPORT would otherwise let the reactors
    // join it and take part of that process's connections.
    const foreign = createServer();
    const fport = await new Promise<number>((res) =>
      foreign.listen(0, '127.0.0.1', () => res((foreign.address() as { port: number }).port)),
    );
    const taken = (await c
      .call('nvmf_subsystem_add_listener', { nqn: NQN, listen_address: { ...addr, trsvcid: String(fport) } })
      .catch((x) => x)) as RpcError;
    foreign.close();
    expect(taken.code).to.equal(-98);
    expect(taken.message).to.match(/address in use/);
    const ls = (await ok('nvmf_subsystem_get_listeners', { nqn: NQN })) as { address: { trsvcid: string } }[];
    expect(ls.map((l) => l.address.trsvcid)).to.deep.equal([String(port)]);
    await bad('nvmf_subsystem_get_listeners', {}, /nqn: required parameter missing/);

    const subs = (await ok('nvmf_get_subsystems')) as {
      nqn: string;
      serial_number?: string;
      namespaces?: { nsid: number }[];
    }[];
    const mine = subs.find((s) => s.nqn === NQN)!;
    expect(mine.namespaces?.map((n) => n.nsid)).to.deep.equal([3]);
    await bad('nvmf_get_subsystems', { colour: 'red' }, /colour: unknown parameter/);
    expect(await ok('nvmf_subsystem_get_controllers', { nqn: NQN })).to.deep.equal([]);
    await bad('nvmf_subsystem_get_controllers', { nqn: 'nqn.2016-06.io.storkit:none' }, /none|not|no /i);
    expect(await ok('nvmf_subsystem_get_qpairs', { nqn: NQN })).to.deep.equal([]);
    await bad('nvmf_subsystem_get_qpairs', { nqn: 5 }, /nqn: expected a string/);
    expect(await ok('nvmf_get_stats')).to.have.property('poll_groups');
    await bad('nvmf_get_stats', { tgt_name: 3 }, /tgt_name: expected a string/);

    const ref = { address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.2', trsvcid: '4420' } };
    expect(await ok('nvmf_discovery_add_referral', ref)).to.equal(true);
    await bad('nvmf_discovery_add_referral', {}, /address: required parameter missing/);
    const refs = (await ok('nvmf_discovery_get_referrals')) as { address: { traddr: string } }[];
    expect(refs.map((r) => r.address.traddr)).to.deep.equal(['127.0.0.2']);
    await bad('nvmf_discovery_get_referrals', { x: 1 }, /x: unknown parameter/);
    expect(await ok('nvmf_discovery_remove_referral', ref)).to.equal(true);
    await bad('nvmf_discovery_remove_referral', ref, /no |not |exist/i);
    expect(await c.call('nvmf_discovery_get_referrals')).to.deep.equal([]);

    const cfg = (await c.call('framework_get_config', { name: 'nvmf' })) as { method: string }[];
    expect(cfg.map((e) => e.method)).to.include.members([
      'nvmf_set_config',
      'nvmf_create_transport',
      'nvmf_create_subsystem',
      'nvmf_subsystem_add_ns',
      'nvmf_subsystem_add_listener',
    ]);

    expect(await ok('nvmf_subsystem_remove_listener', { nqn: NQN, listen_address: addr })).to.equal(true);
    await bad('nvmf_subsystem_remove_listener', { nqn: NQN, listen_address: addr }, /no |not |exist/i);
    expect(await ok('nvmf_subsystem_remove_ns', { nqn: NQN, nsid: 3 })).to.equal(true);
    await bad('nvmf_subsystem_remove_ns', { nqn: NQN, nsid: 3 }, /no |not |exist|3/i);
    expect(await ok('nvmf_delete_subsystem', { nqn: NQN })).to.equal(true);
    await bad('nvmf_delete_subsystem', { nqn: NQN }, /no |not |exist/i);
    const after = (await c.call('framework_get_config', { name: 'nvmf' })) as { params?: { nqn?: string } }[];
    expect(after.filter((e) => e.params?.nqn === NQN)).to.deep.equal([]);
  });

  it('covers every nvmf method in the catalog', () => {
    const missing = methodCatalog()
      .map((m) => m.name)
      .filter((n) => n.startsWith('nvmf_') && !tested.has(n));
    expect(missing).to.deep.equal([]);
  });
});
