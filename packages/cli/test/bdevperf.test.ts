import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Histogram } from '@storkit/bdev';
import { expect } from 'chai';

import { formatResults } from '../src/commands/bdevperf.js';

const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
const run = promisify(execFile);

async function storkit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [main, ...args]);
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/**
 * Two seconds of 4 KiB verify at depth `qd` on the cores of `mask` with config file `c`: a clean run
 * (exit 0, nothing on stderr, no failed I/O or miscompare). Its stdout and total IOPS.
 */
async function verify(c: string, qd: number, mask: string): Promise<{ stdout: string; iops: number }> {
  const r = await storkit(
    'bdevperf',
    '--json',
    c,
    '-q',
    String(qd),
    '-o',
    '4k',
    '-w',
    'verify',
    '-t',
    '2',
    '-m',
    mask,
  );
  expect(r.stderr).to.equal('');
  expect(r.code).to.equal(0);
  const total = /^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)/m.exec(r.stdout);
  expect(Number(total?.[1])).to.be.greaterThan(100);
  expect(Number(total?.[3])).to.equal(0); // Fail/s: no error, no miscompare
  return { stdout: r.stdout, iops: Number(total?.[1]) };
}

/** storkit tgt with `args`, once it says it runs; stop() ends it and waits for its exit. */
async function startTgt(args: string[]): Promise<{ stop: () => Promise<void> }> {
  const tgt: ChildProcess = spawn(process.execPath, [main, 'tgt', '--no-stats', '-m', '0x1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  tgt.stdout!.on('data', (d) => (out += d));
  tgt.stderr!.on('data', (d) => (out += d));
  const exit = new Promise<number | null>((res) => tgt.on('exit', (c) => res(c)));
  const stop = async (): Promise<void> => {
    tgt.kill('SIGTERM');
    await exit;
  };
  for (let i = 0; i < 200 && !/storkit tgt: running/.test(out); i++)
    await new Promise((r) => setTimeout(r, 50));
  if (!/storkit tgt: running/.test(out)) {
    await stop();
    throw new Error(`storkit tgt did not start:\n${out}`);
  }
  return { stop };
}

describe('storkit bdevperf', function () {
  this.timeout(60_000);
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-bdevperf-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function config(calls: object[]): string {
    const p = join(dir, `${calls.length}-${Date.now()}.json`);
    writeFileSync(p, JSON.stringify({ subsystems: [{ subsystem: 'bdev', config: calls }] }));
    return p;
  }

  it('rejects bad options with usage (exit 2)', async () => {
    expect((await storkit('bdevperf', '-q', '8')).stderr).to.match(/--json CONFIG is required/);
    const c = config([]);
    const r = await storkit('bdevperf', '--json', c, '-w', 'sideways');
    expect(r.code).to.equal(2);
    expect(r.stderr).to.match(/-w takes randread\|randwrite/);
  });

  it('runs verify on a malloc bdev and prints progress and the SPDK-style table', async () => {
    const c = config([
      { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 8192, block_size: 512 } },
    ]);
    const r = await verify(c, 8, '0x1');
    expect(r.stdout).to.match(/Running I\/O for 2 seconds/);
    expect(r.stdout.match(/ IOPS, /g)).to.have.length(2);
    expect(r.stdout).to.match(/Job: Malloc0 \(Core Mask 0x1\)/);
  });

  it("-l prints the latency percentiles of each job in SPDK bdevperf's format", () => {
    // 98 I/Os of 1 tick and 2 of 1000 (1 MHz): the printed values are bucket upper bounds, 2 µs and ~1 ms
    const h = new Histogram();
    for (let i = 0; i < 98; i++) h.tally(1);
    h.tally(1000);
    h.tally(1000);
    const job = {
      name: 'Malloc0',
      reactor: 0,
      ios: 100,
      bytes: 409600,
      errors: 0,
      miscompares: 0,
      firstMiscompare: -1,
      latTicks: 2098,
      minTicks: 1,
      maxTicks: 1000,
      timeouts: 0,
    };
    const done = { type: 'done' as const, seconds: 1, tickRate: 1e6, heapUsed: [0] };
    const out = formatResults({ ...done, jobs: [{ ...job, hist: Array.from(h.buckets) }] }, '0x2');
    expect(out).to.match(/ Latency summary\n =+\n Job: Malloc0 \(Core Mask 0x2\)\n/);
    const at = (p: string) => Number(new RegExp(`^ *${p}% : +([0-9.]+)us$`, 'm').exec(out)?.[1]);
    expect(at('50\\.00000')).to.equal(2);
    expect(at('98\\.00000')).to.equal(2);
    expect(at('99\\.00000')).to.be.within(1000, 1000 * 1.01);
    // without -l: no summary
    expect(formatResults({ ...done, jobs: [job] }, '0x1')).to.not.match(/Latency summary/);
  });

  it('fails (exit 1) with a clear message for a config method it lacks', async () => {
    const c = config([
      { method: 'bdev_rbd_create', params: { name: 'R', pool_name: 'p', rbd_name: 'r', block_size: 512 } },
    ]);
    const r = await storkit('bdevperf', '--json', c, '-w', 'randread', '-t', '1');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/bdev_rbd_create is not supported/);
    // A method it has, with bad parameters: the error names them.
    const n = await storkit(
      'bdevperf',
      '--json',
      config([{ method: 'bdev_nvme_attach_controller', params: { name: 'N' } }]),
      '-w',
      'randread',
      '-t',
      '1',
    );
    expect(n.code).to.equal(1);
    expect(n.stderr).to.match(/^bdevperf: bdev_nvme_attach_controller/);
  });

  it('drives a virtio-user bdev (bdev_virtio_attach_controller) against storkit tgt vhost-blk on malloc, with verify', async () => {
    const tgtConfig = join(dir, 'tgt.json');
    writeFileSync(
      tgtConfig,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              {
                method: 'bdev_malloc_create',
                params: { name: 'Malloc0', num_blocks: 16384, block_size: 512 },
              },
            ],
          },
          {
            subsystem: 'vhost_blk',
            config: [
              {
                method: 'vhost_create_blk_controller',
                params: { ctrlr: 'vblk.0', dev_name: 'Malloc0', cpumask: '0x1' },
              },
            ],
          },
        ],
      }),
    );
    const tgt = await startTgt(['-r', join(dir, 'rpc.sock'), '--vhost-dir', dir, '--json', tgtConfig]);
    try {
      const c = config([
        {
          method: 'bdev_virtio_attach_controller',
          params: { name: 'VirtioBlk0', trtype: 'user', traddr: join(dir, 'vblk.0'), dev_type: 'blk' },
        },
      ]);
      // Two reactors: the owner's job goes straight to the rings, the other's is forwarded to it.
      const r = await verify(c, 16, '0x3');
      expect(r.stdout.match(/Job: VirtioBlk0 /g)).to.have.length(2);
      expect(r.stdout).to.include('Job: VirtioBlk0 (Core Mask 0x2)');
      // The target counted every request, and still does after the frontend has gone.
      const ctrl = await storkit('rpc', '-s', join(dir, 'rpc.sock'), 'vhost_get_controllers');
      expect(ctrl.code).to.equal(0);
      const c0 = JSON.parse(ctrl.stdout)[0];
      expect(c0).to.include({ ctrlr: 'vblk.0' });
      // bdevperf completed IOPS x 2 s of them; every one was a request here.
      expect(c0.stats.requests).to.be.at.least(Math.floor(r.iops));
      expect(c0.stats.connections).to.equal(1);
    } finally {
      await tgt.stop();
    }
  });

  it('drives an nvme bdev (bdev_nvme_attach_controller, NVMe/TCP) against storkit tgt on malloc, with verify, from two reactors', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const nqn = 'nqn.2016-06.io.storkit:bdevperf';
    const tgtConfig = join(dir, 'tgt-nvmf.json');
    writeFileSync(
      tgtConfig,
      JSON.stringify({
        subsystems: [
          {
            subsystem: 'bdev',
            config: [
              {
                method: 'bdev_malloc_create',
                params: { name: 'PerfM0', num_blocks: 16384, block_size: 512 },
              },
            ],
          },
          {
            subsystem: 'nvmf',
            config: [
              { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
              { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: true } },
              {
                method: 'nvmf_subsystem_add_ns',
                params: { nqn, namespace: { nsid: 1, bdev_name: 'PerfM0' } },
              },
              {
                method: 'nvmf_subsystem_add_listener',
                params: {
                  nqn,
                  listen_address: {
                    trtype: 'TCP',
                    adrfam: 'IPv4',
                    traddr: '127.0.0.1',
                    trsvcid: String(port),
                  },
                },
              },
            ],
          },
        ],
      }),
    );
    const tgt = await startTgt(['-r', join(dir, 'rpc-nvmf.sock'), '--json', tgtConfig]);
    try {
      const c = config([
        {
          method: 'bdev_nvme_attach_controller',
          params: {
            name: 'Nvme0',
            trtype: 'TCP',
            adrfam: 'IPv4',
            traddr: '127.0.0.1',
            trsvcid: String(port),
            subnqn: nqn,
          },
        },
      ]);
      // Two reactors: the first attaches, the other opens qpairs of its own from the replica.
      const r = await verify(c, 16, '0x3');
      expect(r.stdout.match(/Job: Nvme0n1 /g)).to.have.length(2);
      expect(r.stdout).to.include('Job: Nvme0n1 (Core Mask 0x2)');
    } finally {
      await tgt.stop();
    }
  });

  it('fails (exit 1) naming the socket when no vhost-user device listens there', async () => {
    const c = config([
      {
        method: 'bdev_virtio_attach_controller',
        params: { name: 'VirtioBlk0', trtype: 'user', traddr: join(dir, 'nobody.sock'), dev_type: 'blk' },
      },
    ]);
    const r = await storkit('bdevperf', '--json', c, '-w', 'randread', '-t', '1');
    expect(r.code).to.equal(1);
    expect(r.stderr).to.include(join(dir, 'nobody.sock'));
  });
});
