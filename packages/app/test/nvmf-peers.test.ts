// The app-hosted NVMe/TCP target (storkit tgt, two reactors) against outside judges: Wireshark's
// dissector on a captured session, the storkit nvme-identify / nvme-perf tools in their own
// processes, and hostile connections next to a host doing verified I/O.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { type HostQpair, NvmeController } from '@storkit/nvme';
import * as wire from '@storkit/nvme/testing';
import { PduType } from '@storkit/nvme-spec';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { freePort, io, NQN } from './nvmf-helpers.js';

const main = fileURLToPath(new URL('../../../cli/dist/src/main.js', import.meta.url));
const run = promisify(execFile);

function config(ports: number[], bdevIoCache?: number): SpdkConfig {
  const la = (p: number) => ({ trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(p) });
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          ...(bdevIoCache === undefined
            ? []
            : [{ method: 'bdev_set_options', params: { bdev_io_cache_size: bdevIoCache } }]),
          { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 } },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          {
            method: 'nvmf_create_transport',
            params: { trtype: 'TCP', in_capsule_data_size: 4096, io_unit_size: 16384 },
          },
          {
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address: la(ports[0]) },
          },
          {
            method: 'nvmf_create_subsystem',
            params: {
              nqn: NQN,
              allow_any_host: true,
              serial_number: 'STORKIT0042',
              model_number: 'storkit app',
            },
          },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: NQN, namespace: { nsid: 1, bdev_name: 'Malloc0' } },
          },
          ...ports.map((p) => ({
            method: 'nvmf_subsystem_add_listener',
            params: { nqn: NQN, listen_address: la(p) },
          })),
        ],
      },
    ],
  };
}

async function withApp<T>(
  nports: number,
  fn: (ports: number[], rpc: RpcClient, dir: string) => Promise<T>,
  bdevIoCache?: number,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'storkit-nvmf-peers-'));
  const ports: number[] = [];
  for (let i = 0; i < nports; i++) ports.push(await freePort());
  const t = new Target({
    cores: [0, 1],
    rpcSocket: join(dir, 'rpc.sock'),
    signals: false,
    log: new Logger('error', () => {}),
    config: config(ports, bdevIoCache),
  });
  await t.start();
  const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
  try {
    return await fn(ports, rpc, dir);
  } finally {
    rpc.close();
    const r = await t.stop();
    await rm(dir, { recursive: true, force: true });
    expect(r.leaked).to.deep.equal([]);
  }
}

