// The Linux kernel's initiators against storkit tgt, in one QEMU (TCG) guest boot (the kernel of
// linux-image-amd64, a busybox initramfs): nvme-tcp as `nvme connect` drives it, with header and
// data digests, I/O verified, Deallocate and Write Zeroes read back; then iscsi_tcp with open-iscsi's
// iscsid and iscsiadm: SendTargets discovery, a login with CRC32C digests, I/O verified, UNMAP read
// back, CHAP (a wrong secret refused, the right one admitted). The workload is guest/kernel-initiators.sh.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { bootGuest, failures, field, guestMissing, initrd, which } from './guest.js';
import { freePort } from './nvmf-helpers.js';

const NQN = 'nqn.2016-06.io.storkit:kernel';
const BASE = 'iqn.2016-06.io.storkit';

function config(nvmfPort: number, iscsiPort: number): SpdkConfig {
  const malloc = (name: string, mib: number, blockSize: number) => ({
    method: 'bdev_malloc_create',
    params: { name, num_blocks: (mib << 20) / blockSize, block_size: blockSize },
  });
  const node = (name: string, bdev: string, extra: Record<string, unknown>) => ({
    method: 'iscsi_create_target_node',
    params: {
      name,
      luns: [{ bdev_name: bdev, lun_id: 0 }],
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 1 }],
      queue_depth: 32,
      ...extra,
    },
  });
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [malloc('Kern0', 32, 512), malloc('Kern1', 32, 4096), malloc('Kern2', 16, 512)],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          { method: 'nvmf_subsystem_add_ns', params: { nqn: NQN, namespace: { bdev_name: 'Kern0' } } },
          {
            method: 'nvmf_subsystem_add_listener',
            params: {
              nqn: NQN,
              listen_address: {
                trtype: 'TCP',
                adrfam: 'IPv4',
                traddr: '127.0.0.1',
                trsvcid: String(nvmfPort),
              },
            },
          },
        ],
      },
      {
        subsystem: 'iscsi',
        config: [
          { method: 'iscsi_set_options', params: { node_base: BASE } },
          {
            method: 'iscsi_create_auth_group',
            params: { tag: 1, secrets: [{ user: 'guestuser', secret: 'guestsecret12' }] },
          },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(iscsiPort) }] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 1, initiators: ['ANY'], netmasks: ['ANY'] },
          },
          node('disk1', 'Kern1', { disable_chap: true, header_digest: true, data_digest: true }),
          node('disk2', 'Kern2', { require_chap: true, chap_group: 1 }),
        ],
      },
    ],
  };
}

describe('Linux kernel initiators (nvme-tcp, open-iscsi) against storkit tgt, one QEMU guest', function () {
  this.timeout(300_000);
  let target: Target | null = null;
  let dir = '';
  before(() => {
    const missing = guestMissing();
    if (missing !== null) throw new Error(`the guest test needs ${missing}: .ci/run installs it`);
    dir = mkdtempSync(join(tmpdir(), 'storkit-kernel-'));
  });
  after(async () => {
    const t = target;
    target = null;
    try {
      if (t) {
        const r = await t.stop();
        expect(r.leaked, 'left behind by the target').to.deep.equal([]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('connects, verifies I/O, digests, discard and write zeroes; discovers, logs in with digests and CHAP', async () => {
    const nvmfPort = await freePort();
    const iscsiPort = await freePort();
    // One reactor: an iSCSI node owned by another reactor answers a login with a redirect to the
    // address the target saw (127.0.0.1, QEMU's NAT), which the guest cannot reach.
    target = new Target({
      cores: [0],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: config(nvmfPort, iscsiPort),
    });
    await target.start();
    const mods = ['failover', 'net_failover', 'virtio_net', 'nvme-core', 'nvme-fabrics', 'nvme-tcp'];
    mods.push(
      'scsi_mod',
      'sd_mod',
      'scsi_transport_iscsi',
      'libiscsi',
      'libiscsi_tcp',
      'iscsi_tcp',
      'crc32c_generic',
    );
    const run = await bootGuest({
      initrd: initrd('kernel-initiators.sh', mods, [which('iscsid'), which('iscsiadm'), which('blkdiscard')]),
      append: `nvmfport=${nvmfPort} nqn=${NQN} iscsiport=${iscsiPort} base=${BASE}`,
      memoryMiB: 512,
      timeoutMs: 240_000,
      qemu: ['-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0'],
    });
    const report = `${run.results.join('\n')}\n---\n${run.log.slice(-3000)}`;
    expect(failures(run), report).to.deep.equal([]);
    expect(field(run, 'nvme connected:'), report).to.equal(
      `model=storkitbdevController subsysnqn=${NQN} state=live`,
    );
    expect(field(run, 'nvme ns1:')).to.equal(`${32 << 20} bytes, 512-byte blocks`);
    expect(field(run, 'iscsi discovery:')).to.equal(`${BASE}:disk1 ${BASE}:disk2`);
    expect(field(run, 'iscsi disk1: digests')).to.equal('CRC32C/CRC32C');
    expect(field(run, 'iscsi disk1 LUN 0:')).to.equal(`${32 << 20} bytes, 4096-byte blocks`);
    expect(field(run, 'iscsi sessions:')).to.equal('2');
    expect(run.results).to.include.members([
      'nvme pattern verified',
      'nvme deallocate reads back zeroes',
      'nvme write zeroes reads back zeroes',
      'nvme disconnected',
      'iscsi pattern verified',
      'iscsi unmap reads back zeroes',
      'iscsi wrong CHAP secret refused',
      'iscsi CHAP login, pattern verified',
      'iscsi logged out',
      'END rc=0',
    ]);
  });
});
