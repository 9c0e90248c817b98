// kill -9 of `storkit tgt` while a thin lvol takes verified writes over NVMe/TCP (every write to a
// new cluster allocates it) and lvol metadata operations run beside them (snapshots of the lvol
// being written, lvols created, resized and deleted, snapshots deleted into their clone). After
// each kill: SPDK v24.01's spdk_dd loads a copy of the image (SPDK's dirty load) and reads the
// lvol; storkit starts again on the image (storkit's dirty load), lists a consistent lvstore (no
// cluster leaked: free + every lvol's allocated clusters = all clusters) and serves the lvol; both
// reads hold every acknowledged write that was flushed or FUA (faults/ledger.ts). Each restart
// builds on what the last one found. SPDK's spdk_tgt also loads a copy of each image and must list
// every lvol storkit lists after its own reload (bdev_lvol_get_lvols and an lvol bdev in
// bdev_get_bdevs for each: same names, UUIDs, snapshot/clone relations, allocated clusters) and the
// same free cluster count: what a kill cut short is found the same way by both, not only the
// lvol being written. CI runs STORKIT_LVOL_KILL_ROUNDS (default 3) rounds.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { startSpdkTgt } from '@storkit/nvme/testing';
import { expect } from 'chai';

import type { SpdkConfig } from '../src/index.js';
import { type BlockClient, NvmeClient, verify, writeLoop } from './faults/clients.js';
import { Ledger, type VerifyResult } from './faults/ledger.js';
import { TgtProcess } from './faults/tgt.js';
import { freePort } from './nvmf-helpers.js';
import { spdkBin } from './peers.js';

const exec = promisify(execFile);
const ROUNDS = Number(process.env.STORKIT_LVOL_KILL_ROUNDS ?? 3);
const NQN = 'nqn.2016-06.io.storkit:lvolkill';
const MiB = 1024 * 1024;
const LVOL_MIB = 8;
const BLOCKS = (LVOL_MIB * MiB) / 4096;

interface Lvstore {
  total_data_clusters: number;
  free_clusters: number;
}
interface Lvol {
  name: string;
  uuid: string;
  is_snapshot: boolean;
  is_clone: boolean;
  is_thin_provisioned: boolean;
  num_allocated_clusters?: number;
  clones?: string[];
}
interface Bdev {
  name: string;
  aliases: string[];
  num_blocks: number;
  driver_specific: {
    lvol?: { num_allocated_clusters: number; base_snapshot?: string; clones?: string[]; snapshot?: boolean };
  };
}

/** What both targets must agree on about one lvstore after a dirty load, in a stable order. */
function shape(lvs: Lvstore, lvols: Lvol[], bdevs: Bdev[]) {
  return {
    free_clusters: lvs.free_clusters,
    total_data_clusters: lvs.total_data_clusters,
    lvols: lvols
      .map((l) => ({
        name: l.name,
        uuid: l.uuid,
        is_snapshot: l.is_snapshot,
        is_clone: l.is_clone,
        is_thin_provisioned: l.is_thin_provisioned,
      }))
      .sort((a, b) => a.name.localeCompare(b.name)),
    // SPDK v24.01's lvol bdev has no num_allocated_clusters (v24.05 added it): compared apart.
    bdevs: bdevs
      .map((b) => ({
        name: b.name,
        alias: b.aliases[0],
        num_blocks: b.num_blocks,
        base_snapshot: b.driver_specific.lvol!.base_snapshot,
        clones: [...(b.driver_specific.lvol!.clones ?? [])].sort(),
      }))
      .sort((a, b) => a.alias!.localeCompare(b.alias!)),
  };
}

/** Snapshots in the order they can go: the nearest ancestor of 'data' first. */
async function lvolSnapshots(t: TgtProcess): Promise<string[]> {
  const [b] = await t.rpc<Bdev[]>('bdev_get_bdevs', { name: 'lvs/data' });
  const parent = b!.driver_specific.lvol!.base_snapshot;
  return parent === undefined ? [] : [parent];
}

function aio(file: string) {
  return { method: 'bdev_aio_create', params: { name: 'aio0', filename: file, block_size: 4096 } };
}

async function connectRetry(port: number): Promise<BlockClient> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      return await NvmeClient.connect(
        `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`,
      );
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

