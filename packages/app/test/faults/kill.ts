// The kill -9 rounds of the fault campaign (see ../fault-kill.test.ts), shared with the soak.
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { SpdkConfig } from '../../src/index.js';
import { freePort } from '../nvmf-helpers.js';
import { type BlockClient, NvmeClient, QemuIoClient, VhostClient, verify, writeLoop } from './clients.js';
import { Ledger } from './ledger.js';
import { TgtProcess } from './tgt.js';

export const NQN = 'nqn.2016-06.io.storkit:faults';
export const IQN = 'iqn.2016-06.io.storkit:faults';
export const BLOCKS = 512; // written region per disk: 2 MiB of 4 KiB blocks, 256 KiB of 512 B sectors

export function config(dir: string, nvmePort: number, iscsiPort: number, volatile: boolean): SpdkConfig {
  // The negative control: RAM disks lose everything with the process, so the check must fail.
  const ram = (name: string, bs: number) => ({
    method: 'bdev_malloc_create',
    params: { name, num_blocks: (16 << 20) / bs, block_size: bs },
  });
  const files = [
    {
      method: 'bdev_uring_create',
      params: { name: 'U0', filename: join(dir, 'nvme.img'), block_size: 4096 },
    },
    {
      method: 'bdev_aio_create',
      params: { name: 'A0', filename: join(dir, 'iscsi.img'), block_size: 512 },
    },
    {
      method: 'bdev_uring_create',
      params: { name: 'U1', filename: join(dir, 'vhost.img'), block_size: 4096 },
    },
  ];
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: volatile ? [ram('U0', 4096), ram('A0', 512), ram('U1', 4096)] : files,
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          { method: 'nvmf_subsystem_add_ns', params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'U0' } } },
          {
            method: 'nvmf_subsystem_add_listener',
            params: {
              nqn: NQN,
              listen_address: {
                trtype: 'TCP',
                adrfam: 'IPv4',
                traddr: '127.0.0.1',
                trsvcid: String(nvmePort),
              },
            },
          },
        ],
      },
      {
        subsystem: 'iscsi',
        config: [
          { method: 'iscsi_set_options', params: { node_base: 'iqn.2016-06.io.storkit' } },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(iscsiPort) }] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/32'] },
          },
          {
            method: 'iscsi_create_target_node',
            params: {
              name: 'faults',
              pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
              luns: [{ bdev_name: 'A0', lun_id: 0 }],
              queue_depth: 32,
              disable_chap: true,
            },
          },
        ],
      },
      {
        subsystem: 'vhost_blk',
        config: [
          { method: 'vhost_create_blk_controller', params: { ctrlr: 'vhost.faults', dev_name: 'U1' } },
        ],
      },
    ],
  };
}

/**
 * Connect, retrying for up to 60 s: on a loaded shared machine a target that just started can be
 * slower than a client's handshake timeout (NVMe/TCP's ICResp wait is 5 s).
 */
export async function connectRetry(d: Disk): Promise<BlockClient> {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      return await d.connect();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export interface Disk {
  ledger: Ledger;
  connect(): Promise<BlockClient>;
  depth: number;
  /** Acknowledged writes between flushes (qemu-io's one-at-a-time writes are slow: it flushes more often). */
  flushEvery: number;
}

export interface RoundFigures {
  rounds: number;
  kills: number;
  writes: number;
  fua: number;
  flushes: number;
  verified: number;
  errors: string[];
  lostUnflushed: number;
  torn: number;
  rssAfterRestart: number[];
}

/** The three disks' backing files in `dir`, and one Disk per protocol with an empty ledger. */
export async function threeDisks(
  dir: string,
): Promise<{ disks: Disk[]; nvmePort: number; iscsiPort: number }> {
  for (const [f, mb] of [
    ['nvme.img', 16],
    ['iscsi.img', 16],
    ['vhost.img', 16],
  ] as const) {
    writeFileSync(join(dir, f), '');
    truncateSync(join(dir, f), mb << 20);
  }
  const nvmePort = await freePort();
  const iscsiPort = await freePort();
  const disks: Disk[] = [
    {
      ledger: new Ledger(1, 4096),
      depth: 8,
      flushEvery: 16,
      connect: () =>
        NvmeClient.connect(`trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${nvmePort} subnqn:${NQN}`),
    },
    {
      ledger: new Ledger(2, 512),
      depth: 1,
      flushEvery: 4,
      connect: () => QemuIoClient.open(`iscsi://127.0.0.1:${iscsiPort}/${IQN}/0`, 512, join(dir, 'pattern')),
    },
    {
      ledger: new Ledger(3, 4096),
      depth: 8,
      flushEvery: 16,
      connect: () => VhostClient.attach(join(dir, 'vhost.faults')),
    },
  ];
  return { disks, nvmePort, iscsiPort };
}

/** Run `rounds` kill -9 rounds in `dir`; returns the figures (the caller asserts). */
export async function killRounds(
  dir: string,
  rounds: number,
  log = (_: string) => {},
  volatile = false,
): Promise<RoundFigures> {
  const { disks, nvmePort, iscsiPort } = await threeDisks(dir);
  const cfg = config(dir, nvmePort, iscsiPort, volatile);
  const fig: RoundFigures = {
    rounds: 0,
    kills: 0,
    writes: 0,
    fua: 0,
    flushes: 0,
    verified: 0,
    errors: [],
    lostUnflushed: 0,
    torn: 0,
    rssAfterRestart: [],
  };
  let tgt = await TgtProcess.start(cfg, dir);
  try {
    for (let r = 0; r < rounds; r++) {
      const clients = await Promise.all(disks.map((d) => connectRetry(d)));
      const loops = clients.map((c, i) =>
        writeLoop(c, disks[i].ledger, {
          blocks: BLOCKS,
          depth: disks[i].depth,
          flushEvery: disks[i].flushEvery,
          fuaEvery: 8,
          seed: r * 3 + i + 1,
        }),
      );
      // Let every writer get some flushes acknowledged, then kill at a moment nobody chose.
      const t0 = Date.now();
      while (loops.some((l) => l.stats.flushes < 2) && Date.now() - t0 < 30_000)
        await new Promise((res) => setTimeout(res, 20));
      await new Promise((res) => setTimeout(res, 50 + Math.floor(Math.random() * 700)));
      await tgt.kill9();
      fig.kills++;
      for (const c of clients) await c.abandon();
      const stats = await Promise.all(loops.map((l) => l.stop()));
      for (const s of stats) {
        fig.writes += s.writes;
        fig.fua += s.fua;
        fig.flushes += s.flushes;
      }
      tgt = await TgtProcess.start(cfg, dir);
      fig.rssAfterRestart.push((await tgt.rpc<{ rss: number }>('storkit_get_memory')).rss);
      const readers = await Promise.all(disks.map((d) => connectRetry(d)));
      for (const [i, c] of readers.entries()) {
        const v = await verify(c, disks[i].ledger);
        fig.verified += v.blocks;
        fig.errors.push(...v.errors.map((e) => `round ${r + 1} ${c.name}: ${e}`));
        fig.lostUnflushed += v.lostUnflushed;
        fig.torn += v.torn;
        await c.abandon();
      }
      fig.rounds++;
      log(
        `round ${r + 1}: ${stats.map((s, i) => `${readers[i].name} ${s.writes} writes (${s.fua} FUA), ${s.flushes} flushes`).join('; ')}; errors ${fig.errors.length}`,
      );
    }
  } finally {
    await tgt.stop();
  }
  return fig;
}
