// The nvme bdev module in storkit tgt: attach the app's own NVMe/TCP export of Malloc0 as Nvme0n1
// (an I/O qpair per reactor), re-export that over a second subsystem, check data end to end, then
// detach while the re-export is live (its namespace goes away on every reactor).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RamBackend } from '@storkit/block/testing';
import { type HostQpair, NvmeController } from '@storkit/nvme';
import { NvmfTarget } from '@storkit/nvmf';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort, io, NQN } from './nvmf-helpers.js';

const NQN2 = 'nqn.2016-06.io.storkit:cnode2';

describe('app: nvme bdev module (bdev_nvme_*)', function () {
  this.timeout(60000);

  it('re-exports a remote namespace, keeps data intact, saves and detaches', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'storkit-bdev-nvme-'));
    const [p1, p2] = [await freePort(), await freePort()];
    const la = (p: number) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) });
    const config: SpdkConfig = {
      subsystems: [
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
            { method: 'nvmf_create_subsystem', params: { nqn: NQN, allow_any_host: true } },
            {
              method: 'nvmf_subsystem_add_ns',
              params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
            },
            { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address: la(p1) } },
          ],
        },
      ],
    };
    const t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config,
    });
    await t.start();
    const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
    try {
      const names = await rpc.call('bdev_nvme_attach_controller', {
        name: 'Nvme0',
        trtype: 'tcp',
        adrfam: 'IPv4',
        traddr: '127.0.0.1',
        trsvcid: String(p1),
        subnqn: NQN,
      });
      expect(names).to.deep.equal(['Nvme0n1']);
      const b = await rpc.call<{ name: string; num_blocks: number; product_name: string }[]>(
        'bdev_get_bdevs',
        {
          name: 'Nvme0n1',
        },
      );
      expect(b[0]).to.include({ num_blocks: 8192, product_name: 'NVMe disk' });
      const ctrls =
        await rpc.call<{ name: string; ctrlrs: { trid: { subnqn: string } }[] }[]>(
          'bdev_nvme_get_controllers',
        );
      expect(ctrls.map((c) => [c.name, c.ctrlrs[0].trid.subnqn])).to.deep.equal([['Nvme0', NQN]]);

      await rpc.call('nvmf_create_subsystem', { nqn: NQN2, allow_any_host: true });
      await rpc.call('nvmf_subsystem_add_ns', { nqn: NQN2, namespace: { bdev_name: 'Nvme0n1' } });
      await rpc.call('nvmf_subsystem_add_listener', { nqn: NQN2, listen_address: la(p2) });

      const trid = (p: number, n: string) =>
        `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${p} subnqn:${n}`;
      const outer = await NvmeController.connect(trid(p2, NQN2));
      const direct = await NvmeController.connect(trid(p1, NQN));
      try {
        const qs: HostQpair[] = [];
        for (let i = 0; i < 4; i++) qs.push(await outer.allocIoQpair({ depth: 16 }));
        const dq = await direct.allocIoQpair({ depth: 16 });
        // Through the re-export (Nvme0n1 → its reactor's qpair → Malloc0), read back directly.
        for (let k = 0; k < qs.length; k++) {
          const data = Uint8Array.from({ length: 8192 }, (_, j) => (j * 3 + k * 11) & 0xff);
          expect(await io(qs[k], (cb) => qs[k].write(1, k * 16, 16, data, cb, null))).to.equal(0);
          const back = new Uint8Array(8192);
          expect(await io(dq, (cb) => dq.read(1, k * 16, 16, back, cb, null))).to.equal(0);
          expect(Buffer.compare(back, data), `range ${k}`).to.equal(0);
        }
        // Written directly, read through the re-export on every queue.
        const d2 = new Uint8Array(4096).fill(0x6b);
        expect(await io(dq, (cb) => dq.write(1, 1000, 8, d2, cb, null))).to.equal(0);
        for (const q of qs) {
          const back = new Uint8Array(4096);
          expect(await io(q, (cb) => q.read(1, 1000, 8, back, cb, null))).to.equal(0);
          expect(Buffer.compare(back, d2)).to.equal(0);
        }
        const saved = await rpc.call<SpdkConfig>('save_config');
        // SPDK's layout: bdev_nvme_attach_controller leads the bdev section (no bdev_nvme section).
        expect(saved.subsystems.map((s) => s.subsystem)).to.not.include('bdev_nvme');
        expect(saved.subsystems.find((s) => s.subsystem === 'bdev')!.config!.slice(0, 1)).to.deep.equal([
          {
            method: 'bdev_nvme_attach_controller',
            params: {
              name: 'Nvme0',
              trtype: 'TCP',
              adrfam: 'IPv4',
              traddr: '127.0.0.1',
              trsvcid: String(p1),
              subnqn: NQN,
            },
          },
        ]);

        // Detach while re-exported: the namespace leaves cnode2 on every reactor, the bdev goes.
        expect(await rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' })).to.equal(true);
        expect(await rpc.call('bdev_nvme_get_controllers')).to.deep.equal([]);
        const subs = await rpc.call<{ nqn: string; namespaces?: unknown[] }[]>('nvmf_get_subsystems');
        expect(subs.find((s) => s.nqn === NQN2)!.namespaces).to.deep.equal([]);
        expect(await outer.activeNamespaces()).to.deep.equal([]);
      } finally {
        await outer.close();
        await direct.close();
      }
    } finally {
      rpc.close();
      const r = await t.stop();
      await rm(dir, { recursive: true, force: true });
      expect(r.leaked).to.deep.equal([]);
    }
  });

  // The remote target restarts: the channels on both reactors (worker isolates, not the test
  // harness) queue I/O, reactor 0 resets the controller and tells reactor 1, both reconnect.
  it('rides out a restart of the remote target on every reactor (ctrlr_loss_timeout_sec)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'storkit-bdev-nvme-rc-'));
    const [p1, p2] = [await freePort(), await freePort()];
    const la = (p: number) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) });
    const ram = new RamBackend({ name: 'Ram0', blockSize: 512, numBlocks: 4096 });
    const remote = async (): Promise<NvmfTarget> => {
      const r = new NvmfTarget();
      r.nvmf_create_transport({ trtype: 'TCP' });
      r.registerBackend(ram);
      r.nvmf_create_subsystem({ nqn: NQN, allow_any_host: true });
      r.nvmf_subsystem_add_ns({ nqn: NQN, namespace: { nsid: 1, bdev_name: 'Ram0' } });
      await r.nvmf_subsystem_add_listener({ nqn: NQN, listen_address: la(p1) });
      return r;
    };
    let r = await remote();
    const t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: {
        subsystems: [
          { subsystem: 'nvmf', config: [{ method: 'nvmf_create_transport', params: { trtype: 'TCP' } }] },
        ],
      },
    });
    await t.start();
    const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
    const trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${p2} subnqn:${NQN2}`;
    let outer: NvmeController | undefined;
    try {
      // SPDK's rules for the timeouts are checked.
      let bad: Error | undefined;
      await rpc
        .call('bdev_nvme_attach_controller', {
          name: 'X',
          trtype: 'tcp',
          traddr: '127.0.0.1',
          ctrlr_loss_timeout_sec: 5,
        })
        .catch((e: Error) => (bad = e));
      expect(bad?.message).to.match(/reconnect_delay_sec/);
      await rpc.call('bdev_nvme_attach_controller', {
        name: 'Nvme0',
        trtype: 'tcp',
        traddr: '127.0.0.1',
        trsvcid: String(p1),
        subnqn: NQN,
        ctrlr_loss_timeout_sec: 20,
        reconnect_delay_sec: 1,
      });
      await rpc.call('nvmf_create_subsystem', { nqn: NQN2, allow_any_host: true });
      await rpc.call('nvmf_subsystem_add_ns', { nqn: NQN2, namespace: { bdev_name: 'Nvme0n1' } });
      await rpc.call('nvmf_subsystem_add_listener', { nqn: NQN2, listen_address: la(p2) });
      outer = await NvmeController.connect(trid);
      // Enough queues that the kernel's SO_REUSEPORT spread puts some on each reactor.
      const qs: HostQpair[] = [];
      for (let i = 0; i < 8; i++) qs.push(await outer.allocIoQpair({ depth: 8 }));
      const qpairs = await rpc.call<{ thread: string }[]>('nvmf_subsystem_get_qpairs', { nqn: NQN2 });
      expect(new Set(qpairs.map((q) => q.thread)).size, 'queues on both reactors').to.equal(2);
      for (let k = 0; k < qs.length; k++) {
        const d = new Uint8Array(4096).fill(k + 1);
        expect(await io(qs[k], (cb) => qs[k].write(1, k * 8, 8, d, cb, null))).to.equal(0);
      }
      expect(ram.data[7 * 8 * 512]).to.equal(8);

      await r.close();
      // Writes through every queue while the remote is away, completed once it is back.
      const st: number[] = qs.map(() => -1);
      for (let k = 0; k < qs.length; k++) {
        const d = new Uint8Array(4096).fill(0x80 + k);
        expect(qs[k].write(1, 1000 + k * 8, 8, d, (_x, s) => (st[k] = s), null)).to.equal(true);
      }
      const pollAll = async (until: number, done: () => boolean): Promise<void> => {
        while (!done() && Date.now() < until) {
          await new Promise((res) => setTimeout(res, 5));
          for (const q of qs) q.processCompletions();
        }
      };
      await pollAll(Date.now() + 500, () => false);
      expect(
        st.every((s) => s === -1),
        'held while the remote is away',
      ).to.equal(true);
      r = await remote();
      await pollAll(Date.now() + 15000, () => st.every((s) => s !== -1));
      expect(st).to.deep.equal(qs.map(() => 0));
      for (let k = 0; k < qs.length; k++)
        expect(
          ram.data.subarray((1000 + k * 8) * 512, (1008 + k * 8) * 512).every((v) => v === 0x80 + k),
        ).to.equal(true);
      const c =
        await rpc.call<{ ctrlrs: { state: string; resets: number }[] }[]>('bdev_nvme_get_controllers');
      expect(c[0].ctrlrs[0].state).to.equal('enabled');
      expect(c[0].ctrlrs[0].resets).to.be.at.least(1);
      await rpc.call('bdev_nvme_detach_controller', { name: 'Nvme0' });
    } finally {
      await outer?.close();
      rpc.close();
      const res = await t.stop();
      await r.close();
      await rm(dir, { recursive: true, force: true });
      expect(res.leaked).to.deep.equal([]);
    }
  });
});