describe('faults: kill -9 of storkit tgt during lvol writes and metadata operations', function () {
  this.timeout(120_000 + ROUNDS * 60_000);
  let dir = '';
  let tgt: TgtProcess | null = null;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-lvol-kill-'));
  });
  after(async () => {
    if (tgt !== null && tgt.p.exitCode === null && tgt.p.signalCode === null) await tgt.kill9();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${ROUNDS} rounds: each reload (SPDK's and storkit's) is consistent and holds every flushed or FUA write`, async () => {
    const img = join(dir, 'lvs.img');
    writeFileSync(img, '');
    truncateSync(img, 64 * MiB);
    const port = await freePort();
    const cfg: SpdkConfig = {
      subsystems: [
        { subsystem: 'bdev', config: [aio(img)] },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_listener',
              params: {
                nqn: NQN,
                listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
              },
            },
          ],
        },
      ],
    };
    // The copy SPDK loads after each kill: only the base bdev; the lvstore is found by examine.
    const spdkImg = join(dir, 'spdk.img');
    const spdkCfg = join(dir, 'spdk.json');
    writeFileSync(spdkCfg, JSON.stringify({ subsystems: [{ subsystem: 'bdev', config: [aio(spdkImg)] }] }));

    tgt = await TgtProcess.start(cfg, dir);
    await tgt.rpc('bdev_lvol_create_lvstore', { bdev_name: 'aio0', lvs_name: 'lvs', cluster_sz: MiB });
    await tgt.rpc('bdev_lvol_create', {
      lvs_name: 'lvs',
      lvol_name: 'data',
      size_in_mib: LVOL_MIB,
      thin_provision: true,
    });
    const ledger = new Ledger(1, 4096);
    let metaOps = 0;
    let writes = 0;
    let verified = 0;
    const errors: string[] = [];

    for (let r = 0; r < ROUNDS; r++) {
      const t = tgt;
      // What a kill cut short (a snapshot not yet merged back, an lvol not yet deleted) goes now,
      // on the reloaded lvstore: deletes after a dirty load, and the store does not fill up.
      for (const l of (await t.rpc<Lvol[]>('bdev_lvol_get_lvols')).filter((l) => l.name !== 'data')) {
        if (!l.is_snapshot) await t.rpc('bdev_lvol_delete', { name: `lvs/${l.name}` });
      }
      for (let snaps = await lvolSnapshots(t); snaps.length > 0; snaps = await lvolSnapshots(t)) {
        // A chain of them: the one whose only clone is 'data' merges into it first.
        await t.rpc('bdev_lvol_delete', { name: `lvs/${snaps[0]}` });
      }
      await t.rpc('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: 'lvs/data' } });
      const client = await connectRetry(port);
      const loop = writeLoop(client, ledger, {
        blocks: BLOCKS,
        depth: 8,
        flushEvery: 16,
        fuaEvery: 8,
        seed: r + 1,
      });
      // Metadata operations beside the writes, one after another, until the kill cuts one short.
      let killed = false;
      const metaBefore = metaOps;
      const meta = (async () => {
        for (let i = 0; !killed; i++) {
          const n = `r${r}_${i}`;
          try {
            await t.rpc('bdev_lvol_snapshot', { lvol_name: 'lvs/data', snapshot_name: `snap_${n}` });
            await t.rpc('bdev_lvol_create', { lvs_name: 'lvs', lvol_name: `vol_${n}`, size_in_mib: 2 });
            await t.rpc('bdev_lvol_resize', { name: `lvs/vol_${n}`, size_in_mib: 3 });
            await t.rpc('bdev_lvol_delete', { name: `lvs/vol_${n}` });
            // The snapshot's only clone is the lvol being written: deleting it merges it there.
            await t.rpc('bdev_lvol_delete', { name: `lvs/snap_${n}` });
            metaOps += 5;
          } catch (e) {
            if (!killed) throw e;
          }
        }
      })();
      const t0 = Date.now();
      while ((loop.stats.flushes < 2 || metaOps < metaBefore + 5) && Date.now() - t0 < 60_000)
        await new Promise((res) => setTimeout(res, 20));
      await new Promise((res) => setTimeout(res, 50 + Math.floor(Math.random() * 700)));
      killed = true;
      await t.kill9();
      await client.abandon();
      const s = await loop.stop();
      await meta;
      writes += s.writes;

      // SPDK's dirty load, on a copy (it would mark the image clean when it is done).
      copyFileSync(img, spdkImg);
      const out = join(dir, 'spdk-read');
      try {
        await exec(
          spdkBin('spdk_dd'),
          [
            '-s',
            '256',
            '-u',
            '--disable-cpumask-locks',
            '--json',
            spdkCfg,
            '--ib',
            'lvs/data',
            '--of',
            out,
            '--bs',
            `${MiB}`,
          ],
          { timeout: 60_000 },
        );
      } catch (e) {
        const x = e as { stdout?: string; stderr?: string };
        throw new Error(`round ${r + 1}: spdk_dd does not read the lvol:\n${x.stdout}${x.stderr}`);
      }
      // SPDK's spdk_tgt on another copy: every lvol it finds (compared with storkit's below).
      const listImg = join(dir, 'spdk-list.img');
      copyFileSync(img, listImg);
      const st = await startSpdkTgt({ subsystems: [{ subsystem: 'bdev', config: [aio(listImg)] }] });
      let spdkShape: ReturnType<typeof shape>;
      try {
        await st.rpc('bdev_wait_for_examine');
        const [slvs] = (await st.rpc('bdev_lvol_get_lvstores')) as Lvstore[];
        const slvols = (await st.rpc('bdev_lvol_get_lvols')) as Lvol[];
        const sbdevs = ((await st.rpc('bdev_get_bdevs')) as Bdev[]).filter((b) => b.driver_specific.lvol);
        expect(slvs, `round ${r + 1}: spdk_tgt finds the lvstore`).to.not.equal(undefined);
        spdkShape = shape(slvs!, slvols, sbdevs);
      } finally {
        await st.stop();
        rmSync(listImg, { force: true });
      }
      // Every lvol SPDK lists is a bdev SPDK registered (none failed to open).
      expect(spdkShape.bdevs.map((b) => b.alias)).to.deep.equal(spdkShape.lvols.map((l) => `lvs/${l.name}`));

      const theirs = readFileSync(out);
      expect(theirs.length).to.equal(LVOL_MIB * MiB);
      const v: VerifyResult = { blocks: 0, errors: [], lostUnflushed: 0, torn: 0 };
      for (const lba of ledger.lbas) ledger.check(lba, theirs.subarray(lba * 4096, (lba + 1) * 4096), v);
      errors.push(...v.errors.map((e) => `round ${r + 1} SPDK: ${e}`));

      // storkit's dirty load of the image itself; then what it serves.
      tgt = await TgtProcess.start(cfg, dir);
      await tgt.rpc('bdev_wait_for_examine');
      const [lvs] = await tgt.rpc<Lvstore[]>('bdev_lvol_get_lvstores');
      const lvols = await tgt.rpc<Lvol[]>('bdev_lvol_get_lvols');
      const bdevs = (await tgt.rpc<Bdev[]>('bdev_get_bdevs')).filter((b) => b.driver_specific.lvol);
      expect(lvols.map((l) => l.name)).to.include('data');
      expect(shape(lvs!, lvols, bdevs), `round ${r + 1}: spdk_tgt lists what storkit lists`).to.deep.equal(
        spdkShape,
      );
      const used = bdevs.reduce((n, b) => n + b.driver_specific.lvol!.num_allocated_clusters, 0);
      expect(
        lvs!.free_clusters + used,
        `round ${r + 1}: free + allocated = all (${lvols.length} lvols)`,
      ).to.equal(lvs!.total_data_clusters);
      await tgt.rpc('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: 'lvs/data' } });
      const reader = await connectRetry(port);
      const ours = await verify(reader, ledger);
      await reader.abandon();
      await tgt.rpc('nvmf_subsystem_remove_ns', { nqn: NQN, nsid: 1 });
      verified += ours.blocks;
      errors.push(...ours.errors.map((e) => `round ${r + 1} storkit: ${e}`));
      console.log(
        `      round ${r + 1}: ${s.writes} writes (${s.fua} FUA), ${s.flushes} flushes, ${metaOps} metadata ops so far; reloaded ${lvols.length} lvols, ${lvs!.free_clusters}/${lvs!.total_data_clusters} clusters free; errors ${errors.length}`,
      );
    }
    const code = await tgt.stop();
    expect(code).to.equal(0);
    expect(errors).to.deep.equal([]);
    expect(writes).to.be.greaterThan(ROUNDS * 32);
    expect(verified).to.be.greaterThan(0);
  });
});
