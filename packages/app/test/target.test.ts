import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient, RpcCode, type RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, parseConfig, type SpdkConfig, Target } from '../src/index.js';

let n = 0;
const sock = () => join(tmpdir(), `storkit-app-${process.pid}-${n++}.sock`);
const quiet = () => new Logger('error', () => {});

const CONFIG: SpdkConfig = {
  subsystems: [
    { subsystem: 'sock', config: [{ method: 'sock_impl_set_options', params: { impl_name: 'posix' } }] },
    {
      subsystem: 'bdev',
      config: [
        {
          method: 'bdev_set_options',
          params: { bdev_io_pool_size: 65535, bdev_io_cache_size: 256, bdev_auto_examine: true },
        },
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
        { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: 1024, block_size: 4096 } },
        { method: 'bdev_split_create', params: { base_bdev: 'Malloc0', split_count: 2 } },
        {
          method: 'bdev_delay_create',
          params: {
            base_bdev_name: 'Null0',
            name: 'Delay0',
            avg_read_latency: 10,
            p99_read_latency: 20,
            avg_write_latency: 10,
            p99_write_latency: 20,
          },
        },
        { method: 'bdev_set_qos_limit', params: { name: 'Malloc0p0', rw_ios_per_sec: 10000 } },
      ],
    },
  ],
};

async function withTarget<T>(
  opts: { config?: SpdkConfig; waitForRpc?: boolean },
  fn: (t: Target, c: RpcClient) => Promise<T>,
): Promise<T> {
  const path = sock();
  const t = new Target({ cores: [0, 1], rpcSocket: path, signals: false, log: quiet(), ...opts });
  await t.start();
  const c = await RpcClient.connect(path);
  try {
    return await fn(t, c);
  } finally {
    c.close();
    const r = await t.stop();
    expect(r.leaked).to.deep.equal([]);
    expect(existsSync(path)).to.equal(false);
  }
}

