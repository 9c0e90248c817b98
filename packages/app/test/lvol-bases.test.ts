// lvstores on other bases than a file: an nvme bdev (the target's own NVMe/TCP export of a malloc
// bdev, attached back with bdev_nvme_attach_controller: storkit's host and target in one process)
// and raid bdevs (raid0 and raid1 of malloc bdevs). On each: an lvstore, a thick and a thin lvol,
// data written through an NVMe/TCP export of each lvol; then the base goes away (the controller
// detached, the raid deleted: the lvstore goes with it) and comes back (attached, created again
// over the same members), the lvstore is found again by examine with the same UUIDs, and every
// block written reads back.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { LvolJson, LvstoreJson } from '@storkit/lvol';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { NvmeClient } from './faults/clients.js';
import { freePort } from './nvmf-helpers.js';

const MiB = 1024 * 1024;
const BASE_NQN = 'nqn.2016-06.io.storkit:lvbase';
const LVOL_NQN = 'nqn.2016-06.io.storkit:lvexport';

const la = (p: number) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) });

/** A block's contents, different for every (seed, lba). */
function block(seed: number, lba: number): Uint8Array {
  const b = new Uint8Array(4096);
  const v = new DataView(b.buffer);
  for (let i = 0; i < b.length; i += 4)
    v.setUint32(i, (Math.imul(lba + 1, 2654435761) ^ (seed * 40503 + i)) >>> 0, true);
  return b;
}

/**
 * Blocks spread over the volume: every cluster of an 8 MiB lvol with 1 MiB clusters, twice, at
 * offsets that fall in different strips of a raid0 (a wrong strip mapping after the reload shows).
 */
const LBAS = Array.from({ length: 16 }, (_, i) => i * 128 + ((i * 37) % 120));

interface Base {
  what: string;
  /** The bdev the lvstore goes on. */
  bdev: string;
  make(c: RpcClient): Promise<void>;
  remove(c: RpcClient): Promise<void>;
}

