// The Linux kernel's initiators against storkit tgt, in one QEMU (TCG) guest boot (the kernel of
// linux-image-amd64, a busybox initramfs): nvme-tcp as `nvme connect` drives it, with header and
// data digests, three namespaces of one subsystem, I/O verified, Deallocate and Write Zeroes read
// back; then iscsi_tcp with open-iscsi's iscsid and iscsiadm: SendTargets discovery, a login with
// CRC32C digests to a target of two LUNs, I/O verified, UNMAP read back, one-way CHAP (a wrong
// secret refused, the right one admitted) and mutual CHAP (both sides refuse a wrong secret). fio in
// the guest does verified random I/O (libaio, O_DIRECT, crc32c, several jobs at iodepth 16) on
// every namespace and LUN. On the guest's cue the test restarts the target while the initiator is
// connected, once for each: the kernel reconnects (nvme-tcp's ctrl_loss_tmo, iSCSI session
// recovery) and fio verifies again. The workload is guest/kernel-initiators.sh.
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
  // Fixed UUIDs: the restarted target is the same disks to the initiator (the kernel drops a
  // namespace whose identifiers changed across a reconnect), as a saved config would bring back.
  let n = 0;
  const malloc = (name: string, mib: number, blockSize: number) => ({
    method: 'bdev_malloc_create',
    params: {
      name,
      num_blocks: (mib << 20) / blockSize,
      block_size: blockSize,
      uuid: `6b1f0c3e-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`,
    },
  });
  const node = (name: string, bdevs: string[], extra: Record<string, unknown>) => ({
    method: 'iscsi_create_target_node',
    params: {
      name,
      luns: bdevs.map((bdev_name, lun_id) => ({ bdev_name, lun_id })),
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 1 }],
      queue_depth: 32,
      ...extra,
    },
  });
  const ns = (bdev_name: string) => ({
    method: 'nvmf_subsystem_add_ns',
    params: { nqn: NQN, namespace: { bdev_name } },
  });
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          malloc('Kern0', 32, 512),
          malloc('KernNs2', 16, 4096),
          malloc('KernNs3', 8, 512),
          malloc('Kern1', 32, 4096),
          malloc('KernLun1', 16, 512),
          malloc('Kern2', 16, 512),
          malloc('Kern3', 8, 512),
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
          ns('Kern0'),
          ns('KernNs2'),
          ns('KernNs3'),
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
            method: 'iscsi_create_auth_group',
            params: {
              tag: 2,
              secrets: [
                {
                  user: 'mutualuser',
                  secret: 'mutualsecret1',
                  muser: 'targetuser',
                  msecret: 'targetsecret1',
                },
              ],
            },
          },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(iscsiPort) }] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 1, initiators: ['ANY'], netmasks: ['ANY'] },
          },
          node('disk1', ['Kern1', 'KernLun1'], {
            disable_chap: true,
            header_digest: true,
            data_digest: true,
          }),
          node('disk2', ['Kern2'], { require_chap: true, chap_group: 1 }),
          node('disk3', ['Kern3'], { require_chap: true, mutual_chap: true, chap_group: 2 }),
        ],
      },
    ],
  };
}