describe('app: the target', function () {
  this.timeout(60_000);

  it('loads an SPDK config, saves it, and a reload of what was saved is identical', async () => {
    const [saved, bdevs] = await withTarget({ config: CONFIG }, async (_t, c) => [
      await c.call<SpdkConfig>('save_config'),
      await c.call<{ name: string }[]>('bdev_get_bdevs'),
    ]);
    expect(bdevs.map((b) => b.name).sort()).to.deep.equal([
      'Delay0',
      'Malloc0',
      'Malloc0p0',
      'Malloc0p1',
      'Null0',
    ]);
    const text = JSON.stringify(saved);
    expect(text).to.not.match(/storkit_/);
    const [again, bdevs2] = await withTarget({ config: parseConfig(text) }, async (_t, c) => [
      await c.call<SpdkConfig>('save_config'),
      await c.call<{ name: string }[]>('bdev_get_bdevs'),
    ]);
    expect(again).to.deep.equal(saved);
    // Everything but the shared-memory handle (a per-process number) comes back the same.
    const stable = (l: unknown[]) =>
      JSON.parse(JSON.stringify(l).replace(/"storkit_region":\d+/g, '"storkit_region":0'));
    expect(stable(bdevs2)).to.deep.equal(stable(bdevs));
  });

  it('holds runtime methods until framework_start_init with --wait-for-rpc', async () => {
    await withTarget({ waitForRpc: true }, async (t, c) => {
      expect(t.app).to.equal(null);
      const e = (await c.call('bdev_get_bdevs').catch((x) => x)) as RpcError;
      expect(e.code).to.equal(RpcCode.InvalidState);
      expect(await c.call('bdev_set_options', { bdev_io_cache_size: 64 })).to.equal(true);
      const waiting = c.call('framework_wait_init');
      expect(await c.call('framework_start_init')).to.equal(true);
      expect(await waiting).to.equal(true);
      expect(await c.call('bdev_get_bdevs')).to.deep.equal([]);
      const late = (await c.call('bdev_set_options', { bdev_io_cache_size: 64 }).catch((x) => x)) as RpcError;
      expect(late.message).to.match(/before framework_start_init/);
      const cfg = await c.call<SpdkConfig>('framework_get_config', { name: 'bdev' });
      expect(cfg).to.deep.equal([
        { method: 'bdev_set_options', params: { bdev_io_cache_size: 64 } },
        { method: 'bdev_wait_for_examine' },
      ]);
    });
  });

  it('answers the framework and thread introspection methods for every reactor', async () => {
    await withTarget({ config: CONFIG }, async (_t, c) => {
      const r = await c.call<{ tick_rate: number; reactors: { lcore: number; lw_threads: unknown[] }[] }>(
        'framework_get_reactors',
      );
      expect(r.tick_rate).to.be.greaterThan(0);
      expect(r.reactors.map((x) => x.lcore)).to.deep.equal([0, 1]);
      const s = await c.call<{ threads: { name: string }[] }>('thread_get_stats');
      expect(s.threads.map((x) => x.name)).to.include.members(['app_thread', 'reactor_1']);
      expect(await c.call('thread_get_pollers')).to.have.property('threads');
      expect(await c.call('thread_get_io_channels')).to.have.property('threads');
      expect(await c.call('framework_get_subsystems')).to.deep.include({ subsystem: 'bdev', depends_on: [] });
      const iostat = await c.call<{ bdevs: { name: string; num_read_ops: number }[] }>('bdev_get_iostat', {
        name: 'Malloc0',
      });
      // No writes; reads only by examine (the lvol module reads each split part's first page).
      expect(iostat.bdevs[0]).to.include({ name: 'Malloc0', num_write_ops: 0 });
    });
  });

  it('rejects bad params and duplicates without leaving anything behind', async () => {
    await withTarget({ config: CONFIG }, async (_t, c) => {
      const before = await c.call('save_config');
      const bad: [string, unknown, RegExp][] = [
        [
          'bdev_malloc_create',
          { name: 'X', num_blocks: 0, block_size: 512 },
          /num_blocks: 0 is below the minimum 1/,
        ],
        ['bdev_malloc_create', { name: 'Malloc0', num_blocks: 8, block_size: 512 }, /exists/],
        ['bdev_null_create', { name: 'N', num_blocks: 8, block_size: 1000 }, /block_size|power of two/],
        [
          'bdev_split_create',
          { base_bdev: 'Malloc0', split_count: 0 },
          /split_count: 0 is below the minimum 1/,
        ],
        ['bdev_malloc_delete', { name: 'nope' }, /nope/],
        ['framework_get_config', { name: 'nosuch' }, /no subsystem named nosuch/],
      ];
      for (const [m, p, re] of bad) {
        const e = (await c.call(m, p).catch((x) => x)) as RpcError;
        expect(e.message, m).to.match(re);
      }
      expect(await c.call('save_config')).to.deep.equal(before);
      const names = (await c.call<{ name: string }[]>('bdev_get_bdevs')).map((b) => b.name);
      expect(names).to.not.include('X');
    });
  });

  it('fails to start on a config with an unknown method, naming it, and cleans up', async () => {
    const path = sock();
    const cfg: SpdkConfig = {
      subsystems: [{ subsystem: 'bdev', config: [{ method: 'bdev_frobnicate', params: {} }] }],
    };
    const t = new Target({ cores: [0], rpcSocket: path, signals: false, log: quiet(), config: cfg });
    const e = await t.start().catch((x) => x);
    expect(String(e)).to.match(/bdev entry 0 \(bdev_frobnicate\) failed: Method not found/);
    const r = await t.done;
    expect(r.code).to.equal(1);
    expect(existsSync(path)).to.equal(false);
  });

  it('logs each subsystem RPC under its component: debug with -L, warnings on failure always', async () => {
    const lines: string[] = [];
    const log = new Logger('notice', (l) => lines.push(l));
    log.enable('bdev');
    const path = sock();
    const t = new Target({ cores: [0], rpcSocket: path, signals: false, log });
    await t.start();
    const c = await RpcClient.connect(path);
    try {
      await c.call('bdev_malloc_create', { name: 'L0', num_blocks: 8, block_size: 512 });
      await c.call('bdev_malloc_create', { name: 'L0', num_blocks: 8, block_size: 512 }).catch(() => {});
      await c.call('framework_get_reactors');
    } finally {
      c.close();
      await t.stop();
    }
    const bdev = lines.filter((l) => / bdev: /.test(l));
    expect(bdev.filter((l) => /DEBUG/.test(l) && /bdev_malloc_create \{"name":"L0"/.test(l))).to.have.length(
      2,
    );
    expect(
      bdev.filter((l) => /WARN/.test(l) && /bdev_malloc_create failed: .*exists/.test(l)),
    ).to.have.length(1);
    const quiet: string[] = [];
    const q = new Logger('notice', (l) => quiet.push(l));
    const path2 = sock();
    const t2 = new Target({ cores: [0], rpcSocket: path2, signals: false, log: q });
    await t2.start();
    const c2 = await RpcClient.connect(path2);
    await c2.call('bdev_malloc_create', { name: 'L1', num_blocks: 8, block_size: 512 });
    c2.close();
    await t2.stop();
    expect(quiet.filter((l) => /DEBUG/.test(l))).to.deep.equal([]);
  });

  it('rejects malformed config files with the place of the error', () => {
    expect(() =>
      parseConfig('{"subsystems": [{"subsystem": "bdev", "config": [{"params": {}}]}]}', 'f.json'),
    ).to.throw(/f.json: subsystems\[0\].config\[0\].method must be a string/);
    expect(() => parseConfig('{nope', 'f.json')).to.throw(/not valid JSON/);
    expect(() => parseConfig('{"subsystems": [{"subsystem": "warp_drive", "config": []}]}')).to.not.throw();
    // SPDK's comments: line and block, never inside strings; errors still point at the right line.
    const commented = parseConfig(
      '// saved by spdk_tgt\n{"subsystems": [ /* bdevs */ {"subsystem": "bdev", "config": [\n' +
        '{"method": "bdev_aio_create", "params": {"name": "A", "filename": "/tmp//x /* y */"}} // a file\n]}]}',
    );
    expect(commented.subsystems[0].config?.[0].params).to.deep.equal({
      name: 'A',
      filename: '/tmp//x /* y */',
    });
    expect(() => parseConfig('// one\n/* two\n*/ {nope')).to.throw(/position 18/); // offsets of the original text
  });

  it('reads a section name as SPDK does (a name, not a filter): an empty section of any name loads, an unknown method is refused', async () => {
    // SPDK writes sections of subsystems without config (scsi, interface, net_framework) as null.
    const ok = new Target({
      cores: [0],
      rpcSocket: sock(),
      signals: false,
      log: quiet(),
      config: {
        subsystems: [
          { subsystem: 'warp_drive', config: [] },
          { subsystem: 'scsi', config: null },
        ],
      },
    });
    await ok.start();
    expect((await ok.stop()).code).to.equal(0);
    const t = new Target({
      cores: [0],
      rpcSocket: sock(),
      signals: false,
      log: quiet(),
      config: { subsystems: [{ subsystem: 'warp_drive', config: [{ method: 'warp_engage', params: {} }] }] },
    });
    expect(String(await t.start().catch((x) => x))).to.match(
      /warp_drive entry 0 \(warp_engage\) failed: Method not found/,
    );
  });
});
