// Every bdev and framework method through a live target: the happy path, and bad params naming the field.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient, type RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, methodCatalog, Target } from '../src/index.js';

describe('app: every method, happy path and bad params', function () {
  this.timeout(60_000);
  let dir: string;
  let t: Target;
  let c: RpcClient;
  const tested = new Set<string>();
  const ok = async (m: string, p?: unknown) => {
    tested.add(m);
    return c.call(m, p);
  };
  const bad = async (m: string, p: unknown, re: RegExp) => {
    tested.add(`${m}!`);
    const e = (await c.call(m, p).catch((x) => x)) as RpcError;
    expect(e, `${m} should fail`).to.have.property('code');
    expect(e.message, m).to.match(re);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-methods-'));
    writeFileSync(join(dir, 'disk.img'), Buffer.alloc(4 << 20));
    t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
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

  it('bdev module create / update / delete methods', async () => {
    expect(await ok('bdev_malloc_create', { name: 'M0', num_blocks: 2048, block_size: 512 })).to.equal('M0');
    await bad('bdev_malloc_create', { num_blocks: 8 }, /block_size: required parameter missing/);
    expect(await ok('bdev_null_create', { name: 'N0', num_blocks: 256, block_size: 4096 })).to.equal('N0');
    await bad(
      'bdev_null_create',
      { name: 'N1', num_blocks: -1, block_size: 4096 },
      /num_blocks: -1 is below the minimum 1/,
    );
    expect(await ok('bdev_null_resize', { name: 'N0', new_size: 2 })).to.equal(true);
    await bad('bdev_null_resize', { name: 'N0' }, /new_size: required parameter missing/);
    expect(
      await ok('bdev_aio_create', { filename: join(dir, 'disk.img'), name: 'A0', block_size: 512 }),
    ).to.equal('A0');
    await bad('bdev_aio_create', { filename: join(dir, 'nope.img'), name: 'A1' }, /nope.img|ENOENT|no such/i);
    expect(await ok('bdev_uring_create', { filename: join(dir, 'disk.img'), name: 'U0' })).to.equal('U0');
    await bad('bdev_uring_create', { filename: 7, name: 'U1' }, /filename: expected a string, got number/);
    expect(await ok('bdev_split_create', { base_bdev: 'M0', split_count: 2 })).to.deep.equal([
      'M0p0',
      'M0p1',
    ]);
    await bad(
      'bdev_split_create',
      { base_bdev: 'M0', split_count: 2000 },
      /split_count: 2000 is above the maximum 1024/,
    );
    const lat = { avg_read_latency: 5, p99_read_latency: 10, avg_write_latency: 5, p99_write_latency: 10 };
    expect(await ok('bdev_delay_create', { base_bdev_name: 'M0p0', name: 'D0', ...lat })).to.equal('D0');
    await bad(
      'bdev_delay_create',
      { base_bdev_name: 'M0p1', name: 'D1' },
      /avg_read_latency: required parameter missing/,
    );
    expect(
      await ok('bdev_delay_update_latency', {
        delay_bdev_name: 'D0',
        latency_type: 'avg_read',
        latency_us: 7,
      }),
    ).to.equal(true);
    await bad(
      'bdev_delay_update_latency',
      { delay_bdev_name: 'D0', latency_type: 'median', latency_us: 7 },
      /latency_type: 'median' is not one of/,
    );
    expect(await ok('bdev_error_create', { base_name: 'M0p1' })).to.equal('EE_M0p1');
    await bad('bdev_error_create', {}, /base_name: required parameter missing/);
    expect(
      await ok('bdev_error_inject_error', {
        name: 'EE_M0p1',
        io_type: 'read',
        error_type: 'failure',
        num: 1,
      }),
    ).to.equal(true);
    await bad(
      'bdev_error_inject_error',
      { name: 'EE_M0p1', io_type: 'read', error_type: 'gremlins' },
      /error_type: 'gremlins'/,
    );
    expect(await ok('bdev_passthru_create', { base_bdev_name: 'N0', name: 'P0' })).to.equal('P0');
    await bad('bdev_passthru_create', { base_bdev_name: 'N0' }, /name: required parameter missing/);
    await ok('bdev_malloc_create', { name: 'R1', num_blocks: 1024, block_size: 512 });
    await ok('bdev_malloc_create', { name: 'R2', num_blocks: 1024, block_size: 512 });
    expect(
      await ok('bdev_raid_create', { name: 'Raid0', raid_level: 'raid1', base_bdevs: ['R1', 'R2'] }),
    ).to.equal('Raid0');
    await bad(
      'bdev_raid_create',
      { name: 'Raid1', raid_level: 'raid7', base_bdevs: ['x'] },
      /raid_level: 'raid7' is not one of/,
    );
    const raids = (await ok('bdev_raid_get_bdevs', { category: 'all' })) as { name: string }[];
    expect(raids.map((r) => r.name)).to.include('Raid0');
    await bad('bdev_raid_get_bdevs', { category: 'broken' }, /category: 'broken' is not one of/);
    expect(await ok('bdev_raid_remove_base_bdev', { name: 'R2' })).to.equal(true);
    await bad('bdev_raid_remove_base_bdev', {}, /name: required parameter missing/);
    // Rebuild onto a third bdev: reactor 0 copies, both reactors' raid objects learn of it.
    await ok('bdev_malloc_create', { name: 'R3', num_blocks: 1024, block_size: 512 });
    // The RPC answered once the removed base left its slot on every reactor: the slot is free now.
    const [degraded] = (await ok('bdev_raid_get_bdevs', { category: 'online' })) as {
      num_base_bdevs_discovered: number;
    }[];
    expect(degraded.num_base_bdevs_discovered).to.equal(1);
    expect(await ok('bdev_raid_add_base_bdev', { raid_bdev: 'Raid0', base_bdev: 'R3' })).to.equal(true);
    await bad('bdev_raid_add_base_bdev', { raid_bdev: 'Raid0' }, /base_bdev: required parameter missing/);
    for (let i = 0; i < 200; i++) {
      const [r] = (await ok('bdev_raid_get_bdevs', { category: 'online' })) as {
        num_base_bdevs_operational: number;
      }[];
      if (r.num_base_bdevs_operational === 2) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    const [rebuilt] = (await ok('bdev_raid_get_bdevs', { category: 'online' })) as {
      num_base_bdevs_operational: number;
      base_bdevs_list: { name: string; is_configured: boolean }[];
    }[];
    expect(rebuilt.num_base_bdevs_operational).to.equal(2);
    expect(rebuilt.base_bdevs_list.map((b) => b.name)).to.deep.equal(['R1', 'R3']);
    // save_config writes the raid as it is now: R3 in the slot R2 left.
    const cfg = (await ok('save_config')) as {
      subsystems: {
        subsystem: string;
        config: { method: string; params: { name?: string; base_bdevs?: string[] } }[];
      }[];
    };
    const raidCfg = cfg.subsystems
      .find((x) => x.subsystem === 'bdev')!
      .config.find((e) => e.method === 'bdev_raid_create' && e.params.name === 'Raid0');
    expect(raidCfg?.params.base_bdevs).to.deep.equal(['R1', 'R3']);

    const names = ((await ok('bdev_get_bdevs')) as { name: string }[]).map((b) => b.name);
    expect(names).to.include.members([
      'M0',
      'N0',
      'A0',
      'U0',
      'M0p0',
      'M0p1',
      'D0',
      'EE_M0p1',
      'P0',
      'Raid0',
    ]);
    await bad('bdev_get_bdevs', { name: 'ghost' }, /ghost/);

    for (const [m, p] of [
      ['bdev_raid_delete', { name: 'Raid0' }],
      ['bdev_passthru_delete', { name: 'P0' }],
      ['bdev_error_delete', { name: 'EE_M0p1' }],
      ['bdev_delay_delete', { name: 'D0' }],
      ['bdev_split_delete', { base_bdev: 'M0' }],
      ['bdev_uring_delete', { name: 'U0' }],
      ['bdev_aio_delete', { name: 'A0' }],
      ['bdev_null_delete', { name: 'N0' }],
      ['bdev_malloc_delete', { name: 'M0' }],
    ] as const) {
      expect(await ok(m, p), m).to.equal(true);
      await bad(m, p, /no |not |ENODEV|exist/i);
    }
    const left = ((await ok('bdev_get_bdevs')) as { name: string }[]).map((b) => b.name);
    expect(left).to.not.include.members(['M0', 'N0', 'A0', 'U0', 'P0']);
  });

  it('bdev statistics, QoS and histogram methods', async () => {
    await ok('bdev_malloc_create', { name: 'S0', num_blocks: 1024, block_size: 512 });
    const st = (await ok('bdev_get_iostat', { name: 'S0' })) as {
      tick_rate: number;
      bdevs: Record<string, unknown>[];
    };
    // One read: examine (the lvol module reads a new bdev's first page, as SPDK's examine_disk does).
    expect(st.bdevs[0]).to.include({ name: 'S0', bytes_read: 4096, num_read_ops: 1, num_write_ops: 0 });
    // SPDK v24.01's fields in its order (spdk_tgt's bdev_get_iostat on a malloc bdev, 2026-12-08),
    // then storkit's two extras.
    expect(Object.keys(st.bdevs[0])).to.deep.equal([
      'name',
      'bytes_read',
      'num_read_ops',
      'bytes_written',
      'num_write_ops',
      'bytes_unmapped',
      'num_unmap_ops',
      'bytes_copied',
      'num_copy_ops',
      'read_latency_ticks',
      'max_read_latency_ticks',
      'min_read_latency_ticks',
      'write_latency_ticks',
      'max_write_latency_ticks',
      'min_write_latency_ticks',
      'unmap_latency_ticks',
      'max_unmap_latency_ticks',
      'min_unmap_latency_ticks',
      'copy_latency_ticks',
      'max_copy_latency_ticks',
      'min_copy_latency_ticks',
      'io_error',
      'num_other_ops',
      'other_latency_ticks',
    ]);
    expect(st.bdevs[0].io_error).to.deep.equal({});
    await bad('bdev_get_iostat', { name: 'ghost' }, /ghost/);
    // bdev_examine answers only with bdev_auto_examine off (a startup option): its happy path is
    // in options.test.ts; here, the refusal while every bdev is examined anyway.
    await bad('bdev_examine', { name: 'S0' }, /bdev_auto_examine is on/);
    tested.add('bdev_examine');
    expect(
      await ok('bdev_set_qos_limit', { name: 'S0', rw_ios_per_sec: 20000, r_mbytes_per_sec: 100 }),
    ).to.equal(true);
    const [b] = (await c.call('bdev_get_bdevs', { name: 'S0' })) as {
      assigned_rate_limits: Record<string, number>;
    }[];
    expect(b.assigned_rate_limits).to.include({ rw_ios_per_sec: 20000, r_mbytes_per_sec: 100 });
    await bad(
      'bdev_set_qos_limit',
      { name: 'S0', rw_ios_per_sec: 'fast' },
      /rw_ios_per_sec: expected an integer/,
    );
    await bad('bdev_get_histogram', { name: 'S0' }, /not enabled/);
    expect(await ok('bdev_enable_histogram', { name: 'S0', enable: true })).to.equal(true);
    await bad('bdev_enable_histogram', { name: 'S0' }, /enable: required parameter missing/);
    const h = (await ok('bdev_get_histogram', { name: 'S0' })) as {
      histogram: string;
      bucket_shift: number;
      tsc_rate: number;
    };
    expect(h.bucket_shift).to.equal(7);
    expect(h.tsc_rate).to.be.greaterThan(1e6);
    expect(Buffer.from(h.histogram, 'base64').length).to.equal((64 - 7 + 1) * 128 * 8);
    const cfg = (await ok('framework_get_config', { name: 'bdev' })) as { method: string }[];
    expect(cfg.map((e) => e.method)).to.include.members(['bdev_malloc_create', 'bdev_set_qos_limit']);
    await ok('bdev_malloc_delete', { name: 'S0' });
    const after = (await c.call('framework_get_config', { name: 'bdev' })) as {
      method: string;
      params: { name: string };
    }[];
    expect(after.filter((e) => e.params?.name === 'S0')).to.deep.equal([]);
  });

  it('framework methods', async () => {
    for (const m of [
      'framework_get_reactors',
      'thread_get_stats',
      'thread_get_pollers',
      'thread_get_io_channels',
    ])
      expect(await ok(m)).to.have.property('tick_rate');
    const mem = (await ok('storkit_get_memory')) as {
      rss: number;
      open_fds: number;
      reactors: { lcore: number; heap_used: number }[];
    };
    expect(mem.rss).to.be.greaterThan(1 << 20);
    expect(mem.open_fds).to.be.greaterThan(3);
    expect(mem.reactors.map((r) => r.lcore)).to.deep.equal([0, 1]);
    for (const r of mem.reactors) expect(r.heap_used).to.be.greaterThan(1 << 20);
    expect(await ok('framework_get_subsystems')).to.be.an('array');
    expect(await ok('save_config')).to.have.property('subsystems');
    expect(await ok('framework_wait_init')).to.equal(true);
    expect(await ok('framework_get_scheduler')).to.deep.equal({ scheduler_name: 'static' });
    expect(await ok('framework_set_scheduler', { name: 'static' })).to.equal(true);
    await bad('framework_set_scheduler', { name: 'dynamic' }, /name: 'dynamic' is not one of static/);
    expect(await ok('framework_disable_cpumask_locks')).to.equal(true);
    expect(await ok('rpc_get_methods')).to.include('bdev_get_bdevs');
    expect(await ok('spdk_get_version'))
      .to.have.property('version')
      .that.matches(/^storkit v/);
    expect(await ok('bdev_wait_for_examine')).to.equal(true);
    await bad('bdev_wait_for_examine', { timeout: 1 }, /takes no parameters/);
    expect(await ok('bdev_raid_set_options', { process_window_size_kb: 1024 })).to.equal(true);
    await bad('bdev_raid_set_options', { process_window_size_kb: 0 }, /below the minimum 1/);
    await bad('framework_start_init', {}, /before framework_start_init/);
    await bad('bdev_set_options', { bdev_io_cache_size: 8 }, /before framework_start_init/);
    await bad('framework_get_reactors', { verbose: true }, /takes no parameters/);
    await bad('spdk_kill_instance', { sig_name: 'SIGFOO' }, /sig_name: 'SIGFOO' is not one of/);
    tested.add('spdk_kill_instance'); // its happy path stops the target: packages/cli/test/tgt.test.ts
    tested.add('bdev_set_options'); // happy path before init: target.test.ts (--wait-for-rpc)
    expect(await ok('bdev_wait_for_examine')).to.equal(true);
    tested.add('framework_start_init');
  });

  it('covers every bdev and framework method in the catalog', () => {
    // Target subsystems (nvmf_*, iscsi_*, vhost_*), the initiator bdev modules (bdev_nvme_*,
    // bdev_virtio_*) and the lvol module (bdev_lvol_*: lvol.test.ts) cover their methods in their
    // own test files.
    const mine = /^(bdev_(?!nvme_|virtio_|lvol_)|framework_|thread_|rpc_|spdk_|save_config$)/;
    const missing = methodCatalog()
      .map((m) => m.name)
      .filter((n) => mine.test(n) && !tested.has(n));
    expect(missing).to.deep.equal([]);
  });
});
