// storkit tgt serving NVMe/TCP from two reactors: connections spread over both (SO_REUSEPORT),
// I/O queues of one controller on both reactors, data integrity between NVMe/TCP and the bdev
// underneath, namespace hot add/remove with AERs, controller teardown across reactors, and
// save_config with the nvmf section.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { closeFd, reuseportListen } from '@storkit/native';
import { type HostQpair, NvmeController } from '@storkit/nvme';
import {
  CC,
  decodeErrorLogEntry,
  decodeHealthLog,
  ERROR_LOG_ENTRY_SIZE,
  GenericStatus,
  HEALTH_LOG_SIZE,
  LogPage,
  makeStatus,
  Reg,
  Sct,
} from '@storkit/nvme-spec';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort, io, NQN } from './nvmf-helpers.js';

const quiet = () => new Logger('error', () => {});

export function nvmfConfig(port: number, file: string): SpdkConfig {
  const listen_address = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
          { method: 'bdev_uring_create', params: { name: 'File0', filename: file, block_size: 4096 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP', max_queue_depth: 128 } },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address },
          },
          {
            method: 'nvmf_create_subsystem',
            params: { nqn: NQN, allow_any_host: true, serial_number: 'STORKIT0001' },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 2, bdev_name: 'File0' } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: NQN, listen_address } },
        ],
      },
    ],
  };
}

export interface Env {
  t: Target;
  rpc: RpcClient;
  port: number;
  dir: string;
  file: string;
  trid: string;
}

/** A two-reactor target (cores 0 and 1) with Malloc0 (nsid 1) and a file bdev (nsid 2). */
export async function withNvmfTarget<T>(fn: (e: Env) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'storkit-nvmf-app-'));
  const file = join(dir, 'file0.img');
  await writeFile(file, Buffer.alloc(4 << 20));
  const port = await freePort();
  const sock = join(dir, 'rpc.sock');
  const t = new Target({
    cores: [0, 1],
    rpcSocket: sock,
    signals: false,
    log: quiet(),
    config: nvmfConfig(port, file),
  });
  await t.start();
  const rpc = await RpcClient.connect(sock);
  try {
    return await fn({
      t,
      rpc,
      port,
      dir,
      file,
      trid: `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`,
    });
  } finally {
    rpc.close();
    const r = await t.stop();
    await rm(dir, { recursive: true, force: true });
    expect(r.leaked).to.deep.equal([]);
  }
}

interface Qp {
  cntlid: number;
  qid: number;
  thread: string;
}