describe('Linux kernel initiators (nvme-tcp, open-iscsi) against storkit tgt, one QEMU guest', function () {
  this.timeout(420_000);
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

  it('connects, verifies I/O with fio on every namespace and LUN, digests, discard, write zeroes, CHAP one-way and mutual; reconnects after target restarts', async () => {
    const nvmfPort = await freePort();
    const iscsiPort = await freePort();
    // Two reactors, as `npm start` runs: a login landing on the reactor that does not own its node
    // moves there with its socket; a redirect would name 127.0.0.1 (what the target sees through
    // QEMU's NAT), which the guest cannot reach.
    const start = async () => {
      const t = new Target({
        cores: [0, 1],
        rpcSocket: join(dir, 'rpc.sock'),
        signals: false,
        log: new Logger('error', () => {}),
        config: config(nvmfPort, iscsiPort),
      });
      target = t;
      await t.start();
    };
    await start();
    // The guest's "CUE restart ..." lines: stop the target while the initiator is connected and
    // start it again on the same ports. Done in order; a failure is reported after the guest ends.
    const restarts: string[] = [];
    let restarting: Promise<void> = Promise.resolve();
    const restartErrors: unknown[] = [];
    const onResult = (line: string) => {
      if (!line.startsWith('CUE restart ')) return;
      restarting = restarting.then(async () => {
        try {
          const t = target as Target;
          target = null;
          const r = await t.stop();
          expect(r.leaked, `left behind by the target stopped for ${line}`).to.deep.equal([]);
          await start();
          restarts.push(line.slice(12));
        } catch (e) {
          restartErrors.push(e);
        }
      });
    };
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
    const bins = [which('iscsid'), which('iscsiadm'), which('blkdiscard'), which('fio')];
    const run = await bootGuest({
      initrd: initrd('kernel-initiators.sh', mods, bins),
      append: `nvmfport=${nvmfPort} nqn=${NQN} iscsiport=${iscsiPort} base=${BASE}`,
      // fio's libraries make the initramfs large: room for it unpacked next to the page cache.
      memoryMiB: 1024,
      timeoutMs: 400_000,
      qemu: ['-netdev', 'user,id=n0', '-device', 'virtio-net-pci,netdev=n0'],
      onResult,
    });
    await restarting;
    const report = `${run.results.join('\n')}\n---\n${run.log.slice(-3000)}`;
    expect(restartErrors, report).to.deep.equal([]);
    expect(failures(run), report).to.deep.equal([]);
    expect(restarts).to.deep.equal(['nvmf', 'iscsi']);
    expect(field(run, 'nvme connected:'), report).to.equal(
      `model=storkitbdevController subsysnqn=${NQN} state=live`,
    );
    expect(field(run, 'nvme ns1:')).to.equal(`${32 << 20} bytes, 512-byte blocks`);
    expect(field(run, 'nvme ns2:')).to.equal(`${16 << 20} bytes, 4096-byte blocks`);
    expect(field(run, 'nvme ns3:')).to.equal(`${8 << 20} bytes, 512-byte blocks`);
    // Three namespaces x two jobs x 2 MiB, every byte written read back and verified.
    const fio = (jobs: number) =>
      `rc=0 jobs=${jobs} errors=0 written=${jobs * 2048}KiB verified=${jobs * 2048}KiB`;
    expect(field(run, 'nvme fio:')).to.equal(fio(6));
    expect(field(run, 'nvme reconnected after the restart:')).to.equal('state=live');
    expect(field(run, 'nvme after restart fio:')).to.equal(fio(6));
    expect(field(run, 'iscsi discovery:')).to.equal(`${BASE}:disk1 ${BASE}:disk2 ${BASE}:disk3`);
    expect(field(run, 'iscsi disk1: digests')).to.equal('CRC32C/CRC32C');
    expect(field(run, 'iscsi disk1 LUN 0:')).to.equal(`${32 << 20} bytes, 4096-byte blocks`);
    expect(field(run, 'iscsi disk1 LUN 1:')).to.equal(`${16 << 20} bytes, 512-byte blocks`);
    expect(field(run, 'iscsi fio:')).to.equal(fio(4));
    expect(field(run, 'iscsi session recovered after the restart:')).to.equal('LOGGED_IN');
    expect(field(run, 'iscsi after restart fio:')).to.equal(fio(4));
    expect(field(run, 'iscsi sessions:')).to.equal('3');
    expect(run.results).to.include.members([
      'nvme pattern verified',
      'nvme deallocate reads back zeroes',
      'nvme write zeroes reads back zeroes',
      'nvme disconnected',
      'iscsi pattern verified',
      'iscsi unmap reads back zeroes',
      'iscsi wrong CHAP secret refused',
      'iscsi CHAP login, pattern verified',
      'iscsi one-way CHAP refused where mutual is required',
      'iscsi target with the wrong mutual secret refused',
      'iscsi mutual CHAP login, pattern verified',
      'iscsi logged out',
      'END rc=0',
    ]);
  });
});
