// The lvol module on the harness over malloc bdevs: lvstores made by the RPC functions, lvols as
// bdevs with their data through the bdev layer, the lvstore SPDK v24.01 made found by examine with
// the same UUIDs, sizes, flags and bytes SPDK reported and wrote.
import { bdevGetByName, bdevInfoJson } from '@storkit/bdev';
import { bdevNotifyBlockcntChange } from '@storkit/bdev/module';
import { image, manifest, pattern } from '@storkit/blob/testing';
import { expect } from 'chai';
import {
  bdevLvolClone,
  bdevLvolCreate,
  bdevLvolCreateLvstore,
  bdevLvolDecoupleParent,
  bdevLvolDelete,
  bdevLvolDeleteLvstore,
  bdevLvolGetLvols,
  bdevLvolGetLvstores,
  bdevLvolGrowLvstore,
  bdevLvolInflate,
  bdevLvolRename,
  bdevLvolRenameLvstore,
  bdevLvolResize,
  bdevLvolSetReadOnly,
  bdevLvolSnapshot,
  registerLvolModule,
  stores,
  unloadLvs,
  unregisterLvolModule,
} from '../src/index.js';
import { bdevIo, examined, harness, malloc } from './helpers.js';

const MiB = 1024 * 1024;

function fill(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 131) & 0xff;
  return b;
}

function unloadAll(h: ReturnType<typeof harness>): void {
  for (const s of [...stores.values()]) h.run((cb) => unloadLvs(s, cb));
}

