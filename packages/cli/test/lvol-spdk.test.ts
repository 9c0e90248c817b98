// Logical volumes moved between SPDK v24.01 and storkit on the same file, both ways, with SPDK's
// own programs: spdk_tgt (JSON-RPC on its socket) makes or loads the lvstore, spdk_dd writes and
// reads volumes; storkit's `storkit tgt` and `storkit dd` do the same on the other side. Thick,
// thin, snapshot and clone volumes; the same UUIDs, names, flags and sizes in both listings; the
// same bytes read by either, including each side's copy-on-write and thin allocation writes.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { type SpdkTgt, spdkBin, startSpdkTgt } from '@storkit/nvme/testing';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
const exec = promisify(execFile);
const MiB = 1024 * 1024;

interface Lvstore {
  uuid: string;
  name: string;
  base_bdev: string;
  total_data_clusters: number;
  free_clusters: number;
  block_size: number;
  cluster_size: number;
}
interface Lvol {
  alias: string;
  uuid: string;
  name: string;
  is_thin_provisioned: boolean;
  is_snapshot: boolean;
  is_clone: boolean;
  is_esnap_clone: boolean;
}
interface Bdev {
  name: string;
  aliases: string[];
  num_blocks: number;
  block_size: number;
  uuid: string;
  driver_specific: { lvol?: Record<string, unknown> };
}
interface Listing {
  lvstores: Lvstore[];
  lvols: Lvol[];
  bdevs: Bdev[];
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((Math.imul(i, 2654435761) + seed * 40503) >>> 0, i);
  return b;
}

/** The lvstores, lvols and lvol bdevs a target lists, in a stable order. */
async function listing(c: RpcClient): Promise<Listing> {
  await c.call('bdev_wait_for_examine');
  const lvstores = await c.call<Lvstore[]>('bdev_lvol_get_lvstores');
  const lvols = (await c.call<Lvol[]>('bdev_lvol_get_lvols')).sort((a, b) => a.name.localeCompare(b.name));
  const bdevs = (await c.call<Bdev[]>('bdev_get_bdevs'))
    .filter((b) => b.driver_specific.lvol !== undefined)
    .sort((a, b) => a.aliases[0]!.localeCompare(b.aliases[0]!));
  return { lvstores, lvols, bdevs };
}

/**
 * What an lvol bdev is, as both list it. storkit adds SPDK v24.05's `num_allocated_clusters`
 * (v24.01 does not have it), checked on its own.
 */
function bdevShape(b: Bdev) {
  const { num_allocated_clusters: _, ...lvol } = b.driver_specific.lvol ?? {};
  return {
    name: b.name,
    aliases: b.aliases,
    num_blocks: b.num_blocks,
    block_size: b.block_size,
    uuid: b.uuid,
    lvol,
  };
}

const allocated = (b: Bdev) => b.driver_specific.lvol?.num_allocated_clusters;

