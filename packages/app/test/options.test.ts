// No option accepted and ignored: each SPDK option storkit takes either acts (and the test shows
// its effect), is refused with a message naming it, or logs one warning saying what storkit does
// instead.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient, type RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, Target } from '../src/index.js';

interface Running {
  t: Target;
  c: RpcClient;
  dir: string;
  warnings: string[];
}

/** A two-reactor target waiting for framework_start_init, its warnings collected. */
async function waiting(): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'storkit-options-'));
  const warnings: string[] = [];
  const t = new Target({
    cores: [0, 1],
    rpcSocket: join(dir, 'rpc.sock'),
    vhostDir: dir,
    signals: false,
    log: new Logger('warn', (l) => warnings.push(l)),
    waitForRpc: true,
  });
  await t.start();
  return { t, c: await RpcClient.connect(join(dir, 'rpc.sock')), dir, warnings };
}

async function done(r: Running): Promise<void> {
  r.c.close();
  const res = await r.t.stop();
  rmSync(r.dir, { recursive: true, force: true });
  expect(res.leaked).to.deep.equal([]);
}

async function fails(r: Running, m: string, p: unknown, re: RegExp): Promise<void> {
  const e = (await r.c.call(m, p).catch((x) => x)) as RpcError;
  expect(e, `${m} should fail`).to.have.property('code');
  expect(e.message, m).to.match(re);
}

type Config = {
  subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
};

