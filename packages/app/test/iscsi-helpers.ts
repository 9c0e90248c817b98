import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { RpcClient } from '@storkit/rpc';

import { DEFAULT_CONFIG, Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort } from './nvmf-helpers.js';

export const IQN_BASE = 'iqn.2016-06.io.storkit';

/** An SPDK config: malloc bdevs exported as target nodes disk<i> on one portal (a free port). */
export function iscsiConfig(
  bdevs: { name: string; blockSize: number; bytes: number }[],
  o: { port?: string; roBlocks?: number; options?: Record<string, unknown> } = {},
): SpdkConfig {
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: bdevs.map((b) => ({
          method: 'bdev_malloc_create',
          params: { name: b.name, num_blocks: b.bytes / b.blockSize, block_size: b.blockSize },
        })),
      },
      {
        subsystem: 'iscsi',
        config: [
          {
            method: 'iscsi_set_options',
            params: { node_base: IQN_BASE, max_queue_depth: 128, ...o.options },
          },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: o.port ?? '0' }] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/8'] },
          },
          ...bdevs.map((b, i) => ({
            method: 'iscsi_create_target_node',
            params: {
              name: `disk${i + 1}`,
              alias_name: `Data Disk${i + 1}`,
              pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
              luns: [{ bdev_name: b.name, lun_id: 0 }],
              queue_depth: 64,
              disable_chap: true,
            },
          })),
        ],
      },
    ],
  };
}

export interface Running {
  target: Target;
  rpc: RpcClient;
  port: number;
  dir: string;
  url(node: number, lun?: number): string;
  stop(): Promise<void>;
}

/**
 * `npm start`'s DEFAULT_CONFIG with its fixed ports replaced: the iSCSI portal on a port the
 * kernel picks, the NVMe/TCP listener on a free one (the vhost socket lands in the target's dir).
 */
export async function defaultConfigOnFreePorts(): Promise<SpdkConfig> {
  const nvmf = String(await freePort());
  return JSON.parse(
    JSON.stringify(DEFAULT_CONFIG)
      .replace('"trsvcid":"4420"', `"trsvcid":"${nvmf}"`)
      .replace('"port":"3260"', '"port":"0"'),
  ) as SpdkConfig;
}

/** `storkit tgt` in this process on two reactors (cores 0 and 1) with `config`. */
export async function runTarget(config: SpdkConfig, cores = [0, 1]): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'storkit-iscsi-app-'));
  const path = join(dir, 'rpc.sock');
  const target = new Target({
    cores,
    rpcSocket: path,
    signals: false,
    log: new Logger('error', () => {}),
    config,
  });
  await target.start();
  const rpc = await RpcClient.connect(path);
  const [pg] = await rpc.call<{ portals: { port: string }[] }[]>('iscsi_get_portal_groups');
  const port = Number(pg.portals[0].port);
  return {
    target,
    rpc,
    port,
    dir,
    url: (node, lun = 0) => `iscsi://127.0.0.1:${port}/${IQN_BASE}:disk${node}/${lun}`,
    async stop() {
      rpc.close();
      const r = await target.stop();
      rmSync(dir, { recursive: true, force: true });
      if (r.leaked.length || r.code !== 0) throw new Error(`stop: ${JSON.stringify(r)}`);
    },
  };
}

// libiscsi's tools and iscsi-test-cu's output, as the iscsi package's own tests use them.
export { parseCunit, runTool as tool } from '@storkit/iscsi/testing';