describe('cli: lvstores between SPDK v24.01 and storkit (spdk_tgt, spdk_dd; storkit tgt, storkit dd)', function () {
  this.timeout(240_000);
  let dir = '';
  const children: ChildProcess[] = [];
  const spdk: SpdkTgt[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-lvol-spdk-'));
  });
  afterEach(async () => {
    for (const p of children.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const t of spdk.splice(0)) await t.stop();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function aioConfig(name: string, file: string, blockSize: number): string {
    const p = join(dir, name);
    writeFileSync(
      p,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              { method: 'bdev_aio_create', params: { name: 'aio0', filename: file, block_size: blockSize } },
            ],
          },
        ],
      }),
    );
    return p;
  }

  /** SPDK's spdk_tgt on `config`, driven over its JSON-RPC socket; stopped (clean unload) after `fn`. */
  async function withSpdk<T>(config: string, fn: (c: RpcClient) => Promise<T>): Promise<T> {
    const t = await startSpdkTgt(JSON.parse(readFileSync(config, 'utf8')));
    spdk.push(t);
    const c = await RpcClient.connect(t.sock);
    try {
      return await fn(c);
    } finally {
      c.close();
      await t.stop();
      spdk.splice(spdk.indexOf(t), 1);
    }
  }

  /** `storkit tgt` on two reactors on `config`; stopped with SIGTERM (clean unload) after `fn`. */
  async function withStorkit<T>(config: string, fn: (c: RpcClient) => Promise<T>): Promise<T> {
    const sock = join(dir, 'storkit.sock');
    const p = spawn(
      process.execPath,
      [main, 'tgt', '--no-stats', '-m', '0x3', '-r', sock, '--json', config],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(p);
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const exit = new Promise<number>((res) => p.on('exit', (code, sig) => res(code ?? (sig ? 128 : 1))));
    await new Promise<void>((res, rej) => {
      const t = setInterval(() => {
        if (/storkit tgt: running/.test(out)) {
          clearInterval(t);
          res();
        }
      }, 50);
      void exit.then((code) => {
        clearInterval(t);
        rej(new Error(`storkit tgt exited ${code} before running:\n${out}`));
      });
    });
    const c = await RpcClient.connect(sock);
    try {
      return await fn(c);
    } finally {
      c.close();
      p.kill('SIGTERM');
      const code = await exit;
      expect(code, out).to.equal(0);
    }
  }

  async function spdkDd(...args: string[]): Promise<void> {
    try {
      await exec(spdkBin('spdk_dd'), ['-s', '256', '-u', '--disable-cpumask-locks', ...args], {
        timeout: 60_000,
      });
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`spdk_dd ${args.join(' ')}: ${x.message}\n${x.stdout ?? ''}${x.stderr ?? ''}`);
    }
  }

  async function storkitDd(...args: string[]): Promise<void> {
    try {
      await exec(process.execPath, [main, 'dd', ...args], { timeout: 60_000 });
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`storkit dd ${args.join(' ')}: ${x.message}\n${x.stdout ?? ''}${x.stderr ?? ''}`);
    }
  }

  /** Write `data` at byte `at` of a volume (multiples of `bs`), with SPDK's or storkit's dd. */
  async function put(
    who: 'spdk' | 'storkit',
    cfg: string,
    bdev: string,
    data: Buffer,
    at: number,
    bs: number,
  ) {
    const f = join(dir, `in-${bdev.replace('/', '_')}-${at}`);
    writeFileSync(f, data);
    const args = ['--json', cfg, '--if', f, '--ob', bdev, '--bs', `${bs}`, '--seek', `${at / bs}`];
    await (who === 'spdk' ? spdkDd(...args) : storkitDd(...args));
  }

  /** Read a whole volume with SPDK's or storkit's dd. */
  async function get(who: 'spdk' | 'storkit', cfg: string, bdev: string, size: number): Promise<Buffer> {
    const f = join(dir, `out-${who}-${bdev.replace('/', '_')}`);
    const args = ['--json', cfg, '--ib', bdev, '--of', f, '--bs', `${MiB}`, '--count', `${size / MiB}`];
    await (who === 'spdk' ? spdkDd(...args) : storkitDd(...args));
    return readFileSync(f);
  }

  function expectBytes(got: Buffer, want: Buffer, what: string): void {
    expect(got.length, what).to.equal(want.length);
    if (!got.equals(want)) {
      let i = 0;
      while (got[i] === want[i]) i++;
      expect.fail(`${what}: first difference at byte ${i} (block of 4 KiB ${Math.floor(i / 4096)})`);
    }
  }

  it('an lvstore SPDK made (thick, thin, snapshot, clone; SPDK wrote the data) opens in storkit: same listing, same bytes; SPDK reads back what storkit writes', async () => {
    const file = join(dir, 'spdk-made.img');
    await exec('truncate', ['-s', `${64 * MiB}`, file]);
    const cfg = aioConfig('spdk-made.json', file, 4096);
    const size = 8 * MiB;
    // SPDK's defaults: 4 MiB clusters.
    await withSpdk(cfg, async (c) => {
      await c.call('bdev_lvol_create_lvstore', { bdev_name: 'aio0', lvs_name: 'lvs0' });
      await c.call('bdev_lvol_create', { lvs_name: 'lvs0', lvol_name: 'thick', size_in_mib: 8 });
      await c.call('bdev_lvol_create', {
        lvs_name: 'lvs0',
        lvol_name: 'thin',
        size_in_mib: 8,
        thin_provision: true,
      });
    });
    const thick = pattern(size, 1);
    const thin = Buffer.alloc(size);
    pattern(3 * MiB, 2).copy(thin, 0);
    await put('spdk', cfg, 'lvs0/thick', thick, 0, MiB);
    await put('spdk', cfg, 'lvs0/thin', thin.subarray(0, 3 * MiB), 0, MiB);
    const spdkListing = await withSpdk(cfg, async (c) => {
      await c.call('bdev_lvol_snapshot', { lvol_name: 'lvs0/thin', snapshot_name: 'snap' });
      await c.call('bdev_lvol_clone', { snapshot_name: 'lvs0/snap', clone_name: 'clone' });
      return listing(c);
    });
    const snap = Buffer.from(thin);
    const clone = Buffer.from(thin);
    // After the snapshot, a write to the thin lvol and one to the clone: copy-on-write in SPDK.
    const e = pattern(MiB / 2, 3);
    await put('spdk', cfg, 'lvs0/thin', e, MiB, MiB / 2);
    e.copy(thin, MiB);
    const cw = pattern(MiB, 4);
    await put('spdk', cfg, 'lvs0/clone', cw, 5 * MiB, MiB);
    cw.copy(clone, 5 * MiB);

    const ours = await withStorkit(cfg, listing);
    expect(ours.lvstores).to.have.length(1);
    expect(ours.lvols.map((l) => l.alias)).to.deep.equal([
      'lvs0/clone',
      'lvs0/snap',
      'lvs0/thick',
      'lvs0/thin',
    ]);
    // The writes after the listing allocated one cluster in each of thin and clone.
    expect(ours.lvstores[0]).to.deep.equal({
      ...spdkListing.lvstores[0],
      free_clusters: spdkListing.lvstores[0]!.free_clusters - 2,
    });
    expect(ours.lvols).to.deep.equal(spdkListing.lvols);
    expect(ours.bdevs.map(bdevShape)).to.deep.equal(spdkListing.bdevs.map(bdevShape));
    // clone, snap, thick, thin: SPDK's copy-on-write into thin and its allocation in clone counted.
    expect(ours.bdevs.map(allocated)).to.deep.equal([1, 1, 2, 1]);

    expectBytes(await get('storkit', cfg, 'lvs0/thick', size), thick, 'thick, read by storkit');
    expectBytes(await get('storkit', cfg, 'lvs0/snap', size), snap, 'snapshot, read by storkit');
    expectBytes(
      await get('storkit', cfg, 'lvs0/thin', size),
      thin,
      'thin (child of the snapshot), read by storkit',
    );
    expectBytes(await get('storkit', cfg, 'lvs0/clone', size), clone, 'clone, read by storkit');

    // storkit writes: part of a cluster the clone still shares with the snapshot (copy-on-write),
    // a cluster the thin lvol never had (allocation), and over the thick lvol.
    const d1 = pattern(MiB / 2, 5);
    await put('storkit', cfg, 'lvs0/clone', d1, 2 * MiB + MiB / 2, MiB / 2);
    d1.copy(clone, 2 * MiB + MiB / 2);
    const d2 = pattern(MiB, 6);
    await put('storkit', cfg, 'lvs0/thin', d2, 6 * MiB, MiB);
    d2.copy(thin, 6 * MiB);
    const d3 = pattern(MiB, 7);
    await put('storkit', cfg, 'lvs0/thick', d3, 3 * MiB, MiB);
    d3.copy(thick, 3 * MiB);

    expectBytes(
      await get('spdk', cfg, 'lvs0/clone', size),
      clone,
      "clone after storkit's copy-on-write, read by SPDK",
    );
    expectBytes(
      await get('spdk', cfg, 'lvs0/thin', size),
      thin,
      "thin after storkit's allocation, read by SPDK",
    );
    expectBytes(await get('spdk', cfg, 'lvs0/thick', size), thick, 'thick after storkit wrote, read by SPDK');
    expectBytes(await get('spdk', cfg, 'lvs0/snap', size), snap, 'the snapshot, untouched, read by SPDK');
  });

  it('an lvstore storkit made (512-byte blocks, 1 MiB clusters) loads in SPDK: same listing, same bytes', async () => {
    const file = join(dir, 'storkit-made.img');
    await exec('truncate', ['-s', `${48 * MiB}`, file]);
    const cfg = aioConfig('storkit-made.json', file, 512);
    const size = 6 * MiB;
    await withStorkit(cfg, async (c) => {
      await c.call('bdev_lvol_create_lvstore', { bdev_name: 'aio0', lvs_name: 'lvs1', cluster_sz: MiB });
      await c.call('bdev_lvol_create', { lvs_name: 'lvs1', lvol_name: 'thick', size_in_mib: 6 });
      await c.call('bdev_lvol_create', {
        lvs_name: 'lvs1',
        lvol_name: 'thin',
        size_in_mib: 6,
        thin_provision: true,
      });
    });
    const thick = pattern(size, 11);
    const thin = Buffer.alloc(size);
    pattern(2 * MiB + MiB / 2, 12).copy(thin, 0);
    await put('storkit', cfg, 'lvs1/thick', thick, 0, MiB);
    await put('storkit', cfg, 'lvs1/thin', thin.subarray(0, 2 * MiB + MiB / 2), 0, MiB / 2);
    const ours = await withStorkit(cfg, async (c) => {
      await c.call('bdev_lvol_snapshot', { lvol_name: 'lvs1/thin', snapshot_name: 'snap' });
      await c.call('bdev_lvol_clone', { snapshot_name: 'lvs1/snap', clone_name: 'clone' });
      return listing(c);
    });
    const snap = Buffer.from(thin);
    const clone = Buffer.from(thin);
    const cw = pattern(MiB / 2, 13);
    await put('storkit', cfg, 'lvs1/clone', cw, 4 * MiB, MiB / 2);
    cw.copy(clone, 4 * MiB);
    const e = pattern(64 * 1024, 14);
    await put('storkit', cfg, 'lvs1/thin', e, MiB + 4096, 4096);
    e.copy(thin, MiB + 4096);

    const theirs = await withSpdk(cfg, listing);
    expect(theirs.lvols).to.deep.equal(ours.lvols);
    // thick 6 + the snapshot's 3 + one each for the clone's and thin's writes after it.
    const lvs = ours.lvstores[0]!;
    expect(theirs.lvstores).to.deep.equal([{ ...lvs, free_clusters: lvs.total_data_clusters - 11 }]);
    expect(lvs.free_clusters).to.equal(lvs.total_data_clusters - 9);
    expect(theirs.bdevs.map(bdevShape)).to.deep.equal(ours.bdevs.map(bdevShape));
    expect(ours.bdevs.map((b) => b.num_blocks)).to.deep.equal([1, 2, 3, 4].map(() => size / 512));
    // clone, snap, thick, thin, when storkit listed them (before the last two writes).
    expect(ours.bdevs.map(allocated)).to.deep.equal([0, 3, 6, 0]);

    expectBytes(await get('spdk', cfg, 'lvs1/thick', size), thick, 'thick, read by SPDK');
    expectBytes(await get('spdk', cfg, 'lvs1/snap', size), snap, 'snapshot, read by SPDK');
    expectBytes(
      await get('spdk', cfg, 'lvs1/thin', size),
      thin,
      "thin after storkit's copy-on-write, read by SPDK",
    );
    expectBytes(await get('spdk', cfg, 'lvs1/clone', size), clone, 'clone, read by SPDK');
  });

  it('clones of an external bdev (bdev_lvol_clone_bdev): SPDK-made opens in storkit, storkit-made in SPDK, copy-on-write both ways', async () => {
    // The external snapshot: a delay bdev with a fixed UUID over a file of known bytes (SPDK stores
    // the bdev's UUID in the clone and finds the bdev by it). It comes after the lvstore's base in
    // the config, as save_config would have it: the clone waits for it (SPDK's degraded lvol) and
    // opens when it is registered.
    const lvsFile = join(dir, 'esnap-lvs.img');
    const extFile = join(dir, 'esnap-ext.img');
    await exec('truncate', ['-s', `${32 * MiB}`, lvsFile]);
    const size = 4 * MiB;
    const base = pattern(size, 21);
    writeFileSync(extFile, base);
    const extUuid = '5ba1e5ee-0e5a-4c1d-9d3a-6f0b7e1a2c33';
    const cfg = join(dir, 'esnap.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              { method: 'bdev_aio_create', params: { name: 'aio0', filename: lvsFile, block_size: 4096 } },
              { method: 'bdev_aio_create', params: { name: 'aioE', filename: extFile, block_size: 4096 } },
              {
                // SPDK v24.01's passthru takes its UUID from its base's (random for aio); the delay
                // bdev keeps the one it is given.
                method: 'bdev_delay_create',
                params: {
                  base_bdev_name: 'aioE',
                  name: 'ext0',
                  avg_read_latency: 0,
                  p99_read_latency: 0,
                  avg_write_latency: 0,
                  p99_write_latency: 0,
                  uuid: extUuid,
                },
              },
            ],
          },
        ],
      }),
    );
    // The same without the external bdev: storkit starts, the clone waits, the bdev comes by RPC.
    const cfgNoExt = join(dir, 'esnap-noext.json');
    writeFileSync(
      cfgNoExt,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              { method: 'bdev_aio_create', params: { name: 'aio0', filename: lvsFile, block_size: 4096 } },
              { method: 'bdev_aio_create', params: { name: 'aioE', filename: extFile, block_size: 4096 } },
            ],
          },
        ],
      }),
    );
    const esnapOf = (l: Listing, alias: string) => {
      const b = l.bdevs.find((x) => x.aliases[0] === alias);
      return b?.driver_specific.lvol;
    };

    // SPDK makes one and copies on write into it.
    const spdkListing = await withSpdk(cfg, async (c) => {
      await c.call('bdev_lvol_create_lvstore', { bdev_name: 'aio0', lvs_name: 'lvsE', cluster_sz: MiB });
      await c.call('bdev_lvol_clone_bdev', { bdev: 'ext0', lvs_name: 'lvsE', clone_name: 'spdkclone' });
      return listing(c);
    });
    expect(esnapOf(spdkListing, 'lvsE/spdkclone')).to.include({ esnap_clone: true });
    const a = Buffer.from(base);
    const w1 = pattern(MiB / 2, 22);
    await put('spdk', cfg, 'lvsE/spdkclone', w1, MiB + MiB / 4, MiB / 4);
    w1.copy(a, MiB + MiB / 4);

    // storkit lists it as SPDK does and reads SPDK's bytes; then copies on write into it too.
    const ours = await withStorkit(cfgNoExt, async (c) => {
      const before = await listing(c);
      expect(before.lvstores.map((l) => l.name)).to.deep.equal(['lvsE']);
      expect(before.bdevs, 'no bdev for the clone while its external bdev is missing').to.deep.equal([]);
      await c.call('bdev_delay_create', {
        base_bdev_name: 'aioE',
        name: 'ext0',
        avg_read_latency: 0,
        p99_read_latency: 0,
        avg_write_latency: 0,
        p99_write_latency: 0,
        uuid: extUuid,
      });
      return listing(c);
    });
    expect(ours.lvols).to.deep.equal(spdkListing.lvols);
    expect(ours.bdevs.map(bdevShape)).to.deep.equal(spdkListing.bdevs.map(bdevShape));
    expect(ours.lvols[0]).to.include({ is_esnap_clone: true, is_clone: false, is_thin_provisioned: true });
    expectBytes(
      await get('storkit', cfg, 'lvsE/spdkclone', size),
      a,
      'SPDK-made esnap clone, read by storkit',
    );
    const w2 = pattern(8192, 23);
    await put('storkit', cfg, 'lvsE/spdkclone', w2, 3 * MiB + 4096, 4096);
    w2.copy(a, 3 * MiB + 4096);
    expectBytes(
      await get('spdk', cfg, 'lvsE/spdkclone', size),
      a,
      "SPDK-made esnap clone after storkit's copy-on-write, read by SPDK",
    );

    // storkit makes one; SPDK lists it the same way and reads storkit's copy-on-write.
    const mine = await withStorkit(cfg, async (c) => {
      const name = await c.call<string>('bdev_lvol_clone_bdev', {
        bdev: extUuid,
        lvs_name: 'lvsE',
        clone_name: 'storkitclone',
      });
      expect(name).to.match(/^[0-9a-f-]{36}$/);
      // What SPDK refuses too: a size that is not whole clusters, a bdev that does not exist.
      await c.call('bdev_lvol_clone_bdev', { bdev: 'nosuch', lvs_name: 'lvsE', clone_name: 'x' }).then(
        () => expect.fail('a missing bdev was cloned'),
        (e: Error) => expect(e.message).to.match(/does not exist/),
      );
      return listing(c);
    });
    const b = Buffer.from(base);
    const w3 = pattern(MiB / 2, 24);
    await put('storkit', cfg, 'lvsE/storkitclone', w3, 2 * MiB + MiB / 2, MiB / 2);
    w3.copy(b, 2 * MiB + MiB / 2);
    const theirs = await withSpdk(cfg, listing);
    expect(theirs.lvols.map((l) => [l.name, l.is_esnap_clone])).to.deep.equal([
      ['spdkclone', true],
      ['storkitclone', true],
    ]);
    expect(theirs.bdevs.map(bdevShape).find((x) => x.aliases[0] === 'lvsE/storkitclone')).to.deep.equal(
      mine.bdevs.map(bdevShape).find((x) => x.aliases[0] === 'lvsE/storkitclone'),
    );
    expectBytes(
      await get('spdk', cfg, 'lvsE/storkitclone', size),
      b,
      'storkit-made esnap clone, read by SPDK',
    );
    expectBytes(
      await get('storkit', cfg, 'lvsE/storkitclone', size),
      b,
      'storkit-made esnap clone, read by storkit',
    );
    // The external bdev itself is untouched by either.
    expectBytes(readFileSync(extFile), base, 'the external snapshot');
  });
});
