// A PCIe NVMe controller in storkit tgt (the software controller of @storkit/nvme/pcie-model,
// opened by its PCI address exactly as hardware is): bdev_nvme_attach_controller -t PCIe, its
// namespaces re-exported over NVMe/TCP (storkit's host), iSCSI (QEMU's libiscsi client, qemu-io)
// and vhost-user-blk (storkit's virtio-user initiator), save_config, detach, and a hot remove
// that takes the bdevs away while the target keeps serving. QEMU's own controller is driven the
// same way in the guest test (packages/cli/test/pcie-guest.test.ts).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { NvmeController } from '@storkit/nvme';
import { NvmeModelWorker } from '@storkit/nvme/pcie-model';
import { expect } from 'chai';

import { IQN_BASE } from './iscsi-helpers.js';
import { freePort, io, NQN } from './nvmf-helpers.js';
import { Host, pattern, runVhostTarget, type VhostRunning } from './vhost-helpers.js';

const run = promisify(execFile);

describe('app: bdev_nvme over PCIe (software controller)', function () {
  this.timeout(120000);
  let t: VhostRunning;
  let m0: NvmeModelWorker;
  let m1: NvmeModelWorker;
  let iscsiPort = 0;

  before(async () => {
    m0 = await NvmeModelWorker.start({
      namespaces: [
        { nsid: 1, blockSize: 512, blocks: 16384 },
        { nsid: 2, blockSize: 4096, blocks: 2048 },
      ],
    });
    m1 = await NvmeModelWorker.start({ namespaces: [{ nsid: 1, blockSize: 512, blocks: 4096 }] });
    t = await runVhostTarget({
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 2048, block_size: 512 } },
          ],
        },
        { subsystem: 'nvmf', config: [{ method: 'nvmf_create_transport', params: { trtype: 'TCP' } }] },
        {
          subsystem: 'iscsi',
          config: [
            { method: 'iscsi_set_options', params: { node_base: IQN_BASE } },
            {
              method: 'iscsi_create_portal_group',
              params: { tag: 1, portals: [{ host: '127.0.0.1', port: '0' }] },
            },
            {
              method: 'iscsi_create_initiator_group',
              params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/8'] },
            },
          ],
        },
      ],
    });
    const [pg] = await t.rpc.call<{ portals: { port: string }[] }[]>('iscsi_get_portal_groups');
    iscsiPort = Number(pg.portals[0].port);
  });

  after(async () => {
    await t?.stop();
    await m0?.stop();
    await m1?.stop();
  });

  it('attaches by PCI address: one bdev per namespace, listed like SPDK', async () => {
    const names = await t.rpc.call('bdev_nvme_attach_controller', {
      name: 'Nvme0',
      trtype: 'PCIe',
      traddr: m0.address,
    });
    expect(names).to.deep.equal(['Nvme0n1', 'Nvme0n2']);
    expect(
      await t.rpc.call('bdev_nvme_attach_controller', { name: 'Nvme1', trtype: 'pcie', traddr: m1.address }),
    ).to.deep.equal(['Nvme1n1']);
    const b = await t.rpc.call<
      { name: string; num_blocks: number; block_size: number; product_name: string }[]
    >('bdev_get_bdevs', { name: 'Nvme0n2' });
    expect(b[0]).to.include({ num_blocks: 2048, block_size: 4096, product_name: 'NVMe disk' });
    const c = await t.rpc.call<{ name: string; ctrlrs: { trid: object; state: string }[] }[]>(
      'bdev_nvme_get_controllers',
      { name: 'Nvme0' },
    );
    expect(c[0].ctrlrs[0]).to.deep.include({
      state: 'enabled',
      trid: { trtype: 'PCIe', traddr: m0.address },
    });
    let code = 0;
    await t.rpc
      .call('bdev_nvme_attach_controller', { name: 'NvmeX', trtype: 'PCIe', traddr: m0.address })
      .catch((e: { code: number; message: string }) => {
        code = e.code;
        expect(e.message).to.match(/already open/);
      });
    expect(code, 'the controller is in use').to.not.equal(0);
  });

  it('serves a namespace over NVMe/TCP: data lands on the controller and reads back', async () => {
    const port = await freePort();
    await t.rpc.call('nvmf_create_subsystem', { nqn: NQN, allow_any_host: true });
    await t.rpc.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Nvme0n1' } });
    await t.rpc.call('nvmf_subsystem_add_listener', {
      nqn: NQN,
      listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
    });
    const h = await NvmeController.connect(
      `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`,
    );
    try {
      const qp = await h.allocIoQpair();
      const w = pattern(64 * 1024, 1);
      expect(await io(qp, (cb) => qp.write(1, 256, 128, w, cb, null))).to.equal(0);
      const r = new Uint8Array(w.length);
      expect(await io(qp, (cb) => qp.read(1, 256, 128, r, cb, null))).to.equal(0);
      expect(Buffer.compare(r, w)).to.equal(0);
      expect(
        Buffer.compare(await m0.media(1, 256 * 512, w.length), w),
        'the controller holds the bytes',
      ).to.equal(0);
      await h.freeIoQpair(qp);
    } finally {
      await h.close();
    }
  });

  it('serves a namespace over iSCSI to libiscsi (qemu-io writes and verifies a pattern)', async () => {
    await t.rpc.call('iscsi_create_target_node', {
      name: 'pcie1',
      alias_name: 'PCIe ns 1',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
      luns: [{ bdev_name: 'Nvme0n1', lun_id: 0 }],
      queue_depth: 32,
      disable_chap: true,
    });
    const url = `iscsi://127.0.0.1:${iscsiPort}/${IQN_BASE}:pcie1/0`;
    const cap = await run('iscsi-readcapacity16', [url]);
    expect(cap.stdout).to.match(/Total size:8388608/);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1m 128k', url]);
    const back = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 1m 128k', url]);
    expect(back.stdout).to.match(/read 131072\/131072 bytes/);
    expect(back.stdout + back.stderr).to.not.match(/Pattern verification failed/);
    const media = await m0.media(1, 1 << 20, 128 * 1024);
    expect(
      media.every((x) => x === 0x5a),
      'the pattern reached the PCIe controller',
    ).to.equal(true);
  });

  it('serves a namespace over vhost-user-blk (virtio-user initiator)', async () => {
    await t.rpc.call('vhost_create_blk_controller', { ctrlr: 'vhost.pcie', dev_name: 'Nvme0n2' });
    const host = new Host();
    try {
      const d = await host.attach(join(t.dir, 'vhost.pcie'));
      const w = pattern(32 * 1024, 7);
      expect(d.blockSize).to.equal(4096);
      await host.write(d, 4 << 20, w);
      expect(Buffer.compare(await host.read(d, 4 << 20, w.length), w)).to.equal(0);
      expect(Buffer.compare(await m0.media(2, 4 << 20, w.length), w)).to.equal(0);
    } finally {
      host.close();
    }
    // Delete is refused while a frontend is connected: wait until the target has seen it go (a
    // state, not a time).
    for (;;) {
      const [c] = await t.rpc.call<{ sessions: unknown[] }[]>('vhost_get_controllers', {
        name: 'vhost.pcie',
      });
      if (c.sessions.length === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await t.rpc.call('vhost_delete_controller', { ctrlr: 'vhost.pcie' });
  });

  it('saves the attach in SPDK form', async () => {
    const cfg = await t.rpc.call<{
      subsystems: { subsystem: string; config: { method: string; params: Record<string, unknown> }[] }[];
    }>('save_config');
    const attaches = cfg.subsystems
      .flatMap((s) => s.config)
      .filter((e) => e.method === 'bdev_nvme_attach_controller');
    expect(attaches.map((e) => [e.params.name, e.params.trtype, e.params.traddr])).to.deep.equal([
      ['Nvme0', 'PCIe', m0.address],
      ['Nvme1', 'PCIe', m1.address],
    ]);
  });

  it('a hot-removed controller takes its bdevs away; the target keeps serving', async () => {
    await m1.remove();
    const until = Date.now() + 20000;
    for (;;) {
      const names = (await t.rpc.call<{ name: string }[]>('bdev_get_bdevs')).map((b) => b.name);
      if (!names.includes('Nvme1n1')) break;
      if (Date.now() > until) throw new Error('Nvme1n1 still there after the removal');
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = await t.rpc.call<{ name: string }[]>('bdev_nvme_get_controllers');
    expect(c.map((x) => x.name)).to.deep.equal(['Nvme0']);
    const cfg = await t.rpc.call<{
      subsystems: { config: { method: string; params: { name: string } }[] }[];
    }>('save_config');
    expect(
      cfg.subsystems
        .flatMap((s) => s.config)
        .filter((e) => e.method === 'bdev_nvme_attach_controller')
        .map((e) => e.params.name),
    ).to.deep.equal(['Nvme0']);
    const b = await t.rpc.call<{ name: string }[]>('bdev_get_bdevs', { name: 'Malloc0' });
    expect(b[0].name).to.equal('Malloc0');
  });

  it('detaches: bdevs and exports go, the controller is shut down and free again', async () => {
    await t.rpc.call('iscsi_delete_target_node', { name: `${IQN_BASE}:pcie1` });
    await t.rpc.call('nvmf_delete_subsystem', { nqn: NQN });
    expect(await t.rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' })).to.equal(true);
    const names = (await t.rpc.call<{ name: string }[]>('bdev_get_bdevs')).map((b) => b.name);
    expect(names).to.deep.equal(['Malloc0']);
    expect((m0.device.bar(0).read32(0x1c) >> 2) & 3, 'shutdown complete').to.equal(2);
    // Free: it attaches again.
    expect(
      await t.rpc.call('bdev_nvme_attach_controller', { name: 'Nvme0', trtype: 'PCIe', traddr: m0.address }),
    ).to.deep.equal(['Nvme0n1', 'Nvme0n2']);
    await t.rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' });
  });
});
