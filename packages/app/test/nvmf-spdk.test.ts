// storkit tgt (two reactors) and SPDK v24.01 side by side, each the other's peer: SPDK's
// spdk_nvme_identify and spdk_nvme_perf against storkit's NVMe/TCP target, and the nvme bdev
// module in both directions: storkit's bdev_nvme_attach_controller to SPDK's spdk_tgt, SPDK's to
// storkit's target. bdev_get_bdevs must show an nvme bdev the way SPDK shows one (UUID from the
// namespace, supported_io_types, driver_specific.nvme), so tools written for SPDK read storkit's.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type SpdkTgt, spdkTool, startSpdkTgt } from '@storkit/nvme/testing';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort } from './nvmf-helpers.js';

const NQN = 'nqn.2016-06.io.storkit:spdkpeer';
const SPDK_NQN = 'nqn.2016-06.io.spdk:cnode1';
const STORKIT_UUID = '0b0c0d0e-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
const SPDK_UUID = '6f1c2b3a-4d5e-4f60-8a71-92b3c4d5e6f7';

type BdevInfo = {
  name: string;
  uuid: string;
  product_name: string;
  block_size: number;
  num_blocks: number;
  supported_io_types: Record<string, boolean>;
  driver_specific: { nvme: Record<string, unknown>[]; mp_policy: string };
};

/** The shape of a JSON value: objects by their keys (sorted), arrays by their first element. */
function shape(v: unknown): unknown {
  if (Array.isArray(v)) return [v.length > 0 ? shape(v[0]) : null];
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, shape((v as Record<string, unknown>)[k])]),
    );
  return typeof v;
}

