// The bdev_lvol_* methods of storkit's target driven by SPDK's own rpc.py (its argument parser, its
// parameter names), on two reactors over an aio file; lvstores come back by examine after a
// restart and are never in the saved config.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import type { LvolJson, LvstoreJson as Lvstore } from '@storkit/lvol';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { spdkBin } from './peers.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

interface BdevJson {
  name: string;
  aliases: string[];
  num_blocks: number;
  block_size: number;
  uuid: string;
  driver_specific: { lvol?: Record<string, unknown> };
}

describe('app: bdev_lvol_* through SPDK rpc.py', function () {
  this.timeout(120_000);
  let dir = '';
  let config: SpdkConfig;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-lvol-'));
    const file = join(dir, 'disk.img');
    await run('truncate', ['-s', `${64 * MiB}`, file]);
    config = {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [{ method: 'bdev_aio_create', params: { name: 'Aio0', filename: file, block_size: 4096 } }],
        },
      ],
    };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function withTarget<T>(fn: (rpc: (...a: string[]) => Promise<unknown>, c: RpcClient) => Promise<T>) {
    const sock = join(dir, 'rpc.sock');
    const t = new Target({
      cores: [0, 1],
      rpcSocket: sock,
      signals: false,
      log: new Logger('error', () => {}),
      config,
    });
    await t.start();
    const c = await RpcClient.connect(sock);
    const rpc = async (...args: string[]) => {
      const { stdout } = await run(spdkBin('rpc.py'), ['-s', sock, ...args]);
      // rpc.py prints JSON, or a bare string as it is.
      const out = stdout.trim();
      if (out === '') return undefined;
      try {
        return JSON.parse(out);
      } catch {
        return out;
      }
    };
    try {
      return await fn(rpc, c);
    } finally {
      c.close();
      const r = await t.stop();
      expect(r.leaked).to.deep.equal([]);
    }
  }

  /** rpc.py's failure: its exit code and the JSON-RPC error it printed. */
  async function refused(rpc: (...a: string[]) => Promise<unknown>, ...args: string[]): Promise<string> {
    try {
      await rpc(...args);
    } catch (e) {
      const x = e as { code: number; stderr: string; stdout: string };
      expect(x.code).to.equal(1);
      return `${x.stdout}${x.stderr}`;
    }
    throw new Error(`rpc.py ${args.join(' ')} succeeded`);
  }

  let before1: LvolJson[] = [];
  let lvsUuid = '';

  it('creates an lvstore, thick and thin lvols, a snapshot and clones; answers as SPDK does', async () => {
    await withTarget(async (rpc, c) => {
      lvsUuid = (await rpc('bdev_lvol_create_lvstore', 'Aio0', 'lvs', '-c', `${MiB}`)) as string;
      expect(lvsUuid).to.match(/^[0-9a-f-]{36}$/);
      const [lvs] = (await rpc('bdev_lvol_get_lvstores')) as Lvstore[];
      expect(lvs).to.include({
        uuid: lvsUuid,
        name: 'lvs',
        base_bdev: 'Aio0',
        block_size: 4096,
        cluster_size: MiB,
      });
      const total = lvs.total_data_clusters;
      expect(lvs.free_clusters).to.equal(total);

      const thick = (await rpc('bdev_lvol_create', '-l', 'lvs', 'thick', '4')) as string;
      const thin = (await rpc('bdev_lvol_create', '-u', lvsUuid, '-t', 'thin', '8')) as string;
      const [b] = (await rpc('bdev_get_bdevs', '-b', 'lvs/thin')) as BdevJson[];
      expect(b).to.include({ name: thin, uuid: thin, num_blocks: 8 * 256, block_size: 4096 });
      expect(b.aliases).to.deep.equal(['lvs/thin']);
      expect(b.driver_specific.lvol).to.deep.include({
        lvol_store_uuid: lvsUuid,
        base_bdev: 'Aio0',
        thin_provision: true,
        num_allocated_clusters: 0,
        snapshot: false,
        clone: false,
      });
      expect(((await rpc('bdev_lvol_get_lvstores', '-l', 'lvs')) as Lvstore[])[0].free_clusters).to.equal(
        total - 4,
      );

      const snap = (await rpc('bdev_lvol_snapshot', 'lvs/thin', 'snap')) as string;
      await rpc('bdev_lvol_clone', 'lvs/snap', 'clone');
      await rpc('bdev_lvol_clone', snap, 'clone2');
      const e = await refused(rpc, 'bdev_lvol_delete', 'lvs/snap');
      // thin became the snapshot's clone too.
      expect(e).to.match(/"code": -16,\s*"message": "[^"]*lvs\/snap is a snapshot with 3 clones/); // EBUSY
      expect(await refused(rpc, 'bdev_lvol_create', '-l', 'lvs', 'thick', '1')).to.match(
        /thick.*exists|exists/,
      );
      expect(await refused(rpc, 'bdev_lvol_create', '-l', 'nope', 'x', '1')).to.match(/no lvstore nope/);
      expect(await refused(rpc, 'bdev_lvol_create', '-l', 'lvs', 'big', '4096')).to.match(
        /ENOSPC|space|clusters/i,
      );

      await rpc('bdev_lvol_rename', 'lvs/clone2', 'renamed');
      await rpc('bdev_lvol_resize', 'lvs/thick', '6');
      expect(((await rpc('bdev_get_bdevs', '-b', thick)) as BdevJson[])[0].num_blocks).to.equal(6 * 256);
      await rpc('bdev_lvol_set_read_only', 'lvs/renamed');
      await rpc('bdev_lvol_inflate', 'lvs/clone');
      const lvols = (await rpc('bdev_lvol_get_lvols', '-l', 'lvs')) as LvolJson[];
      const by = Object.fromEntries(lvols.map((l) => [l.name, l]));
      expect(Object.keys(by).sort()).to.deep.equal(['clone', 'renamed', 'snap', 'thick', 'thin']);
      expect(by.snap).to.include({ is_snapshot: true, is_clone: false, uuid: snap });
      expect(by.clone).to.include({ is_clone: false, is_thin_provisioned: false });
      expect(by.renamed).to.include({ is_clone: true, alias: 'lvs/renamed' });
      expect(by.thick).to.include({ is_thin_provisioned: false });
      const allocated = async (n: string) =>
        ((await rpc('bdev_get_bdevs', '-b', n)) as BdevJson[])[0].driver_specific.lvol
          ?.num_allocated_clusters;
      expect(await allocated('lvs/clone')).to.equal(8);
      expect(await allocated('lvs/thick')).to.equal(6);
      expect(await allocated('lvs/renamed')).to.equal(0);
      expect(by.thin.lvs).to.deep.equal({ name: 'lvs', uuid: lvsUuid });

      // The lvstores are not in the config: they come back by examine (bdev_wait_for_examine).
      const saved = JSON.stringify(await c.call('save_config'));
      expect(saved).to.not.match(/bdev_lvol_/);
      expect(saved).to.match(/bdev_wait_for_examine/);
      before1 = lvols;
    });
  });

  it('finds them again by examine after a restart, same uuids and flags; rename and delete the lvstore', async () => {
    await withTarget(async (rpc) => {
      const lvols = (await rpc('bdev_lvol_get_lvols')) as LvolJson[];
      const key = (l: LvolJson[]) => [...l].sort((a, b) => a.uuid.localeCompare(b.uuid));
      expect(key(lvols)).to.deep.equal(key(before1));
      const [b] = (await rpc('bdev_get_bdevs', '-b', 'lvs/renamed')) as BdevJson[];
      expect(b.driver_specific.lvol).to.include({ clone: true, base_snapshot: 'snap' });

      // Read-only refuses its users' changes, not the snapshot machinery's (as SPDK).
      expect(await refused(rpc, 'bdev_lvol_rename', 'lvs/renamed', 'x')).to.match(
        /"code": -1,\s*"message": "[^"]*read-only/ /* EPERM */,
      );
      expect(await refused(rpc, 'bdev_lvol_resize', 'lvs/renamed', '10')).to.match(
        /"code": -1,\s*"message": "[^"]*read-only/ /* EPERM */,
      );
      await rpc('bdev_lvol_decouple_parent', 'lvs/renamed');
      await rpc('bdev_lvol_delete', 'lvs/snap');
      await rpc('bdev_lvol_rename_lvstore', 'lvs', 'lvs2');
      const names = ((await rpc('bdev_lvol_get_lvols')) as LvolJson[]).map((l) => l.alias).sort();
      expect(names).to.deep.equal(['lvs2/clone', 'lvs2/renamed', 'lvs2/thick', 'lvs2/thin']);
      await rpc('bdev_lvol_delete_lvstore', '-l', 'lvs2');
      expect(await rpc('bdev_lvol_get_lvstores')).to.deep.equal([]);
      const left = ((await rpc('bdev_get_bdevs')) as BdevJson[]).map((x) => x.name);
      expect(left).to.deep.equal(['Aio0']);
    });
    await withTarget(async (rpc) => {
      expect(await rpc('bdev_lvol_get_lvstores')).to.deep.equal([]);
    });
  });
});
