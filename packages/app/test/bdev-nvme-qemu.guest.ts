// Inside the PCIe guest (packages/cli/test/pcie-guest.test.ts): the whole path. storkit tgt
// attaches QEMU's controller by PCI address (bdev_nvme_attach_controller -t PCIe), exports its
// namespace on the guest's loopback, over NVMe/TCP to the Linux kernel's NVMe/TCP initiator, then
// over iSCSI to libiscsi (iscsi-readcapacity16, qemu-io), which write and read it; the bytes are then read straight off the controller with storkit's PCIe driver.
// (vhost-blk is not here: its only real frontend is a QEMU VM, which would be TCG inside this TCG
// guest, minutes per boot; packages/app/test/bdev-nvme-pcie.test.ts serves a PCIe namespace over
// vhost-user-blk from the software controller on the host.)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { DmaRegion } from '@storkit/native';
import { NvmeController } from '@storkit/nvme';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, Target } from '../src/index.js';
import { freePort } from './nvmf-helpers.js';

const NQN = 'nqn.2016-06.io.storkit:pcie-guest';
const IQN_BASE = 'iqn.2016-06.io.storkit';

function controllerFor(nqn: string): string | null {
  for (const c of readdirSync('/sys/class/nvme')) {
    const f = `/sys/class/nvme/${c}/subsysnqn`;
    if (existsSync(f) && readFileSync(f, 'utf8').trim() === nqn) return c;
  }
  return null;
}

describe('guest: QEMU NVMe through the nvme bdev and storkit tgt to the kernel initiator', function () {
  this.timeout(300000);
  const A = process.env.PCIE_A;

  it('serves the PCIe namespace over NVMe/TCP (kernel) and iSCSI (libiscsi); what they wrote is on the controller', async () => {
    if (!A) throw new Error('PCIE_A is not set: this spec runs in the PCIe guest');
    const dir = await mkdtemp(join(tmpdir(), 'storkit-pcie-tgt-'));
    const port = await freePort();
    const t = new Target({
      cores: [0],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: {
        subsystems: [
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
      },
    });
    await t.start();
    const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
    const pattern = Buffer.alloc(1 << 20);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + (i >> 12)) & 0xff;
    try {
      expect(
        await rpc.call('bdev_nvme_attach_controller', { name: 'Nvme0', trtype: 'PCIe', traddr: A }),
      ).to.deep.equal(['Nvme0n1', 'Nvme0n2']);
      await rpc.call('nvmf_create_transport', { trtype: 'TCP' });
      await rpc.call('nvmf_create_subsystem', { nqn: NQN, allow_any_host: true });
      await rpc.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Nvme0n1' } });
      await rpc.call('nvmf_subsystem_add_listener', {
        nqn: NQN,
        listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
      });
      execFileSync('modprobe', ['nvme-tcp']);
      writeFileSync('/dev/nvme-fabrics', `transport=tcp,traddr=127.0.0.1,trsvcid=${port},nqn=${NQN}`);
      let ctrl: string | null = null;
      for (let i = 0; i < 200 && ctrl === null; i++) {
        ctrl = controllerFor(NQN);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(ctrl, 'the kernel connected').to.not.equal(null);
      let dev = '';
      for (let i = 0; i < 200 && dev === ''; i++) {
        dev =
          readdirSync(`/sys/class/nvme/${ctrl}`)
            .find((e) => /^nvme\d+(c\d+)?n1$/.test(e))
            ?.replace(/c\d+n/, 'n') ?? '';
        if (dev === '' || !existsSync(`/dev/${dev}`)) {
          dev = '';
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      writeFileSync(join(dir, 'pattern'), pattern);
      // 1 MiB at 32 MiB, direct I/O: through nvme-tcp, storkit tgt, the nvme bdev, the PCIe driver.
      execFileSync(
        'dd',
        [`if=${join(dir, 'pattern')}`, `of=/dev/${dev}`, 'bs=1M', 'seek=32', 'oflag=direct', 'conv=fsync'],
        { stdio: 'ignore' },
      );
      execFileSync(
        'dd',
        [`if=/dev/${dev}`, `of=${join(dir, 'back')}`, 'bs=1M', 'skip=32', 'count=1', 'iflag=direct'],
        { stdio: 'ignore' },
      );
      expect(
        Buffer.compare(readFileSync(join(dir, 'back')), pattern),
        'the kernel reads back what it wrote',
      ).to.equal(0);
      writeFileSync(`/sys/class/nvme/${ctrl}/delete_controller`, '1');
      await rpc.call('nvmf_delete_subsystem', { nqn: NQN });

      // The same namespace over iSCSI to libiscsi. (Not the 4 KiB one: qemu-io 7.2 asserts in its
      // iSCSI driver's block_status on a 4 KiB-block LUN, a client bug.)
      const [pg] = await rpc.call<{ portals: { port: string }[] }[]>('iscsi_get_portal_groups');
      await rpc.call('iscsi_create_target_node', {
        name: 'pcie1',
        alias_name: 'QEMU NVMe ns 1',
        pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
        luns: [{ bdev_name: 'Nvme0n1', lun_id: 0 }],
        queue_depth: 32,
        disable_chap: true,
      });
      const url = `iscsi://127.0.0.1:${pg.portals[0].port}/${IQN_BASE}:pcie1/0`;
      const cap = execFileSync('iscsi-readcapacity16', [url], { encoding: 'utf8' });
      expect(cap, 'capacity over iSCSI').to.match(/Total size:268435456/);
      execFileSync('qemu-io', ['-f', 'raw', '-c', 'write -P 0xa5 4m 256k', url], { stdio: 'ignore' });
      const back = execFileSync('qemu-io', ['-f', 'raw', '-c', 'read -P 0xa5 4m 256k', url], {
        encoding: 'utf8',
      });
      expect(back, 'libiscsi reads back what it wrote').to.match(/read 262144\/262144 bytes/);
      expect(back).to.not.match(/Pattern verification failed/);
      await rpc.call('iscsi_delete_target_node', { name: `${IQN_BASE}:pcie1` });
      expect(await rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' })).to.equal(true);
    } finally {
      rpc.close();
      await t.stop();
      await rm(dir, { recursive: true, force: true });
    }
    // Straight off the controller: the bytes are there.
    const c = await NvmeController.connect(`trtype:PCIe traddr:${A}`);
    const region = DmaRegion.create(1 << 20);
    try {
      const qp = await c.allocIoQpair();
      let st = -1;
      qp.read(
        1,
        (32 << 20) / 512,
        2048,
        region.bytes.subarray(0, 1 << 20),
        (_c, s) => {
          st = s;
        },
        null,
      );
      while (st === -1) {
        qp.processCompletions();
        await new Promise((r) => setImmediate(r));
      }
      expect(st).to.equal(0);
      expect(
        Buffer.compare(Buffer.from(region.bytes.subarray(0, 1 << 20)), pattern),
        'the bytes are on the controller',
      ).to.equal(0);
      // What libiscsi wrote over iSCSI: 256 KiB of 0xa5 at 4 MiB.
      st = -1;
      const r2 = region.bytes.subarray(0, 256 << 10).fill(0);
      qp.read(
        1,
        (4 << 20) / 512,
        512,
        r2,
        (_c, s) => {
          st = s;
        },
        null,
      );
      while (st === -1) {
        qp.processCompletions();
        await new Promise((r) => setImmediate(r));
      }
      expect(st).to.equal(0);
      expect(
        r2.every((x) => x === 0xa5),
        'the iSCSI bytes are on the controller',
      ).to.equal(true);
    } finally {
      await c.close();
      region.close();
    }
  });
});
