// Inside the PCIe guest (packages/cli/test/pcie-guest.test.ts): the whole path. storkit tgt
// attaches QEMU's controller by PCI address (bdev_nvme_attach_controller -t PCIe), exports its
// namespace over NVMe/TCP on the guest's loopback, and the Linux kernel's NVMe/TCP initiator writes
// and reads it; the bytes are then read straight off the controller with storkit's PCIe driver.
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

  it('serves the PCIe namespace over NVMe/TCP; what the kernel wrote is on the controller', async () => {
    if (!A) throw new Error('PCIE_A is not set: this spec runs in the PCIe guest');
    const dir = await mkdtemp(join(tmpdir(), 'storkit-pcie-tgt-'));
    const port = await freePort();
    const t = new Target({
      cores: [0],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: { subsystems: [] },
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
    } finally {
      await c.close();
      region.close();
    }
  });
});