describe('app: lvstores on an nvme bdev and on raid0/raid1 bdevs, found again by examine', function () {
  this.timeout(120_000);
  let dir = '';
  let t: Target | null = null;
  let c: RpcClient | null = null;
  let basePort = 0;
  let lvolPort = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storkit-lvol-bases-'));
    [basePort, lvolPort] = [await freePort(), await freePort()];
    const malloc = (name: string, mib: number) => ({
      method: 'bdev_malloc_create',
      params: { name, num_blocks: (mib * MiB) / 4096, block_size: 4096 },
    });
    const config: SpdkConfig = {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            malloc('NvmeBack', 32),
            malloc('M0', 16),
            malloc('M1', 16),
            malloc('M2', 32),
            malloc('M3', 32),
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn: BASE_NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: BASE_NQN, namespace: { nsid: 1, bdev_name: 'NvmeBack' } },
            },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: BASE_NQN, listen_address: la(basePort) },
            },
            { method: 'nvmf_create_subsystem', params: { nqn: LVOL_NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: LVOL_NQN, listen_address: la(lvolPort) },
            },
          ],
        },
      ],
    };
    t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config,
    });
    await t.start();
    c = await RpcClient.connect(join(dir, 'rpc.sock'));
  });

  after(async () => {
    c?.close();
    if (t !== null) {
      const r = await t.stop();
      expect(r.leaked).to.deep.equal([]);
    }
    await rm(dir, { recursive: true, force: true });
  });

  /** Export `bdev` as namespace 1 of the lvol subsystem, run `fn` with a host on it, unexport. */
  async function through<T>(bdev: string, fn: (h: NvmeClient) => Promise<T>): Promise<T> {
    await c!.call('nvmf_subsystem_add_ns', { nqn: LVOL_NQN, namespace: { nsid: 1, bdev_name: bdev } });
    const h = await NvmeClient.connect(
      `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${lvolPort} subnqn:${LVOL_NQN}`,
    );
    try {
      return await fn(h);
    } finally {
      await h.abandon();
      await c!.call('nvmf_subsystem_remove_ns', { nqn: LVOL_NQN, nsid: 1 });
    }
  }

  async function lvstores(): Promise<LvstoreJson[]> {
    await c!.call('bdev_wait_for_examine');
    return c!.call<LvstoreJson[]>('bdev_lvol_get_lvstores');
  }

  async function roundTrip(base: Base, seed: number): Promise<void> {
    await base.make(c!);
    const lvs = `lvs_${seed}`;
    const uuid = await c!.call<string>('bdev_lvol_create_lvstore', {
      bdev_name: base.bdev,
      lvs_name: lvs,
      cluster_sz: MiB,
    });
    const thick = await c!.call<string>('bdev_lvol_create', {
      lvs_name: lvs,
      lvol_name: 'thick',
      size_in_mib: 8,
    });
    const thin = await c!.call<string>('bdev_lvol_create', {
      lvs_name: lvs,
      lvol_name: 'thin',
      size_in_mib: 8,
      thin_provision: true,
    });
    for (const [name, s] of [
      [thick, seed],
      [thin, seed + 100],
    ] as const)
      await through(name, async (h) => {
        for (const lba of LBAS)
          expect(await h.write(lba, block(s, lba), false), `write ${lba}`).to.equal(true);
        expect(await h.flush()).to.equal(true);
      });
    const lvolsBefore = (await c!.call<LvolJson[]>('bdev_lvol_get_lvols', { lvs_name: lvs })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    const [tb] = await c!.call<{ driver_specific: { lvol: { num_allocated_clusters: number } } }[]>(
      'bdev_get_bdevs',
      { name: thin },
    );
    expect(
      tb!.driver_specific.lvol.num_allocated_clusters,
      'the thin lvol allocated what was written',
    ).to.equal(8);

    // The base goes: the lvstore and its lvol bdevs go with it.
    await base.remove(c!);
    expect((await lvstores()).map((l) => l.uuid)).to.not.include(uuid);
    expect(await c!.call<unknown[]>('bdev_get_bdevs', { name: thick }).catch(() => [])).to.deep.equal([]);

    // It comes back: examine finds the lvstore, the same lvols, the same bytes.
    await base.make(c!);
    const found = (await lvstores()).find((l) => l.uuid === uuid);
    expect(found, `${base.what}: the lvstore found again by examine`).to.include({
      name: lvs,
      base_bdev: base.bdev,
    });
    const lvolsAfter = (await c!.call<LvolJson[]>('bdev_lvol_get_lvols', { lvs_name: lvs })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    expect(lvolsAfter).to.deep.equal(lvolsBefore);
    for (const [name, s] of [
      [thick, seed],
      [thin, seed + 100],
    ] as const)
      await through(name, async (h) => {
        for (const lba of LBAS)
          expect(
            Buffer.from(await h.read(lba)).equals(Buffer.from(block(s, lba))),
            `${base.what} ${name} block ${lba}`,
          ).to.be.true;
        // A block never written: zeroes (thick: cleared at creation; thin: unallocated or zeroed).
        expect(Buffer.from(await h.read(LBAS[0]! + 1)).every((x) => x === 0)).to.equal(true);
      });

    await c!.call('bdev_lvol_delete_lvstore', { lvs_name: lvs });
    await base.remove(c!);
  }

  it('on an nvme bdev (NVMe/TCP host and target in one process)', async () => {
    await roundTrip(
      {
        what: 'nvme',
        bdev: 'Nvme0n1',
        make: async (c) => {
          const names = await c.call<string[]>('bdev_nvme_attach_controller', {
            name: 'Nvme0',
            trtype: 'tcp',
            adrfam: 'IPv4',
            traddr: '127.0.0.1',
            trsvcid: String(basePort),
            subnqn: BASE_NQN,
          });
          expect(names).to.deep.equal(['Nvme0n1']);
        },
        remove: async (c) => {
          await c.call('bdev_nvme_detach_controller', { name: 'Nvme0' });
        },
      },
      1,
    );
  });

  for (const [level, members] of [
    ['raid0', ['M0', 'M1']],
    ['raid1', ['M2', 'M3']],
  ] as const)
    it(`on a ${level} bdev of two malloc bdevs`, async () => {
      const name = `R_${level}`;
      await roundTrip(
        {
          what: level,
          bdev: name,
          make: async (c) => {
            await c.call('bdev_raid_create', {
              name,
              raid_level: level,
              ...(level === 'raid0' ? { strip_size_kb: 64 } : {}),
              base_bdevs: [...members],
            });
          },
          remove: async (c) => {
            await c.call('bdev_raid_delete', { name });
          },
        },
        level === 'raid0' ? 2 : 3,
      );
    });
});