describe('app: SPDK options act, are refused, or say why not', function () {
  this.timeout(60_000);

  it('iobuf_set_options sizes the pools: saved, counted per module, and max_io_size must fit a large buffer', async () => {
    const r = await waiting();
    try {
      await fails(r, 'iobuf_set_options', { small_bufsize: 1000 }, /small_bufsize/);
      expect(await r.c.call('iobuf_set_options', { large_pool_count: 64, large_bufsize: 65536 })).to.equal(
        true,
      );
      await r.c.call('framework_start_init');
      await fails(
        r,
        'nvmf_create_transport',
        { trtype: 'TCP' },
        /max_io_size 131072 exceeds iobuf large_bufsize 65536/,
      );
      expect(await r.c.call('nvmf_create_transport', { trtype: 'TCP', max_io_size: 65536 })).to.equal(true);
      const stats = (await r.c.call('iobuf_get_stats')) as { module: string }[];
      expect(stats.map((s) => s.module)).to.include('nvmf_TCP');
      const cfg = (await r.c.call('save_config')) as Config;
      const iobuf = cfg.subsystems.find((s) => s.subsystem === 'iobuf');
      expect(iobuf?.config[0]).to.deep.equal({
        method: 'iobuf_set_options',
        params: { small_pool_count: 8192, large_pool_count: 64, small_bufsize: 8192, large_bufsize: 65536 },
      });
    } finally {
      await done(r);
    }
  });

  it('nvmf: zcopy and abort_timeout_sec warn once; poll_groups_mask without every reactor is refused', async () => {
    const r = await waiting();
    try {
      await fails(r, 'nvmf_set_config', { poll_groups_mask: 'bogus' }, /poll_groups_mask/);
      expect(await r.c.call('nvmf_set_config', { poll_groups_mask: '0x1' })).to.equal(true);
      const e = (await r.c.call('framework_start_init').catch((x) => x)) as Error;
      expect(e.message).to.match(/poll_groups_mask 0x1: storkit runs an NVMe-oF poll group on every reactor/);
    } finally {
      await done(r);
    }
    const r2 = await waiting();
    try {
      expect(await r2.c.call('nvmf_set_config', { poll_groups_mask: '0x3' })).to.equal(true);
      await r2.c.call('framework_start_init');
      await r2.c.call('nvmf_create_transport', { trtype: 'TCP', zcopy: true, abort_timeout_sec: 5 });
      await r2.c.call('nvmf_get_transports');
      const w = r2.warnings.filter((l) => /zcopy|abort_timeout_sec/.test(l));
      expect(w).to.have.length(2);
      expect(w.join('\n')).to.match(/zcopy true is accepted but storkit does not act on it/);
      expect(w.join('\n')).to.match(
        /abort_timeout_sec 5 is accepted but storkit does not act on it \(SPDK's default: 1\)/,
      );
    } finally {
      await done(r2);
    }
  });

  it('bdev_set_options: iobuf caches only at their defaults, a pool too small is refused, auto examine off waits for bdev_examine', async () => {
    const r = await waiting();
    try {
      await fails(r, 'bdev_set_options', { iobuf_small_cache_size: 64 }, /iobuf_small_cache_size 64/);
      expect(
        await r.c.call('bdev_set_options', { iobuf_small_cache_size: 128, iobuf_large_cache_size: 16 }),
      ).to.equal(true);
      expect(await r.c.call('bdev_set_options', { bdev_io_pool_size: 100, bdev_io_cache_size: 64 })).to.equal(
        true,
      );
      const e = (await r.c.call('framework_start_init').catch((x) => x)) as Error;
      expect(e.message).to.match(
        /bdev_io_pool_size 100 is not large enough for 2 reactors with bdev_io_cache_size 64/,
      );
    } finally {
      await done(r);
    }
    const r2 = await waiting();
    try {
      await r2.c.call('bdev_set_options', { bdev_auto_examine: false });
      await r2.c.call('framework_start_init');
      await r2.c.call('bdev_split_create', { base_bdev: 'Malloc9', split_count: 2 }).catch(() => undefined);
      await r2.c.call('bdev_malloc_create', { name: 'Malloc9', num_blocks: 2048, block_size: 512 });
      const names = async () =>
        ((await r2.c.call('bdev_get_bdevs')) as { name: string }[]).map((b) => b.name);
      // Not examined: the split waiting for its base does not appear.
      await new Promise((res) => setTimeout(res, 200));
      expect(await names()).to.not.include('Malloc9p0');
      expect(await r2.c.call('bdev_examine', { name: 'Malloc9' })).to.equal(true);
      for (let i = 0; i < 100 && !(await names()).includes('Malloc9p0'); i++)
        await new Promise((res) => setTimeout(res, 20));
      expect(await names()).to.include.members(['Malloc9p0', 'Malloc9p1']);
    } finally {
      await done(r2);
    }
  });

  it("iscsi: SPDK's PDU and data pools warn once when sized; max_large_datain_per_connection reaches the engine", async () => {
    const r = await waiting();
    try {
      await r.c.call('iscsi_set_options', {
        pdu_pool_size: 1000,
        data_out_pool_size: 2048,
        max_large_datain_per_connection: 8,
      });
      await r.c.call('iscsi_set_options', { pdu_pool_size: 2000 });
      await r.c.call('framework_start_init');
      const w = r.warnings.filter((l) => /pool_size/.test(l));
      expect(w).to.have.length(1);
      expect(w[0]).to.match(
        /pdu_pool_size 1000 is accepted but storkit does not act on it \(SPDK's default: 36864\)/,
      );
      const o = (await r.c.call('iscsi_get_options')) as Record<string, unknown>;
      expect(o).to.include({
        max_large_datain_per_connection: 8,
        pdu_pool_size: 2000,
        data_out_pool_size: 2048,
      });
    } finally {
      await done(r);
    }
  });

  it('vhost: delay makes the socket only at vhost_start_scsi_controller; packed_ring_recovery warns', async () => {
    const r = await waiting();
    try {
      await r.c.call('framework_start_init');
      await r.c.call('bdev_malloc_create', { name: 'VM0', num_blocks: 2048, block_size: 512 });
      await r.c.call('vhost_create_blk_controller', {
        ctrlr: 'vb',
        dev_name: 'VM0',
        packed_ring: true,
        packed_ring_recovery: true,
      });
      // In-flight recovery covers split rings only: the option is taken and said not to act.
      expect(r.warnings.join('\n')).to.match(
        /packed_ring_recovery true is accepted but storkit does not act on it/,
      );
      expect(await r.c.call('vhost_create_scsi_controller', { ctrlr: 'vs', delay: true })).to.equal(true);
      expect(existsSync(join(r.dir, 'vs'))).to.equal(false);
      await r.c.call('vhost_scsi_controller_add_target', {
        ctrlr: 'vs',
        scsi_target_num: 0,
        bdev_name: 'VM0',
      });
      const [before] = (await r.c.call('vhost_get_controllers', { name: 'vs' })) as { started: boolean }[];
      expect(before.started).to.equal(false);
      expect(await r.c.call('vhost_start_scsi_controller', { ctrlr: 'vs' })).to.equal(true);
      expect(existsSync(join(r.dir, 'vs'))).to.equal(true);
      await fails(r, 'vhost_start_scsi_controller', { ctrlr: 'vs' }, /started already/);
      const cfg = (await r.c.call('save_config')) as Config;
      const methods = cfg.subsystems.find((x) => x.subsystem === 'vhost_scsi')?.config.map((e) => e.method);
      expect(methods).to.deep.equal([
        'vhost_create_scsi_controller',
        'vhost_scsi_controller_add_target',
        'vhost_start_scsi_controller',
      ]);
    } finally {
      await done(r);
    }
  });
});