const trid = (port: number) => `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;

describe('app: NVMe/TCP target checked by peers', function () {
  this.timeout(90000);

  it('Wireshark decodes sessions with the app-hosted target cleanly and flags a bad digest', async () => {
    wire.requireTshark();
    await withApp(2, async ([good, bad], _rpc, dir) => {
      const file = join(dir, 'app-nvme-tcp.pcapng');
      const cap = await wire.startCapture(file, [good, bad], bad);
      try {
        await wire.session(trid(good), false);
        await wire.session(trid(good), true);
        await wire.badDigestSession(bad);
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        await cap.stop();
      }
      const flagged = wire.flaggedFrames(file, good);
      const why = flagged.length ? wire.explainFrame(file, good, flagged[0]) : '';
      expect(flagged, `frames Wireshark flags:\n${why}`).to.deep.equal([]);
      expect(wire.flaggedFrames(file, bad).length, 'the bad header digest is flagged').to.be.greaterThan(0);
      const types = wire.pduTypes(file, good);
      const count = (t: number) => types.filter((x) => x === t).length;
      expect(count(PduType.ICReq)).to.equal(4); // two sessions, admin + I/O queue each
      expect(count(PduType.ICResp)).to.equal(4);
      expect(count(PduType.R2T)).to.equal(2);
      expect(count(PduType.H2CData)).to.equal(8);
      expect(count(PduType.C2HData)).to.be.greaterThan(8);
      const verdicts = wire.digestVerdicts(file, good);
      expect(verdicts.length).to.be.greaterThan(20);
      expect(verdicts.every((v) => v === '1')).to.equal(true);
    });
  });

  it('storkit nvme-identify and several nvme-perf processes at once against storkit tgt', async () => {
    await withApp(1, async ([port], rpc) => {
      const id = await run(process.execPath, [main, 'nvme-identify', '-r', trid(port)]);
      expect(id.stdout).to.match(/Serial Number: +STORKIT0042/);
      expect(id.stdout).to.match(/Model Number: +storkit app/);
      expect(id.stdout).to.match(/Namespace ID:1\n(?:.*\n)*?Size \(in LBAs\): +16384 \(0GiB\)/);
      const perf = () =>
        run(process.execPath, [
          main,
          'nvme-perf',
          '-r',
          trid(port),
          '-q',
          '16',
          '-o',
          '4096',
          '-w',
          'randrw',
          '-M',
          '50',
          '-t',
          '1',
        ]);
      const outs = await Promise.all([perf(), perf(), perf()]);
      let ios = 0;
      for (const r of outs) {
        const m = /I\/Os: (\d+) \((\d+) reads, (\d+) writes, 0 errors\)/.exec(r.stdout);
        expect(m, r.stdout).to.not.equal(null);
        expect(Number(m![1])).to.be.greaterThan(100);
        ios += Number(m![1]);
      }
      const stats = await rpc.call<{
        poll_groups: { completed_nvme_io: number; admin_qpairs: number; io_qpairs: number }[];
      }>('nvmf_get_stats');
      expect(stats.poll_groups).to.have.length(2);
      // Completions, not commands received: every I/O a tool counted, and at most a queue's worth
      // more per tool (commands still in flight when it stopped counting).
      const completed = stats.poll_groups.reduce((n, g) => n + g.completed_nvme_io, 0);
      expect(completed).to.be.within(ios, ios + 3 * 16);
      expect(stats.poll_groups.reduce((n, g) => n + g.admin_qpairs, 0)).to.equal(4); // identify + 3 perf
      expect(stats.poll_groups.reduce((n, g) => n + g.io_qpairs, 0)).to.equal(3);
    });
  });

  it('pending_bdev_io counts I/O that waited for a bdev_io (16 per channel, QD 64 from the host)', async () => {
    await withApp(
      1,
      async ([port], rpc) => {
        const r = await run(process.execPath, [
          main,
          'nvme-perf',
          '-r',
          trid(port),
          '-q',
          '64',
          '-o',
          '4096',
          '-w',
          'randread',
          '-t',
          '1',
        ]);
        expect(r.stdout).to.match(/0 errors/);
        const stats = await rpc.call<{ poll_groups: { pending_bdev_io: number }[] }>('nvmf_get_stats');
        expect(stats.poll_groups.reduce((n, g) => n + g.pending_bdev_io, 0)).to.be.greaterThan(0);
      },
      16,
    );
  });

  it('hostile connections end alone while a host keeps doing verified I/O on four queues', async () => {
    await withApp(1, async ([port], rpc) => {
      const c = await NvmeController.connect(trid(port));
      try {
        const qps: HostQpair[] = [];
        for (let i = 0; i < 4; i++) qps.push(await c.allocIoQpair({ depth: 16 }));
        let stop = false;
        let rounds = 0;
        const worker = async (qp: HostQpair, k: number) => {
          const buf = new Uint8Array(4096);
          const back = new Uint8Array(4096);
          for (let n = 0; !stop; n++) {
            buf.fill((k * 17 + n) & 0xff);
            const lba = (k * 512 + (n % 64) * 8) % 16384;
            expect(await io(qp, (cb) => qp.write(1, lba, 8, buf, cb, null))).to.equal(0);
            expect(await io(qp, (cb) => qp.read(1, lba, 8, back, cb, null))).to.equal(0);
            expect(Buffer.compare(back, buf)).to.equal(0);
            rounds++;
          }
        };
        const running = qps.map(worker);
        // Garbage, a truncated PDU, an oversized PDU length, and vanishing mid-ICReq, ten times.
        const hostile = async (bytes: Uint8Array) => {
          const s = net.connect({ host: '127.0.0.1', port });
          s.on('error', () => {});
          s.resume();
          await new Promise((r) => s.once('connect', r));
          s.write(bytes);
          await new Promise((r) => setTimeout(r, 20));
          s.destroy();
        };
        for (let i = 0; i < 10; i++) {
          await hostile(Uint8Array.from({ length: 300 }, (_, j) => (j * 97 + i) & 0xff));
          await hostile(new Uint8Array([0, 0, 128, 0, 0x80, 0, 0, 0])); // ICReq header only
          await hostile(new Uint8Array([0, 0, 128, 0, 0xff, 0xff, 0xff, 0x7f])); // PLEN 2 GiB
        }
        stop = true;
        await Promise.all(running);
        expect(rounds).to.be.greaterThan(0);
        // Still serving: a new host connects and reads what the first one wrote.
        const c2 = await NvmeController.connect(trid(port));
        const q2 = await c2.allocIoQpair({ depth: 4 });
        expect(await io(q2, (cb) => q2.read(1, 0, 8, new Uint8Array(4096), cb, null))).to.equal(0);
        await c2.close();
        // The hostile ones and c2's are gone: a reactor learns of a closed socket at its next poll
        // of the socket group, so give it a moment.
        const ioQueues = async () =>
          (await rpc.call<{ qid: number }[]>('nvmf_subsystem_get_qpairs', { nqn: NQN })).filter(
            (q) => q.qid > 0,
          );
        let left = await ioQueues();
        for (
          const until = Date.now() + 5000;
          left.length !== 4 && Date.now() < until;
          left = await ioQueues()
        )
          await new Promise((r) => setTimeout(r, 20));
        expect(left).to.have.length(4);
      } finally {
        await c.close();
      }
    });
  });
});
