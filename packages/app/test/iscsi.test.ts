import { expect } from 'chai';

import { iscsiConfig, type Running, runTarget, tool } from './iscsi-helpers.js';

describe('app: iscsi subsystem', function () {
  this.timeout(120_000);
  let t: Running;
  before(async () => {
    t = await runTarget(
      iscsiConfig([
        { name: 'Malloc0', blockSize: 512, bytes: 16 << 20 },
        { name: 'Malloc1', blockSize: 4096, bytes: 64 << 20 },
      ]),
    );
  });
  after(async () => {
    await t?.stop();
  });

  it('iscsi-ls lists both target nodes', async () => {
    const r = await tool('iscsi-ls', [`iscsi://127.0.0.1:${t.port}`]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.include(`Portal:127.0.0.1:${t.port},1`);
  });

  it('iscsi-inq and readcapacity16 on both nodes', async () => {
    for (const [n, bs, bytes] of [
      [1, 512, 16 << 20],
      [2, 4096, 64 << 20],
    ]) {
      for (let k = 0; k < 4; k++) {
        const inq = await tool('iscsi-inq', [t.url(n)]);
        expect(inq.code, inq.out).to.equal(0);
        const cap = await tool('iscsi-readcapacity16', [t.url(n)]);
        expect(cap.code, cap.out).to.equal(0);
        expect(cap.out).to.include(`LOGICAL BLOCK LENGTH IN BYTES:${bs}`);
        expect(cap.out).to.include(`Total size:${bytes}`);
      }
    }
  });

  // SPDK's SCSI layer drops a LUN whose bdev is hot removed: REPORT LUNS no longer lists it, the
  // node's LUN list shrinks on every reactor, and the LUNs left keep serving.
  it('a hot-removed bdev takes its LUN away; the other LUN keeps serving', async () => {
    await t.rpc.call('bdev_malloc_create', { name: 'Hot0', num_blocks: 2048, block_size: 512 });
    await t.rpc.call('bdev_malloc_create', { name: 'Hot1', num_blocks: 2048, block_size: 512 });
    await t.rpc.call('iscsi_create_target_node', {
      name: 'disk9',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
      luns: [
        { bdev_name: 'Hot0', lun_id: 0 },
        { bdev_name: 'Hot1', lun_id: 1 },
      ],
      queue_depth: 16,
      disable_chap: true,
    });
    const portal = `iscsi://127.0.0.1:${t.port}`;
    const lunsOf = async () =>
      (
        await t.rpc.call<{ name: string; luns: { bdev_name: string; lun_id: number }[] }[]>(
          'iscsi_get_target_nodes',
        )
      ).find((n) => n.name.endsWith(':disk9'))!.luns;
    let ls = await tool('iscsi-ls', ['-s', portal]);
    expect(ls.out).to.match(/disk9[\s\S]*Lun:0[\s\S]*Lun:1/);
    expect((await tool('iscsi-inq', [`${portal}/${'iqn.2016-06.io.storkit'}:disk9/1`])).code).to.equal(0);

    await t.rpc.call('bdev_malloc_delete', { name: 'Hot1' });
    expect(await lunsOf()).to.deep.equal([{ bdev_name: 'Hot0', lun_id: 0 }]);
    // Several logins, so both reactors' copies are seen (connections are spread by the kernel).
    for (let k = 0; k < 4; k++) {
      ls = await tool('iscsi-ls', ['-s', portal]);
      const mine = ls.out.slice(ls.out.indexOf('disk9'));
      expect(mine, ls.out).to.include('Lun:0');
      expect(mine.split('Target:')[0], ls.out).to.not.include('Lun:1');
      const gone = await tool('iscsi-inq', [`${portal}/iqn.2016-06.io.storkit:disk9/1`]);
      expect(gone.code, gone.out).to.not.equal(0);
      expect(
        (await tool('iscsi-readcapacity16', [`${portal}/iqn.2016-06.io.storkit:disk9/0`])).code,
      ).to.equal(0);
    }
    await t.rpc.call('iscsi_delete_target_node', { name: 'iqn.2016-06.io.storkit:disk9' });
    await t.rpc.call('bdev_malloc_delete', { name: 'Hot0' });
  });
});