describe('app: storkit tgt and SPDK, each the peer of the other (NVMe/TCP)', function () {
  this.timeout(300_000);
  let dir: string;
  let t: Target;
  let rpc: RpcClient;
  let spdk: SpdkTgt;
  let port: number;
  let spdkPort: number;
  let trid: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storkit-spdk-peer-'));
    [port, spdkPort] = [await freePort(), await freePort()];
    trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
    const la = (p: number) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) });
    const config: SpdkConfig = {
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_malloc_create',
              params: { name: 'Malloc0', num_blocks: 16384, block_size: 512, uuid: STORKIT_UUID },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            {
              method: 'nvmf_create_subsystem',
              params: {
                nqn: NQN,
                allow_any_host: true,
                serial_number: 'STORKIT0000000042',
                model_number: 'storkit peer test',
              },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: la(port) } },
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
    rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
    spdk = await startSpdkTgt({
      subsystems: [
        {
          subsystem: 'bdev',
          config: [
            {
              method: 'bdev_malloc_create',
              params: { name: 'Malloc0', num_blocks: 8192, block_size: 4096, uuid: SPDK_UUID },
            },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            {
              method: 'nvmf_create_subsystem',
              params: {
                nqn: SPDK_NQN,
                allow_any_host: true,
                serial_number: 'SPDK00000000000001',
                model_number: 'SPDK bdev Controller',
              },
            },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: SPDK_NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            {
              method: 'nvmf_subsystem_add_listener',
              params: { nqn: SPDK_NQN, listen_address: la(spdkPort) },
            },
          ],
        },
      ],
    });
  });
  after(async () => {
    rpc?.close();
    await spdk?.stop();
    const r = await t?.stop();
    await rm(dir, { recursive: true, force: true });
    expect(r?.leaked ?? []).to.deep.equal([]);
  });

  it("SPDK's spdk_nvme_identify reads storkit tgt's controller and namespace as configured", async () => {
    const r = await spdkTool('spdk_nvme_identify', ['-r', trid]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/^Serial Number:\s+STORKIT0000000042$/m);
    expect(r.out).to.match(/^Model Number:\s+storkit peer test$/m);
    expect(r.out).to.match(new RegExp(`^Subsystem NQN:\\s+${NQN.replace(/\./g, '\\.')}$`, 'm'));
    const ns = r.out.slice(r.out.indexOf('Namespace ID:1'));
    expect(ns).to.match(/^Size \(in LBAs\):\s+16384 /m);
    expect(ns).to.match(/LBA Format #00: Data Size:\s+512 /);
    expect(ns).to.match(new RegExp(`^UUID:\\s+${STORKIT_UUID}$`, 'm'));
  });

  for (const [what, args] of [
    ['randrw 4 KiB, QD 32, two qpairs', ['-q', '32', '-o', '4096', '-w', 'randrw', '-M', '50', '-P', '2']],
    [
      'randwrite 128 KiB with header and data digests',
      ['-q', '8', '-o', '131072', '-w', 'randwrite', '-H', '-I'],
    ],
    ['randread 128 KiB with digests', ['-q', '8', '-o', '131072', '-w', 'randread', '-H', '-I']],
  ] as const)
    it(`SPDK's spdk_nvme_perf drives storkit tgt: ${what}, no errors`, async () => {
      const r = await spdkTool('spdk_nvme_perf', ['-r', trid, ...args, '-t', '2', '-c', '0x1']);
      expect(r.code, r.out).to.equal(0);
      const total = /^Total\s*:\s*([\d.]+)\s+([\d.]+)/m.exec(r.out);
      expect(total, r.out).to.not.equal(null);
      expect(Number(total![1]), r.out).to.be.greaterThan(0);
      expect(r.out.split('\n').filter((l) => /error|fail/i.test(l))).to.deep.equal([]);
    });

  it('bdev_nvme_attach_controller both ways: the nvme bdev looks as SPDK shows one', async () => {
    // storkit attaches SPDK's namespace; SPDK attaches storkit's.
    const names = await rpc.call('bdev_nvme_attach_controller', {
      name: 'Nvme0',
      trtype: 'tcp',
      adrfam: 'IPv4',
      traddr: '127.0.0.1',
      trsvcid: String(spdkPort),
      subnqn: SPDK_NQN,
    });
    expect(names).to.deep.equal(['Nvme0n1']);
    await spdk.rpc(
      'bdev_nvme_attach_controller',
      '-b',
      'Nvme0',
      '-t',
      'tcp',
      '-a',
      '127.0.0.1',
      '-s',
      String(port),
      '-f',
      'ipv4',
      '-n',
      NQN,
    );
    const [ours] = await rpc.call<BdevInfo[]>('bdev_get_bdevs', { name: 'Nvme0n1' });
    const [theirs] = (await spdk.rpc('bdev_get_bdevs', '-b', 'Nvme0n1')) as BdevInfo[];
    // The UUID is the namespace's own on both sides.
    expect(ours.uuid).to.equal(SPDK_UUID);
    expect(theirs.uuid).to.equal(STORKIT_UUID);
    expect([ours.product_name, ours.block_size, ours.num_blocks]).to.deep.equal(['NVMe disk', 4096, 8192]);
    expect([theirs.product_name, theirs.block_size, theirs.num_blocks]).to.deep.equal([
      'NVMe disk',
      512,
      16384,
    ]);
    // The same I/O types, each supported as SPDK supports it for a namespace of SPDK's malloc.
    expect(ours.supported_io_types).to.deep.equal({
      ...theirs.supported_io_types,
      ...ours.supported_io_types,
    });
    for (const k of Object.keys(theirs.supported_io_types))
      expect(ours.supported_io_types[k], k).to.equal(theirs.supported_io_types[k]);
    // driver_specific: the same fields; the values describe each one's own controller.
    expect(shape(ours.driver_specific)).to.deep.equal(shape(theirs.driver_specific));
    const o = ours.driver_specific.nvme[0] as {
      trid: object;
      ctrlr_data: Record<string, unknown>;
      ns_data: object;
    };
    expect(o.trid).to.deep.equal({
      trtype: 'TCP',
      adrfam: 'IPv4',
      traddr: '127.0.0.1',
      trsvcid: String(spdkPort),
      subnqn: SPDK_NQN,
    });
    expect(o.ctrlr_data).to.include({
      vendor_id: '0x8086',
      model_number: 'SPDK bdev Controller',
      serial_number: 'SPDK00000000000001',
      firmware_revision: '24.01',
      subnqn: SPDK_NQN,
      multi_ctrlr: true,
      ana_reporting: false,
    });
    expect(o.ns_data).to.deep.equal({ id: 1, can_share: true });
    expect(ours.driver_specific.mp_policy).to.equal(theirs.driver_specific.mp_policy);
    await rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' });
    await spdk.rpc('bdev_nvme_detach_controller', 'Nvme0');
  });
});