describe('lvol on the harness', function () {
  this.timeout(120000);
  before(registerLvolModule);
  after(unregisterLvolModule);

  it("finds the lvstore SPDK made (examine) with SPDK's UUIDs, sizes, flags, relations and bytes", () => {
    const h = harness(2);
    const m = manifest();
    const disk = malloc(h, 'aio0', { image: image('lvs') });
    examined(h);
    const lvs = bdevLvolGetLvstores();
    expect(lvs).to.deep.equal(m.lvstores.map((s) => ({ ...s, base_bdev: 'aio0' })));
    const sort = <T extends { uuid: string }>(l: T[]) => [...l].sort((a, b) => a.uuid.localeCompare(b.uuid));
    expect(sort(bdevLvolGetLvols())).to.deep.equal(sort(m.lvols));
    for (const sb of m.bdevs.filter((b) => b.driver_specific?.lvol !== undefined)) {
      const ours = bdevGetByName(sb.name);
      expect(ours, sb.name).to.not.equal(undefined);
      const info = bdevInfoJson(ours!) as Record<string, unknown>;
      expect(info.aliases).to.deep.equal(sb.aliases);
      expect(info.num_blocks).to.equal(sb.num_blocks);
      expect(info.uuid).to.equal(sb.uuid);
      const mine = (info.driver_specific as { lvol: Record<string, unknown> }).lvol;
      const theirs = sb.driver_specific?.lvol as Record<string, unknown>;
      const { num_allocated_clusters: _n, ...rest } = mine;
      expect({ ...rest, base_bdev: 'x' }).to.deep.equal({ ...theirs, base_bdev: 'x' });
    }
    // The bytes spdk_dd wrote, read through our lvol bdevs on both reactors.
    const byAlias = (a: string) => m.lvols.find((l) => l.alias === a)!.uuid;
    const check = (alias: string, seek: number, want: Uint8Array, t: number) => {
      const got = new Uint8Array(want.length);
      bdevIo(h, byAlias(alias), false, seek, got, t);
      expect(Buffer.from(got).equals(Buffer.from(want)), `${alias} at ${seek}`).to.equal(true);
    };
    check('lvs0/thick1', 0, pattern('p1'), 0);
    check('lvs0/snap1', 100, pattern('p2'), 1);
    check('lvs0/thin1', 300, pattern('p1').subarray(0, 8192), 0);
    const clone = new Uint8Array(pattern('p2'));
    clone.set(pattern('p3'), 4096);
    check('lvs0/clone1', 100, clone, 1);
    check('lvs0/big1', 24560, pattern('p4'), 0);
    unloadAll(h);
    disk.remove();
  });

  it('RPCs: lvstore, thick and thin lvols, snapshot, clone, rename, resize, read-only, inflate, decouple, delete', () => {
    const h = harness(2);
    const disk = malloc(h, 'Malloc0', { size: 32 * MiB });
    const lvsUuid = h.run<string>((cb) =>
      bdevLvolCreateLvstore({ bdev_name: 'Malloc0', lvs_name: 'lvs', cluster_sz: 1 * MiB }, cb as never),
    );
    expect(bdevLvolGetLvstores()[0]).to.include({
      uuid: lvsUuid,
      name: 'lvs',
      base_bdev: 'Malloc0',
      cluster_size: MiB,
      block_size: 4096,
    });
    const total = bdevLvolGetLvstores()[0].total_data_clusters;
    const thick = h.run<string>((cb) =>
      bdevLvolCreate({ lvol_name: 'thick', size_in_mib: 4, lvs_name: 'lvs' }, cb as never),
    );
    const thin = h.run<string>((cb) =>
      bdevLvolCreate(
        { lvol_name: 'thin', size_in_mib: 12, thin_provision: true, uuid: lvsUuid },
        cb as never,
      ),
    );
    expect(bdevLvolGetLvstores()[0].free_clusters).to.equal(total - 4);
    expect(bdevGetByName(thin)?.aliases.has('lvs/thin')).to.equal(true);
    expect(bdevGetByName('lvs/thin')?.numBlocks).to.equal(12 * 256);
    const A = fill(8192, 1);
    bdevIo(h, 'lvs/thin', true, 256 * 10 + 5, A, 1);
    expect(bdevLvolGetLvstores()[0].free_clusters).to.equal(total - 5);
    const snap = h.run<string>((cb) =>
      bdevLvolSnapshot({ lvol_name: 'lvs/thin', snapshot_name: 'snap' }, cb as never),
    );
    const clone = h.run<string>((cb) =>
      bdevLvolClone({ snapshot_name: 'lvs/snap', clone_name: 'clone' }, cb as never),
    );
    const B = fill(4096, 2);
    bdevIo(h, clone, true, 256 * 10 + 5, B, 0);
    const got = new Uint8Array(8192);
    bdevIo(h, 'lvs/clone', false, 256 * 10 + 5, got, 1);
    expect(Buffer.from(got.subarray(0, 4096)).equals(Buffer.from(B))).to.equal(true);
    expect(Buffer.from(got.subarray(4096)).equals(Buffer.from(A.subarray(4096)))).to.equal(true);
    const info = Object.fromEntries(bdevLvolGetLvols().map((l) => [l.name, l]));
    expect(info.snap).to.include({ is_snapshot: true, is_clone: false });
    expect(info.thin).to.include({ is_snapshot: false, is_clone: true, is_thin_provisioned: true });
    expect(info.clone).to.include({ is_clone: true, uuid: clone });
    expect(info.thick).to.include({ is_thin_provisioned: false, uuid: thick });
    // Snapshots are read-only bdevs: a write fails.
    expect(() => bdevIo(h, snap, true, 0, new Uint8Array(4096))).to.throw(/status -1/);
    // Delete is refused for a snapshot with two clones.
    expect(h.runErr((cb) => bdevLvolDelete({ name: 'lvs/snap' }, cb)))
      .to.include({ code: 'EBUSY' })
      .and.have.property('message')
      .that.matches(/2 clones/);
    h.run((cb) => bdevLvolRename({ old_name: 'lvs/clone', new_name: 'clone2' }, cb));
    expect(bdevGetByName('lvs/clone2')?.name).to.equal(clone);
    expect(bdevGetByName('lvs/clone')).to.equal(undefined);
    h.run((cb) => bdevLvolResize({ name: 'lvs/thick', size_in_mib: 6 }, cb));
    expect(bdevGetByName(thick)?.numBlocks).to.equal(6 * 256);
    h.run((cb) => bdevLvolDecoupleParent({ name: 'lvs/clone2' }, cb));
    expect(bdevLvolGetLvols().find((l) => l.name === 'clone2')).to.include({ is_clone: false });
    h.run((cb) => bdevLvolInflate({ name: 'lvs/thin' }, cb));
    expect(bdevLvolGetLvols().find((l) => l.name === 'thin')).to.include({
      is_clone: false,
      is_thin_provisioned: false,
    });
    // No clones left: the snapshot goes.
    h.run((cb) => bdevLvolDelete({ name: 'lvs/snap' }, cb));
    expect(bdevGetByName(snap)).to.equal(undefined);
    bdevIo(h, 'lvs/thin', false, 256 * 10 + 5, got, 1);
    expect(Buffer.from(got).equals(Buffer.from(A))).to.equal(true);
    h.run((cb) => bdevLvolSetReadOnly({ name: 'lvs/thick' }, cb));
    expect(() => bdevIo(h, thick, true, 0, new Uint8Array(4096))).to.throw(/status -1/);
    h.run((cb) => bdevLvolRenameLvstore({ old_name: 'lvs', new_name: 'lvs9' }, cb));
    expect(bdevGetByName('lvs9/thick')?.name).to.equal(thick);
    // Unload, then the same bytes under a new bdev: examine finds everything again.
    unloadAll(h);
    expect(bdevGetByName(thick)).to.equal(undefined);
    const again = malloc(h, 'Malloc1', { region: disk.region.handle, size: 32 * MiB });
    examined(h);
    const names = bdevLvolGetLvols()
      .map((l) => l.alias)
      .sort();
    expect(names).to.deep.equal(['lvs9/clone2', 'lvs9/thick', 'lvs9/thin']);
    bdevIo(h, 'lvs9/thin', false, 256 * 10 + 5, got, 1);
    expect(Buffer.from(got).equals(Buffer.from(A))).to.equal(true);
    expect(() => bdevIo(h, 'lvs9/thick', true, 0, new Uint8Array(4096))).to.throw(/status -1/);
    h.run((cb) => bdevLvolDeleteLvstore({ lvs_name: 'lvs9' }, cb));
    expect(bdevLvolGetLvstores()).to.deep.equal([]);
    again.remove();
    disk.remove();
  });

  it('grows an lvstore whose base bdev grew (bdev_lvol_grow_lvstore), kept across a reload', () => {
    const h = harness(2);
    const disk = malloc(h, 'Malloc0', { size: 64 * MiB });
    // The lvstore is made on the first 16 MiB; then the bdev grows to 64.
    const bdev = bdevGetByName('Malloc0')!;
    bdevNotifyBlockcntChange(bdev, (16 * MiB) / 4096);
    h.run((cb) =>
      bdevLvolCreateLvstore({ bdev_name: 'Malloc0', lvs_name: 'g', cluster_sz: MiB }, cb as never),
    );
    const small = bdevLvolGetLvstores()[0];
    h.run((cb) =>
      bdevLvolCreate({ lvs_name: 'g', lvol_name: 'v', size_in_mib: 40, thin_provision: true }, cb as never),
    );
    // Thin: larger than the lvstore is (SPDK allows it).
    const A = fill(4096, 5);
    bdevIo(h, 'g/v', true, 0, A, 1);
    bdevNotifyBlockcntChange(bdev, (64 * MiB) / 4096);
    expect(bdevLvolGetLvstores()[0].total_data_clusters).to.equal(small.total_data_clusters);
    h.run((cb) => bdevLvolGrowLvstore({ lvs_name: 'g' }, cb as never));
    const grown = bdevLvolGetLvstores()[0];
    expect(grown.total_data_clusters).to.equal(small.total_data_clusters + 48);
    expect(grown.free_clusters).to.equal(small.free_clusters - 1 + 48);
    // Fill the lvol: its clusters now come from the grown part too.
    for (let c = 1; c < 40; c++) bdevIo(h, 'g/v', true, c * 256, fill(4096, c), c & 1);
    expect(bdevLvolGetLvstores()[0].free_clusters).to.equal(grown.free_clusters - 39);
    unloadAll(h);
    const again = malloc(h, 'Malloc1', { region: disk.region.handle, size: 64 * MiB });
    examined(h);
    expect(bdevLvolGetLvstores()[0]).to.include({
      total_data_clusters: grown.total_data_clusters,
      free_clusters: grown.free_clusters - 39,
    });
    const got = new Uint8Array(4096);
    for (const c of [0, 17, 39]) {
      bdevIo(h, 'g/v', false, c * 256, got, 0);
      expect(Buffer.from(got).equals(Buffer.from(c === 0 ? A : fill(4096, c))), `cluster ${c}`).to.equal(
        true,
      );
    }
    h.run((cb) => bdevLvolDeleteLvstore({ lvs_name: 'g' }, cb));
    again.remove();
    disk.remove();
  });
});
