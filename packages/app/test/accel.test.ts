// The accel subsystem through a live target: SPDK's accel methods and ioat_scan_accel_module
// (startup only, then the runtime answers), save_config's accel section, a config that loads it
// back, and the I/OAT device model found by the scan as hardware would be.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { spdkTool } from '@storkit/nvme/testing';
import { RpcClient, type RpcError } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, methodCatalog, type SpdkConfig, Target } from '../src/index.js';
import { freePort } from './nvmf-helpers.js';

const ALL_SOFTWARE = {
  copy: 'software',
  fill: 'software',
  dualcast: 'software',
  compare: 'software',
  crc32c: 'software',
  copy_crc32c: 'software',
};

async function target(
  dir: string,
  name: string,
  extra: Partial<ConstructorParameters<typeof Target>[0]> = {},
) {
  const sock = join(dir, `${name}.sock`);
  const t = new Target({
    cores: [0, 1],
    rpcSocket: sock,
    signals: false,
    waitForRpc: true,
    log: new Logger('error', () => {}),
    ...extra,
  });
  await t.start();
  return { t, c: await RpcClient.connect(sock) };
}

describe('app: the accel subsystem', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-accel-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('answers SPDK accel methods; startup-only ones refuse after init; save_config reloads', async () => {
    const { t, c } = await target(dir, 'a');
    const fail = async (m: string, p: unknown) => (await c.call(m, p).catch((e) => e)) as RpcError;
    try {
      expect((await fail('accel_get_opc_assignments', undefined)).message).to.match(/framework_start_init/);
      expect(await c.call('accel_assign_opc', { opname: 'crc32c', module: 'offload' })).to.equal(true);
      expect(await c.call('accel_set_options', { task_count: 1024, small_cache_size: 128 })).to.equal(true);
      expect((await fail('accel_set_options', { buf_count: 7 })).message).to.match(/no accel buffers/);
      expect((await fail('accel_assign_opc', { opname: 'compress', module: 'software' })).message).to.match(
        /no accel operation named compress/,
      );
      expect((await fail('accel_assign_opc', { opname: 'copy' })).message).to.match(/module: required/);
      expect(await c.call('storkit_accel_offload_set_options', { threads: 1, min_bytes: 1 << 20 })).to.equal(
        true,
      );
      await c.call('framework_start_init');
      expect(await c.call('accel_get_opc_assignments')).to.deep.equal({ ...ALL_SOFTWARE, crc32c: 'offload' });
      expect(await c.call('accel_get_module_info')).to.deep.equal([
        { module: 'software', 'supported ops': Object.keys(ALL_SOFTWARE) },
        { module: 'offload', 'supported ops': Object.keys(ALL_SOFTWARE) },
      ]);
      expect((await fail('accel_assign_opc', { opname: 'copy', module: 'software' })).message).to.match(
        /before framework_start_init|startup/,
      );
      expect((await fail('ioat_scan_accel_module', undefined)).message).to.match(
        /startup|before framework_start_init/,
      );
      const stats = (await c.call('accel_get_stats')) as Record<string, unknown>;
      expect(stats).to.include({ sequence_executed: 0, sequence_failed: 0, retry_task: 0 });
      expect(stats.operations).to.be.an('array');
      const saved = (await c.call('save_config')) as {
        subsystems: { subsystem: string; config: unknown[] }[];
      };
      const accel = saved.subsystems.find((s) => s.subsystem === 'accel');
      expect(accel?.config).to.deep.equal([
        { method: 'accel_set_options', params: { task_count: 1024, sequence_count: 2048 } },
        {
          method: 'storkit_accel_offload_set_options',
          params: { threads: 1, min_bytes: 1 << 20, max_queue: 256 },
        },
        { method: 'accel_assign_opc', params: { opname: 'crc32c', module: 'offload' } },
      ]);
      // The saved section loads into a fresh target and gives the same answers.
      c.close();
      await t.stop();
      const again = await target(dir, 'b', {
        waitForRpc: false,
        config: { subsystems: saved.subsystems } as never,
      });
      try {
        expect(await again.c.call('accel_get_opc_assignments')).to.deep.equal({
          ...ALL_SOFTWARE,
          crc32c: 'offload',
        });
      } finally {
        again.c.close();
        await again.t.stop();
      }
    } finally {
      c.close();
      await t.stop();
    }
  });

  it('ioat_scan_accel_module finds the device model: copy and fill go to ioat', async () => {
    const { t, c } = await target(dir, 'c', { ioatModel: { channels: 2 } });
    try {
      expect(await c.call('ioat_scan_accel_module')).to.equal(true);
      await c.call('framework_start_init');
      expect(await c.call('accel_get_opc_assignments')).to.deep.equal({
        ...ALL_SOFTWARE,
        copy: 'ioat',
        fill: 'ioat',
      });
      const info = (await c.call('accel_get_module_info')) as { module: string }[];
      expect(info.map((m) => m.module)).to.deep.equal(['software', 'ioat', 'offload']);
      const saved = (await c.call('save_config')) as {
        subsystems: { subsystem: string; config: unknown[] }[];
      };
      expect(saved.subsystems.find((s) => s.subsystem === 'accel')?.config).to.deep.equal([
        { method: 'ioat_scan_accel_module' },
      ]);
    } finally {
      c.close();
      await t.stop();
    }
  });

  it('a scan that finds fewer channels than reactors fails the start, naming why', async () => {
    const { t, c } = await target(dir, 'd', { ioatModel: { channels: 1 } });
    try {
      await c.call('ioat_scan_accel_module');
      const e = (await c.call('framework_start_init').catch((x) => x)) as RpcError;
      expect(e.message).to.match(/1 I\/OAT channel\(s\) for 2 reactor\(s\)/);
    } finally {
      c.close();
      await t.stop();
    }
  });

  it("NVMe/TCP data digests go through accel (crc32c assigned to offload): SPDK's spdk_nvme_perf checks the target's digests, the target those of its writes", async () => {
    const port = await freePort();
    const nqn = 'nqn.2016-06.io.storkit:accel';
    const la = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
    const config: SpdkConfig = {
      subsystems: [
        {
          subsystem: 'accel',
          config: [
            { method: 'storkit_accel_offload_set_options', params: { threads: 1, min_bytes: 0 } },
            { method: 'accel_assign_opc', params: { opname: 'crc32c', module: 'offload' } },
          ],
        },
        {
          subsystem: 'bdev',
          config: [
            { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
          ],
        },
        {
          subsystem: 'nvmf',
          config: [
            { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
            { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            { method: 'nvmf_subsystem_add_listener', params: { nqn, listen_address: la } },
          ],
        },
      ],
    };
    const { t, c } = await target(dir, 'e', { waitForRpc: false, config });
    try {
      const trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${nqn}`;
      const r = await spdkTool('spdk_nvme_perf', [
        '-r',
        trid,
        '-q',
        '8',
        '-o',
        '65536',
        '-w',
        'randrw',
        '-M',
        '50',
        '-H',
        '-I',
        '-t',
        '2',
        '-c',
        '0x1',
      ]);
      expect(r.code, r.out).to.equal(0);
      expect(r.out.split('\n').filter((l) => /error|fail/i.test(l))).to.deep.equal([]);
      const total = /^Total\s*:\s*([\d.]+)/m.exec(r.out);
      expect(Number(total?.[1]), r.out).to.be.greaterThan(0);
      const stats = (await c.call('accel_get_stats')) as {
        operations: { opcode: string; module_name: string; executed: number; failed: number }[];
        modules: { offload?: { offloaded: number; unreachable: number } };
      };
      const crc = stats.operations.find((o) => o.opcode === 'crc32c');
      expect(crc).to.include({ module_name: 'offload', failed: 0 });
      expect(crc?.executed).to.be.greaterThan(10);
      // The target's request buffers are plain memory, which the pool's threads cannot reach: the
      // offload module computes those digests here, counted (an engine that reaches them is
      // tested with the qpair engine in packages/nvmf/test/accel-digest.test.ts).
      expect(stats.modules.offload?.unreachable).to.be.greaterThan(10);
    } finally {
      c.close();
      await t.stop();
    }
  });

  it('the catalog lists every accel method', () => {
    const names = methodCatalog().map((m) => m.name);
    expect(names).to.include.members([
      'accel_get_opc_assignments',
      'accel_assign_opc',
      'accel_get_module_info',
      'accel_get_stats',
      'accel_set_options',
      'ioat_scan_accel_module',
      'storkit_accel_offload_set_options',
    ]);
  });
});