describe('app: NVMe/TCP on two reactors', function () {
  this.timeout(60000);

  it('spreads connections over both reactors, including I/O queues of one controller, with intact data', async () => {
    await withNvmfTarget(async ({ rpc, trid }) => {
      const ctrlrs: NvmeController[] = [];
      const qps: HostQpair[] = [];
      const ownerOf: number[] = [];
      try {
        // Keep connecting until some controller has I/O queues on both reactors, one of them away
        // from its admin queue (the kernel hashes each connection; 40 tries miss with p = 2^-40).
        let split = false;
        for (let i = 0; i < 40 && !split; i++) {
          if (i % 4 === 0) ctrlrs.push(await NvmeController.connect(trid));
          qps.push(await ctrlrs[ctrlrs.length - 1].allocIoQpair({ depth: 32 }));
          ownerOf.push(ctrlrs.length - 1);
          const list = await rpc.call<Qp[]>('nvmf_subsystem_get_qpairs', { nqn: NQN });
          split = list.some(
            (q) =>
              q.qid > 0 && list.some((a) => a.qid === 0 && a.cntlid === q.cntlid && a.thread !== q.thread),
          );
        }
        expect(split, 'an I/O queue on another reactor than its admin queue').to.equal(true);
        const threads = new Set(
          (await rpc.call<Qp[]>('nvmf_subsystem_get_qpairs', { nqn: NQN })).map((q) => q.thread),
        );
        expect([...threads].sort()).to.deep.equal(['nvmf_tgt_poll_group_000', 'nvmf_tgt_poll_group_001']);

        // Verified I/O through every qpair (each writes its own range, then everyone reads all).
        const blocks = 16;
        const pattern = (k: number) =>
          Uint8Array.from({ length: blocks * 512 }, (_, j) => (j * 7 + k * 31) & 0xff);
        for (let k = 0; k < qps.length; k++)
          expect(
            await io(qps[k], (cb) => qps[k].write(1, k * blocks, blocks, pattern(k), cb, null)),
          ).to.equal(0);
        for (let k = 0; k < qps.length; k++) {
          const reader = qps[(k + 1) % qps.length];
          const back = new Uint8Array(blocks * 512);
          expect(await io(reader, (cb) => reader.read(1, k * blocks, blocks, back, cb, null))).to.equal(0);
          expect(Buffer.compare(back, pattern(k)), `range ${k}`).to.equal(0);
        }
        // A read past the end on every queue: an error log entry each, wherever the queue is.
        for (const q of qps)
          expect(await io(q, (cb) => q.read(1, 8190, 16, new Uint8Array(16 * 512), cb, null))).to.not.equal(
            0,
          );
        // SMART and error logs count every reactor's queues of the controller (each queue wrote
        // once and read twice, one read failed).
        for (let c = 0; c < ctrlrs.length; c++) {
          const mine = qps.filter((_, k) => ownerOf[k] === c);
          const h = decodeHealthLog(await ctrlrs[c].getLogPage(LogPage.Health, HEALTH_LOG_SIZE));
          expect(
            [h.hostWriteCommands, h.hostReadCommands, h.errorLogEntries],
            `controller ${c}`,
          ).to.deep.equal([mine.length, mine.length, mine.length]);
          expect(h.dataUnitsWritten).to.equal(mine.length > 0 ? 1 : 0);
          const log = await ctrlrs[c].getLogPage(LogPage.Error, 16 * ERROR_LOG_ENTRY_SIZE);
          const sqids = [];
          for (let e = 0; e < mine.length; e++)
            sqids.push(decodeErrorLogEntry(log, e * ERROR_LOG_ENTRY_SIZE).sqid);
          expect(sqids.sort(), `controller ${c} error log`).to.deep.equal(mine.map((q) => q.qid).sort());
          expect(decodeErrorLogEntry(log, 0).errorCount).to.equal(mine.length);
        }

        const ctl = await rpc.call<{ cntlid: number; num_io_qpairs: number; thread: string }[]>(
          'nvmf_subsystem_get_controllers',
          { nqn: NQN },
        );
        expect(ctl.map((c) => c.cntlid).sort()).to.deep.equal(ctrlrs.map((c) => c.cntlid).sort());
        expect(ctl.reduce((n, c) => n + c.num_io_qpairs, 0)).to.equal(qps.length);
        const stats = await rpc.call<{ poll_groups: { name: string; current_io_qpairs: number }[] }>(
          'nvmf_get_stats',
        );
        expect(stats.poll_groups.map((g) => g.name)).to.deep.equal([
          'nvmf_tgt_poll_group_000',
          'nvmf_tgt_poll_group_001',
        ]);
        expect(stats.poll_groups.reduce((n, g) => n + g.current_io_qpairs, 0)).to.equal(qps.length);

        // Closing a controller (its admin queue) closes its I/O queues on the other reactor too.
        for (const c of ctrlrs.splice(0)) await c.close();
        qps.length = 0;
        const until = Date.now() + 5000;
        let left = await rpc.call<Qp[]>('nvmf_subsystem_get_qpairs', { nqn: NQN });
        while (left.length > 0 && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 20));
          left = await rpc.call<Qp[]>('nvmf_subsystem_get_qpairs', { nqn: NQN });
        }
        expect(left).to.deep.equal([]);
      } finally {
        for (const c of ctrlrs) await c.close().catch(() => {});
      }
    });
  });

  it('closes I/O queues on the other reactor when their controller resets or loses its admin queue', async () => {
    await withNvmfTarget(async ({ rpc, trid }) => {
      const qpairs = () => rpc.call<Qp[]>('nvmf_subsystem_get_qpairs', { nqn: NQN });
      const waitFor = async (pred: (l: Qp[]) => boolean) => {
        const until = Date.now() + 5000;
        let l = await qpairs();
        while (!pred(l) && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 20));
          l = await qpairs();
        }
        expect(pred(l), JSON.stringify(l)).to.equal(true);
        return l;
      };
      /** A controller with an I/O queue on the other reactor than its admin queue. */
      const split = async (): Promise<NvmeController> => {
        for (let i = 0; i < 30; i++) {
          const c = await NvmeController.connect(trid);
          for (let k = 0; k < 2; k++) await c.allocIoQpair({ depth: 8 });
          const l = (await qpairs()).filter((q) => q.cntlid === c.cntlid);
          const admin = l.find((q) => q.qid === 0)!;
          if (l.some((q) => q.qid > 0 && q.thread !== admin.thread)) return c;
          await c.close();
        }
        throw new Error('no controller with queues on both reactors in 30 tries');
      };
      // Reset (CC.EN = 0): every I/O queue of the controller goes, the admin queue stays; after
      // enabling again new I/O queues connect (their queue IDs were released on both reactors).
      const c = await split();
      try {
        await c.setRegister(Reg.CC, 0);
        await waitFor(
          (l) =>
            l
              .filter((q) => q.cntlid === c.cntlid)
              .map((q) => q.qid)
              .join() === '0',
        );
        await c.setRegister(Reg.CC, CC.enabled);
        const again: HostQpair[] = [];
        for (let k = 0; k < 4; k++) again.push(await c.allocIoQpair({ depth: 8 }));
        await waitFor((l) => l.filter((q) => q.cntlid === c.cntlid && q.qid > 0).length === 4);
        for (const q of again)
          expect(await io(q, (cb) => q.read(1, 0, 1, new Uint8Array(512), cb, null))).to.equal(0);
      } finally {
        await c.close();
      }
      // The admin connection alone goes away: the controller and its I/O queues on both reactors end.
      const d = await split();
      try {
        d.admin.close();
        await waitFor((l) => !l.some((q) => q.cntlid === d.cntlid));
        const ctl = await rpc.call<{ cntlid: number }[]>('nvmf_subsystem_get_controllers', { nqn: NQN });
        expect(ctl.map((x) => x.cntlid)).to.not.include(d.cntlid);
      } finally {
        await d.close().catch(() => {});
      }
    });
  });

  it('data written through NVMe/TCP is in the bdev underneath, and the other way round', async () => {
    await withNvmfTarget(async ({ trid, file }) => {
      const c = await NvmeController.connect(trid);
      try {
        const qp = await c.allocIoQpair({ depth: 8 });
        const data = Uint8Array.from({ length: 8192 }, (_, j) => (j * 13 + 5) & 0xff);
        expect(await io(qp, (cb) => qp.write(2, 3, 2, data, cb, null))).to.equal(0);
        expect(await io(qp, (cb) => qp.flush(2, cb, null))).to.equal(0);
        const onDisk = await readFile(file);
        expect(Buffer.compare(onDisk.subarray(3 * 4096, 5 * 4096), data)).to.equal(0);
        // Written underneath (the file behind the bdev), read through NVMe/TCP.
        const other = Buffer.alloc(4096, 0x5a);
        const fh = await import('node:fs/promises').then((m) => m.open(file, 'r+'));
        await fh.write(other, 0, 4096, 100 * 4096);
        await fh.sync();
        await fh.close();
        const back = new Uint8Array(4096);
        expect(await io(qp, (cb) => qp.read(2, 100, 1, back, cb, null))).to.equal(0);
        expect(Buffer.compare(back, other)).to.equal(0);
      } finally {
        await c.close();
      }
    });
  });

  it('adds and removes namespaces on every reactor while connected (AER on the admin queue)', async () => {
    await withNvmfTarget(async ({ rpc, trid }) => {
      await rpc.call('bdev_malloc_create', { name: 'Malloc1', num_blocks: 2048, block_size: 512 });
      const c = await NvmeController.connect(trid);
      const events: number[] = [];
      c.onAsyncEvent((dw0) => events.push(dw0));
      try {
        const qps: HostQpair[] = [];
        for (let i = 0; i < 6; i++) qps.push(await c.allocIoQpair({ depth: 8 }));
        expect(
          await rpc.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { bdev_name: 'Malloc1' } }),
        ).to.equal(3);
        const until = Date.now() + 5000;
        while (events.length === 0 && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 10));
          c.admin.processCompletions();
        }
        expect(events.length).to.be.greaterThan(0);
        expect(await c.activeNamespaces()).to.deep.equal([1, 2, 3]);
        const data = new Uint8Array(512).fill(0xa7);
        for (const qp of qps) {
          expect(await io(qp, (cb) => qp.write(3, 7, 1, data, cb, null))).to.equal(0);
          const back = new Uint8Array(512);
          expect(await io(qp, (cb) => qp.read(3, 7, 1, back, cb, null))).to.equal(0);
          expect(back[511]).to.equal(0xa7);
        }
        await rpc.call('nvmf_subsystem_remove_ns', { nqn: NQN, nsid: 3 });
        expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
        const invalidNs = makeStatus(Sct.Generic, GenericStatus.InvalidNamespaceOrFormat, true);
        for (const qp of qps)
          expect(await io(qp, (cb) => qp.read(3, 7, 1, new Uint8Array(512), cb, null))).to.equal(invalidNs);
        // Hot removal: deleting a bdev that backs a namespace takes the namespace away on every
        // reactor (and out of save_config), and the host hears of it.
        expect(
          await rpc.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { bdev_name: 'Malloc1' } }),
        ).to.equal(3);
        expect(await c.activeNamespaces()).to.deep.equal([1, 2, 3]);
        await c.getLogPage(0x04, 4096); // Changed Namespace List: re-arms namespace notices
        const seen = events.length;
        await rpc.call('bdev_malloc_delete', { name: 'Malloc1' });
        expect(await c.activeNamespaces()).to.deep.equal([1, 2]);
        for (const qp of qps)
          expect(await io(qp, (cb) => qp.read(3, 7, 1, new Uint8Array(512), cb, null))).to.equal(invalidNs);
        const until2 = Date.now() + 5000;
        while (events.length === seen && Date.now() < until2) {
          await new Promise((r) => setTimeout(r, 10));
          c.admin.processCompletions();
        }
        expect(events.length).to.be.greaterThan(seen);
        const saved = await rpc.call<SpdkConfig>('save_config');
        const ns = saved.subsystems
          .find((x) => x.subsystem === 'nvmf')!
          .config!.filter((e) => e.method === 'nvmf_subsystem_add_ns')
          .map((e) => (e.params as { namespace: { nsid: number } }).namespace.nsid);
        expect(ns).to.deep.equal([1, 2]);
      } finally {
        await c.close();
      }
    });
  });

  it('save_config carries the nvmf section, and it loads back into an identical target', async () => {
    let saved: SpdkConfig | undefined;
    await withNvmfTarget(async ({ rpc }) => {
      await rpc.call('nvmf_subsystem_add_host', {
        nqn: NQN,
        host: 'nqn.2014-08.org.nvmexpress:uuid:0e4fd4a0-1b2c-4d5e-8f90-a1b2c3d4e5f6',
      });
      await rpc.call('nvmf_discovery_add_referral', {
        address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.2', trsvcid: '4420' },
      });
      saved = await rpc.call<SpdkConfig>('save_config');
    });
    const nvmf = saved!.subsystems.find((s) => s.subsystem === 'nvmf')!;
    const methods = nvmf.config!.map((e) => e.method);
    expect(methods).to.include.members([
      'nvmf_create_transport',
      'nvmf_create_subsystem',
      'nvmf_subsystem_add_ns',
      'nvmf_subsystem_add_host',
      'nvmf_subsystem_add_listener',
      'nvmf_discovery_add_referral',
    ]);
    // Reload it (fresh port and file) and compare what nvmf_get_subsystems says.
    const dir = await mkdtemp(join(tmpdir(), 'storkit-nvmf-reload-'));
    try {
      const port = await freePort();
      const file = join(dir, 'file0.img');
      await writeFile(file, Buffer.alloc(4 << 20));
      const text = JSON.stringify(saved)
        .replace(/"trsvcid":"\d+"/g, (m) => (m === '"trsvcid":"4420"' ? m : `"trsvcid":"${port}"`))
        .replace(/"filename":"[^"]*"/, `"filename":${JSON.stringify(file)}`);
      const t = new Target({
        cores: [0, 1],
        rpcSocket: join(dir, 'rpc.sock'),
        signals: false,
        log: quiet(),
        config: JSON.parse(text),
      });
      await t.start();
      const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
      try {
        const subs =
          await rpc.call<{ nqn: string; hosts: unknown[]; namespaces?: unknown[] }[]>('nvmf_get_subsystems');
        const s = subs.find((x) => x.nqn === NQN)!;
        expect(s.hosts).to.have.length(1);
        expect(s.namespaces).to.have.length(2);
        const again = await rpc.call<SpdkConfig>('save_config');
        expect(again.subsystems.find((x) => x.subsystem === 'nvmf')).to.deep.equal(
          JSON.parse(text).subsystems.find((x: { subsystem: string }) => x.subsystem === 'nvmf'),
        );
        const c = await NvmeController.connect(
          `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`,
          {
            hostnqn: 'nqn.2014-08.org.nvmexpress:uuid:0e4fd4a0-1b2c-4d5e-8f90-a1b2c3d4e5f6',
          },
        );
        await c.close();
      } finally {
        rpc.close();
        await t.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad nvmf RPCs with SPDK-style errors and leaves nothing half-made', async () => {
    await withNvmfTarget(async ({ rpc }) => {
      const err = (p: Promise<unknown>) =>
        p.then(
          () => null,
          (e: { code: number }) => e.code,
        );
      expect(await err(rpc.call('nvmf_create_subsystem', { nqn: NQN }))).to.equal(-17);
      expect(
        await err(rpc.call('nvmf_subsystem_add_ns', { nqn: NQN, namespace: { bdev_name: 'NoSuch' } })),
      ).to.equal(-19);
      expect(
        await err(
          rpc.call('nvmf_subsystem_add_ns', {
            nqn: 'nqn.2016-06.io.storkit:none',
            namespace: { bdev_name: 'Malloc0' },
          }),
        ),
      ).to.equal(-19);
      expect(await err(rpc.call('nvmf_create_transport', { trtype: 'TCP' }))).to.equal(-17);
      expect(await err(rpc.call('nvmf_create_subsystem', { nqn: 'not-an-nqn' }))).to.be.a('number');
      // An address another process listens on is refused with EADDRINUSE, whether that listener is
      // plain (as here) or another target's SO_REUSEPORT group, which the reactors could join.
      const other = net.createServer();
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      const held = String((other.address() as net.AddressInfo).port);
      const la = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: held };
      expect(await err(rpc.call('nvmf_subsystem_add_listener', { nqn: NQN, listen_address: la }))).to.equal(
        -98,
      );
      await new Promise((r) => other.close(r));
      // Another target's SO_REUSEPORT listener: the kernel would let the reactors join its group
      // and split the connections, so only the probe before binding catches it.
      const group = reuseportListen('127.0.0.1', 0);
      const lb = { ...la, trsvcid: String(group.port) };
      try {
        expect(await err(rpc.call('nvmf_subsystem_add_listener', { nqn: NQN, listen_address: lb }))).to.equal(
          -98,
        );
      } finally {
        closeFd(group.fd);
      }
      expect(await rpc.call('nvmf_subsystem_add_listener', { nqn: NQN, listen_address: la })).to.equal(true);
      expect(await rpc.call<unknown[]>('nvmf_subsystem_get_listeners', { nqn: NQN })).to.have.length(2);
      const subs = await rpc.call<{ nqn: string }[]>('nvmf_get_subsystems');
      expect(subs.map((s) => s.nqn)).to.deep.equal(['nqn.2014-08.org.nvmexpress.discovery', NQN]);
    });
  });
});
