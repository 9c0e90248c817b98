// Configs written by SPDK's own save_config load in storkit unchanged: what v24.01's spdk_tgt wrote
// (fixtures/spdk/record.sh: nothing configured, and the bdev, nvmf, iSCSI and vhost features
// storkit has), and the shape of SPDK master's writers (fixtures/spdk/spdk-master.json). Only what
// ties a config to the machine it was saved on changes: listen ports, the aio file, the remote
// NVMe/TCP target bdev_nvme_attach_controller reaches.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { DEFAULT_CONFIG, Logger, parseConfig, type SpdkConfig, Target } from '../src/index.js';
import { freePort } from './nvmf-helpers.js';

const FIXTURES = new URL('../../test/fixtures/spdk/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

interface Started {
  target: Target;
  rpc: RpcClient;
  dir: string;
  warnings: string[];
  stop(): Promise<void>;
}

async function start(config: SpdkConfig, dir: string): Promise<Started> {
  const warnings: string[] = [];
  const path = join(dir, `rpc-${Math.random().toString(36).slice(2)}.sock`);
  const target = new Target({
    cores: [0, 1],
    rpcSocket: path,
    signals: false,
    log: new Logger('warn', (l) => warnings.push(l)),
    config,
  });
  await target.start();
  const rpc = await RpcClient.connect(path);
  return {
    target,
    rpc,
    dir,
    warnings,
    async stop() {
      rpc.close();
      const r = await target.stop();
      if (r.leaked.length || r.code !== 0) throw new Error(`stop: ${JSON.stringify(r)}`);
    },
  };
}

/** What a loaded config built, as the target reports it. */
async function snapshot(rpc: RpcClient): Promise<unknown> {
  const bdevs = await rpc.call<{ name: string; num_blocks: number; block_size: number }[]>('bdev_get_bdevs');
  const subs =
    await rpc.call<{ nqn: string; namespaces?: { nsid: number; bdev_name: string }[] }[]>(
      'nvmf_get_subsystems',
    );
  const nodes = await rpc.call<{ name: string; luns: unknown[] }[]>('iscsi_get_target_nodes');
  const vhost = await rpc.call<{ ctrlr: string }[]>('vhost_get_controllers');
  return {
    bdevs: bdevs.map((b) => `${b.name} ${b.num_blocks}x${b.block_size}`).sort(),
    nvmf: subs.map((x) => `${x.nqn} ${JSON.stringify(x.namespaces ?? [])}`).sort(),
    iscsi: nodes.map((n) => `${n.name} ${JSON.stringify(n.luns)}`).sort(),
    vhost: vhost.map((c) => c.ctrlr).sort(),
  };
}

/** The machine-bound values of a saved config replaced: ports, the aio file, the remote target. */
function localize(text: string, map: Record<string, string>, aio: string): SpdkConfig {
  let t = text;
  for (const [from, to] of Object.entries(map)) t = t.split(from).join(to);
  t = t.replace(/"\/tmp\/spdk-record\.[^/"]+\/aio\.img"/g, JSON.stringify(aio));
  return parseConfig(t, 'fixture');
}

describe('app: configs SPDK wrote with save_config load unchanged', function () {
  this.timeout(120_000);
  let dir: string;
  /** A storkit target serving cnode1 over NVMe/TCP: what the fixture's bdev_nvme_attach_controller reaches. */
  let remote: Started;
  let remotePort: number;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-spdk-config-'));
    writeFileSync(join(dir, 'aio.img'), Buffer.alloc(16 << 20));
    remotePort = await freePort();
    const cfg = JSON.parse(
      JSON.stringify(DEFAULT_CONFIG).replace('"4420"', `"${remotePort}"`).replace('"3260"', '"0"'),
    );
    cfg.subsystems[1].config[1].params.nqn = 'nqn.2016-06.io.spdk:cnode1';
    cfg.subsystems[1].config[2].params.nqn = 'nqn.2016-06.io.spdk:cnode1';
    cfg.subsystems[1].config[3].params.nqn = 'nqn.2016-06.io.spdk:cnode1';
    cfg.subsystems = cfg.subsystems.filter((s: { subsystem: string }) => s.subsystem !== 'vhost_blk');
    remote = await start(cfg, mkdtempSync(join(tmpdir(), 'storkit-spdk-remote-')));
  });
  it("an option storkit does not act on, given a value other than SPDK's default, is named in one warning", async () => {
    const cfg = parseConfig(
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              { method: 'bdev_nvme_set_options', params: { keep_alive_timeout_ms: 5000 } },
              { method: 'bdev_nvme_set_options', params: { keep_alive_timeout_ms: 6000 } },
              {
                method: 'bdev_malloc_create',
                params: { name: 'M0', num_blocks: 64, block_size: 512, numa_id: 1 },
              },
            ],
          },
        ],
      }),
    );
    const t = await start(cfg, dir);
    await t.stop();
    const named = t.warnings.filter((w) => w.includes('does not act on'));
    expect(named).to.have.length(2);
    expect(named[0]).to.match(/bdev_nvme_set_options: keep_alive_timeout_ms 5000 .*SPDK's default: 10000/);
    expect(named[1]).to.match(/bdev_malloc_create: numa_id 1 .*SPDK's default: -1/);
  });

  after(async () => {
    await remote?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ['spdk-v24.01-empty.json', 'spdk-v24.01-full.json', 'spdk-master.json']) {
    it(`${name}: loads with no warning, and what storkit saves from it reloads the same`, async () => {
      const own = String(await freePort());
      const cfg = localize(fixture(name), { '"4499"': `"${own}"`, '"3299"': '"0"' }, join(dir, 'aio.img'));
      // The saved bdev_nvme_attach_controller reached SPDK's own listener; here, the remote storkit.
      for (const s of cfg.subsystems)
        for (const e of s.config ?? [])
          if (e.method === 'bdev_nvme_attach_controller')
            (e.params as { trsvcid: string }).trsvcid = String(remotePort);
      const t = await start(cfg, dir);
      let saved: SpdkConfig;
      let state: unknown;
      try {
        expect(t.warnings, 'warnings while loading').to.deep.equal([]);
        saved = await t.rpc.call<SpdkConfig>('save_config');
        state = await snapshot(t.rpc);
      } finally {
        await t.stop();
      }
      if (name.includes('full') || name.includes('master')) {
        const methods = saved.subsystems.flatMap((s) => (s.config ?? []).map((e) => e.method));
        const want = [
          'bdev_delay_create',
          'bdev_raid_create',
          'bdev_nvme_attach_controller',
          'bdev_enable_histogram',
          'bdev_set_qos_limit',
          'nvmf_set_max_subsystems',
          'vhost_start_scsi_controller',
          'iscsi_create_auth_group',
        ];
        expect(want.filter((m) => !methods.includes(m))).to.deep.equal([]);
      }
      // What storkit saved from it loads again into the same state.
      const again = await start(saved, dir);
      try {
        expect(again.warnings).to.deep.equal([]);
        expect(await snapshot(again.rpc)).to.deep.equal(state);
      } finally {
        await again.stop();
      }
    });
  }
});
