#!/usr/bin/env node
// npm run bench:spdk -- [--rows ID,...] [--pairs N] [--seconds S] [--cores T,C] [--json] [--against DIR]
// storkit side by side with SPDK v24.01 (../shared/peers/spdk), one row per data path: for each row,
// N back-to-back pairs (SPDK first in odd pairs, storkit first in even ones), each pair the same
// JSON config, the same client, the same cores; prints each pair, the median storkit/SPDK ratio and
// the target's CPU-seconds per million I/Os (utime + stime of the target process from /proc/PID/stat
// over the client's timed run; for the bdevperf rows, of bdevperf itself).
// The lvol rows (issue 16): a thick lvol over a malloc bdev under bdevperf; a thin lvol's first
// writes (sequential writes of one 4 KiB cluster each: every I/O allocates; the row fails if the
// volume fills before the run ends, since what follows would be overwrites); and a snapshot of a
// thick lvol taken by JSON-RPC in the middle of an NVMe/TCP randwrite run, whose figure is the
// client's maximum latency (an I/O the snapshot held waited at least as long as the stall).
//   --against DIR       runs the built storkit checkout DIR where SPDK's programs ran (same configs,
//                       clients, cores): before/after pairs of a change; ratios are this tree / DIR's
//   --chart RUN.json    prints the SVG chart of a --json run on stdout (docs/bench/spdk.svg)
//   --markdown RUN.json prints the current-table rows of a --json run (docs/performance.md)
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import {
  coreShare,
  cpuPerMio,
  iscsiPerfIops,
  type Latency,
  latencyOf,
  orderOf,
  type Pair,
  type RowSummary,
  type Side,
  type SideRun,
  STARVED,
  statTicks,
  summarize,
  totalIops,
  totalMaxLatencyUs,
} from './pairs.js';
import { REPO_ROOT } from './run.js';
import { spdkChartSvg, spdkMarkdown } from './spdk-report.js';

export type RowKind = 'bdevperf' | 'nvmf' | 'vhost' | 'iscsi';

export interface Row {
  id: string;
  title: string;
  kind: RowKind;
  /** lvol: a thick lvol over Malloc0; lvol-thin: a thin lvol with 4 KiB clusters over Malloc0. */
  bdev: 'null' | 'malloc' | 'lvol' | 'lvol-thin';
  workload: 'randread' | 'randwrite' | 'write';
  qd: number;
  client: string;
  /** A bdev_lvol_snapshot of the lvol by JSON-RPC halfway through the timed run. */
  snapshot?: boolean;
  /**
   * The latency view: the client prints SPDK's latency summary (bdevperf -l on both sides,
   * spdk_nvme_perf -L), and each side's mean and p99 are read from it.
   */
  latency?: boolean;
}

/** The rows of issue 18's table, in its order. */
export const ROWS: readonly Row[] = [
  r('bdevperf-null-randread', 'bdevperf null randread QD 128', 'bdevperf', 'null', 'randread', 128, '—'),
  r(
    'bdevperf-malloc-randread',
    'bdevperf malloc randread QD 128',
    'bdevperf',
    'malloc',
    'randread',
    128,
    '—',
  ),
  r(
    'bdevperf-malloc-randwrite',
    'bdevperf malloc randwrite QD 128',
    'bdevperf',
    'malloc',
    'randwrite',
    128,
    '—',
  ),
  r('nvmf-randread-32', 'NVMe/TCP randread QD 32', 'nvmf', 'malloc', 'randread', 32, 'spdk_nvme_perf'),
  r('nvmf-randread-128', 'NVMe/TCP randread QD 128', 'nvmf', 'malloc', 'randread', 128, 'spdk_nvme_perf'),
  r('nvmf-randwrite-128', 'NVMe/TCP randwrite QD 128', 'nvmf', 'malloc', 'randwrite', 128, 'spdk_nvme_perf'),
  r(
    'vhost-randread-128',
    'vhost-blk randread QD 128, 2 queues',
    'vhost',
    'malloc',
    'randread',
    128,
    'SPDK bdevperf over virtio-user',
  ),
  r('iscsi-randread-128', 'iSCSI random read QD 128', 'iscsi', 'malloc', 'randread', 128, 'iscsi-perf × K'),
  r('lvol-thick-randread', 'bdevperf thick lvol randread QD 128', 'bdevperf', 'lvol', 'randread', 128, '—'),
  r(
    'lvol-thick-randwrite',
    'bdevperf thick lvol randwrite QD 128',
    'bdevperf',
    'lvol',
    'randwrite',
    128,
    '—',
  ),
  r(
    'lvol-thin-firstwrite',
    'bdevperf thin lvol first writes (4 KiB clusters, sequential write QD 128)',
    'bdevperf',
    'lvol-thin',
    'write',
    128,
    '—',
  ),
  {
    ...r(
      'lvol-snapshot-stall',
      'NVMe/TCP randwrite QD 128 on a thick lvol, snapshot taken mid-run (max latency)',
      'nvmf',
      'lvol',
      'randwrite',
      128,
      'spdk_nvme_perf',
    ),
    snapshot: true,
  },
  // The latency view (issue 18): QD 1, where a polled target's loopback round trip shows.
  {
    ...r(
      'lat-qd1-bdevperf-malloc',
      'bdevperf malloc randread QD 1 (latency)',
      'bdevperf',
      'malloc',
      'randread',
      1,
      '—',
    ),
    latency: true,
  },
  {
    ...r(
      'lat-qd1-nvmf-randread',
      'NVMe/TCP randread QD 1 (latency)',
      'nvmf',
      'malloc',
      'randread',
      1,
      'spdk_nvme_perf',
    ),
    latency: true,
  },
];

function r(
  id: string,
  title: string,
  kind: RowKind,
  bdev: Row['bdev'],
  workload: Row['workload'],
  qd: number,
  client: string,
): Row {
  return { id, title, kind, bdev, workload, qd, client };
}

export interface RowResult extends RowSummary {
  id: string;
  title: string;
  client: string;
  pairs: (Pair & { ratio: number; storkitCpuPerMio: number; spdkCpuPerMio: number })[];
}

export interface SpdkBenchDoc {
  format: 'storkit-bench-spdk/1';
  date: string;
  command: string;
  machine: { cpu: string; cpus: number; node: string };
  /** /proc/loadavg's 1-minute figure before and after the run: above `cpus`, the machine was shared. */
  load: [number, number];
  seconds: number;
  cores: { target: number; client: number };
  iscsiClients: number;
  /** --against: the storkit checkout run in SPDK's column (its figures are that tree's). */
  against?: string;
  rows: RowResult[];
}

// --- peers ---------------------------------------------------------------------------------------

const SPDK_BIN = join(REPO_ROOT, '..', 'shared', 'peers', 'spdk', 'bin');
const CLI = join(REPO_ROOT, 'packages', 'cli', 'dist', 'src', 'main.js');
const BLOCK = 4096;
const BLOCKS = (64 << 20) / BLOCK; // 64 MiB, as in ../shared/notes/anchors.md

/** Every program `rows` need, or an error naming each one missing. */
export function checkPeers(rows: readonly Row[]): void {
  const need = new Set([join(SPDK_BIN, 'rpc.py'), CLI]);
  for (const row of rows) {
    if (row.kind === 'bdevperf' || row.kind === 'vhost') need.add(join(SPDK_BIN, 'bdevperf'));
    if (row.kind !== 'bdevperf') need.add(join(SPDK_BIN, 'spdk_tgt'));
    if (row.kind === 'nvmf') need.add(join(SPDK_BIN, 'spdk_nvme_perf'));
  }
  const missing = [...need].filter((p) => !existsSync(p));
  for (const tool of [
    'taskset',
    'stdbuf',
    'python3',
    ...(rows.some((x) => x.kind === 'iscsi') ? ['iscsi-perf'] : []),
  ])
    if (!onPath(tool)) missing.push(`${tool} (on PATH)`);
  if (!isHugetlbfs('/dev/hugepages')) missing.push('a hugetlbfs mounted at /dev/hugepages (SPDK needs it)');
  if (missing.length > 0)
    throw new Error(
      `bench:spdk: peers missing (see ../shared/peers/spdk/README.md; npm run build for storkit):\n  ${missing.join('\n  ')}`,
    );
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, tool)));
}

function isHugetlbfs(dir: string): boolean {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((l) => {
        const f = l.split(' ');
        return f[1] === dir && f[2] === 'hugetlbfs';
      });
  } catch {
    return false;
  }
}

// --- processes -----------------------------------------------------------------------------------

let hz = 0;

function cpuOf(pid: number): number {
  hz ||= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')) / hz;
}

const mask = (core: number) => `0x${(2 ** core).toString(16)}`;
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number>;
  code: () => number | null;
}

function start(cmd: string, args: string[], onLine?: (line: string) => void): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let pending = '';
  let code: number | null = null;
  const take = (d: Buffer) => {
    const s = d.toString();
    out += s;
    if (onLine === undefined) return;
    pending += s;
    const lines = pending.split(/[\r\n]/);
    pending = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((res) =>
    child.on('exit', (c, sig) => {
      code = c ?? (sig !== null ? 128 : 1);
      res(code);
    }),
  );
  return { child, out: () => out, exited, code: () => code };
}

/** Stop `p` gracefully (SIGINT, as SPDK's apps expect, so DPDK removes its hugepage files). */
async function stop(p: Proc, spdk: boolean): Promise<void> {
  if (p.code() !== null) return;
  const pid = p.child.pid;
  p.child.kill('SIGINT');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.exited;
  clearTimeout(t);
  // a killed DPDK process leaves its hugepages behind: give them back
  if (spdk && pid !== undefined)
    for (const f of readdirSync('/dev/hugepages').filter((n) => n.startsWith(`spdk_pid${pid}`)))
      rmSync(join('/dev/hugepages', f), { force: true });
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/**
 * Run a client, sampling `cpuPid`'s CPU (the client's own when undefined) at the line matching
 * `begin` and at the line matching `end`: the timed run, without start-up and connect.
 */
async function timedClient(
  cmd: string,
  args: string[],
  cpuPid: number | undefined,
  begin: RegExp,
  end: RegExp,
  timeoutMs: number,
  onBegin?: () => void,
): Promise<{ out: string; cpuSeconds: number }> {
  let c0: number | undefined;
  let c1: number | undefined;
  let pid = cpuPid;
  const p = start(cmd, args, (line) => {
    if (pid === undefined) return;
    if (c0 === undefined && begin.test(line)) {
      c0 = cpuOf(pid);
      onBegin?.();
    } else if (c0 !== undefined && c1 === undefined && end.test(line)) c1 = cpuOf(pid);
  });
  pid ??= p.child.pid;
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const code = await p.exited;
  clearTimeout(t);
  const out = p.out();
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-3000)}`);
  if (c0 === undefined || c1 === undefined)
    throw new Error(`${cmd}: no line matching ${begin} then ${end} to time the run by:\n${out.slice(-3000)}`);
  return { out, cpuSeconds: c1 - c0 };
}

/** JSON-RPC `framework_wait_init` through SPDK's rpc.py until it answers (both targets serve it). */
async function waitInit(sock: string, p: Proc, what: string): Promise<void> {
  const until = Date.now() + 180_000;
  for (;;) {
    if (p.code() !== null)
      throw new Error(`${what} exited (${p.code()}) during start-up:\n${p.out().slice(-3000)}`);
    if (existsSync(sock)) {
      const w = start('python3', [join(SPDK_BIN, 'rpc.py'), '-s', sock, '-t', '30', 'framework_wait_init']);
      if ((await w.exited) === 0) return;
    }
    if (Date.now() > until) throw new Error(`${what} did not initialize in 180 s:\n${p.out().slice(-3000)}`);
    await sleep(200);
  }
}

// --- configs (one SPDK JSON config per row, the same for both sides) -----------------------------

/** The lvol rows' volume: `lvs/lvol0`. */
const LVOL = 'lvs/lvol0';
/** The thick lvol (1 MiB clusters): what 64 MiB holds after the lvstore's metadata. */
const THICK_MIB = 56;
/**
 * The snapshot row's thick lvol: after the snapshot each cluster's first write copies it to a new
 * cluster, so the lvstore must hold the volume twice; a 56 MiB one failed those writes with ENOSPC
 * (NVMe Internal Error, sc 6) on SPDK's side and storkit's alike.
 */
const SNAPSHOT_MIB = 24;
/**
 * The thin row's base: a concat of a malloc bdev (the lvstore's super block, masks and metadata
 * pages, all within its 128 MiB) and a 4 GiB null bdev (the data clusters past the malloc: their
 * writes cost nothing), so that a second of first writes (over 100 k allocations a second, 4 KiB
 * each) fits without gigabytes of memory. 4 KiB clusters: every sequential 4 KiB write is a
 * cluster's first write; the volume holds about a million of them.
 */
const THIN_MALLOC_BLOCKS = (128 << 20) / BLOCK;
const THIN_NULL_BLOCKS = (4096 * 2 ** 20) / BLOCK;
const THIN_MIB = 4000;
export const THIN_CLUSTERS = (THIN_MIB * 2 ** 20) / BLOCK;

function bdevConfig(row: Row) {
  if (row.bdev === 'null')
    return {
      subsystem: 'bdev',
      config: [
        { method: 'bdev_null_create', params: { name: 'Null0', num_blocks: BLOCKS, block_size: BLOCK } },
      ],
    };
  const thin = row.bdev === 'lvol-thin';
  const config: object[] = [
    {
      method: 'bdev_malloc_create',
      params: { name: 'Malloc0', num_blocks: thin ? THIN_MALLOC_BLOCKS : BLOCKS, block_size: BLOCK },
    },
  ];
  if (thin)
    config.push(
      {
        method: 'bdev_null_create',
        params: { name: 'Null0', num_blocks: THIN_NULL_BLOCKS, block_size: BLOCK },
      },
      {
        method: 'bdev_raid_create',
        params: {
          name: 'Concat0',
          raid_level: 'concat',
          strip_size_kb: 64,
          base_bdevs: ['Malloc0', 'Null0'],
        },
      },
    );
  if (row.bdev !== 'malloc')
    config.push(
      {
        method: 'bdev_lvol_create_lvstore',
        // 4 KiB clusters need a metadata page per 100 clusters, not SPDK's default one per cluster
        params: thin
          ? { bdev_name: 'Concat0', lvs_name: 'lvs', cluster_sz: BLOCK, num_md_pages_per_cluster_ratio: 1 }
          : { bdev_name: 'Malloc0', lvs_name: 'lvs', cluster_sz: 1 << 20 },
      },
      {
        method: 'bdev_lvol_create',
        params: {
          lvs_name: 'lvs',
          lvol_name: 'lvol0',
          size_in_mib: thin ? THIN_MIB : row.snapshot === true ? SNAPSHOT_MIB : THICK_MIB,
          thin_provision: thin,
        },
      },
    );
  return { subsystem: 'bdev', config };
}

/** The bdev a row's target exports. */
const exported = (row: Row) => (row.bdev === 'lvol' || row.bdev === 'lvol-thin' ? LVOL : 'Malloc0');

const NQN = 'nqn.2016-06.io.spdk:cnode1';
const NODE_BASE = 'iqn.2016-06.io.spdk';

function targetConfig(row: Row, port: number, core: number): object {
  const subsystems: object[] = [bdevConfig(row)];
  if (row.kind === 'nvmf')
    subsystems.push({
      subsystem: 'nvmf',
      config: [
        { method: 'nvmf_create_transport', params: { trtype: 'TCP', max_queue_depth: 128 } },
        {
          method: 'nvmf_create_subsystem',
          params: { nqn: NQN, allow_any_host: true, serial_number: 'SPDK00000000000001' },
        },
        {
          method: 'nvmf_subsystem_add_ns',
          params: { nqn: NQN, namespace: { nsid: 1, bdev_name: exported(row) } },
        },
        {
          method: 'nvmf_subsystem_add_listener',
          params: {
            nqn: NQN,
            listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) },
          },
        },
      ],
    });
  else if (row.kind === 'vhost')
    subsystems.push({
      subsystem: 'vhost_blk',
      config: [
        {
          method: 'vhost_create_blk_controller',
          params: { ctrlr: 'vhost.0', dev_name: 'Malloc0', cpumask: mask(core) },
        },
      ],
    });
  else if (row.kind === 'iscsi')
    subsystems.push({
      subsystem: 'iscsi',
      config: [
        { method: 'iscsi_set_options', params: { node_base: NODE_BASE, max_queue_depth: 128 } },
        {
          method: 'iscsi_create_portal_group',
          params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(port) }] },
        },
        {
          method: 'iscsi_create_initiator_group',
          params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/32'] },
        },
        {
          method: 'iscsi_create_target_node',
          params: {
            name: 'disk1',
            alias_name: 'disk1_alias',
            pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
            luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
            queue_depth: 128,
            disable_chap: true,
          },
        },
      ],
    });
  return { subsystems };
}

// --- one side of a pair --------------------------------------------------------------------------

export interface RunOptions {
  /**
   * --against: the CLI (packages/cli/dist/src/main.js) of another storkit checkout, run in SPDK's
   * place (same configs, clients and cores): before/after pairs of a change, storkit against itself.
   */
  against?: string;
  seconds: number;
  target: number;
  client: number;
  iscsiClients: number;
  log: (s: string) => void;
}

const BDEVPERF_BEGIN = /Running I\/O for/;
const BDEVPERF_END = /Latency\(us\)/;

/**
 * One timed client run pinned to `core` (under `stdbuf -oL`: SPDK's stdout is a pipe here, fully
 * buffered otherwise, and its lines time the run), read by its `Total` line; `cpuPid`'s CPU, or
 * the client's own when undefined, over the run.
 */
async function perfRun(
  o: RunOptions,
  core: number,
  argv: string[],
  cpuPid: number | undefined,
  begin: RegExp,
  end: RegExp,
  onBegin?: () => void,
  latency = false,
): Promise<SideRun> {
  const { out, cpuSeconds } = await timedClient(
    'stdbuf',
    ['-oL', 'taskset', '-c', String(core), ...argv],
    cpuPid,
    begin,
    end,
    (o.seconds + 120) * 1000,
    onBegin,
  );
  const run: SideRun = {
    iops: totalIops(out),
    seconds: o.seconds,
    cpuSeconds,
    maxLatencyUs: totalMaxLatencyUs(out),
  };
  if (latency) run.latency = latencyOf(out);
  return run;
}

/**
 * A snapshot of the lvol through the target's JSON-RPC socket (SPDK's rpc.py), `delayMs` after the
 * timed run began; resolves once it answered, rejects if it failed.
 */
function snapshotLater(sock: string, delayMs: number): { arm: () => void; done: () => Promise<void> } {
  let settled: Promise<void> = Promise.reject(new Error('the run never began: no snapshot was taken'));
  settled.catch(() => {});
  return {
    arm: () => {
      settled = sleep(delayMs).then(async () => {
        const p = start('python3', [
          join(SPDK_BIN, 'rpc.py'),
          '-s',
          sock,
          '-t',
          '60',
          'bdev_lvol_snapshot',
          LVOL,
          'snap0',
        ]);
        if ((await p.exited) !== 0) throw new Error(`bdev_lvol_snapshot failed:\n${p.out().slice(-2000)}`);
      });
      settled.catch(() => {});
    },
    done: () => settled,
  };
}

/** Queue depth, I/O size, workload and run time: the same for every client of every row. */
function ioArgs(row: Row, o: RunOptions): string[] {
  return ['-q', String(row.qd), '-o', String(BLOCK), '-w', row.workload, '-t', String(o.seconds)];
}

/** The latency summary switch of the row's client, where the row is a latency row. */
function latencyArgs(row: Row, client: 'bdevperf' | 'spdk_nvme_perf'): string[] {
  if (row.latency !== true) return [];
  return client === 'bdevperf' ? ['-l'] : ['-L'];
}

// `return await` below: each runs inside a try whose finally stops the target and removes the dir
/** The storkit CLI serving `side`, or null where SPDK's own program serves it. */
function cliOf(side: Side, o: RunOptions): string | null {
  return side === 'storkit' ? CLI : (o.against ?? null);
}

async function runSide(row: Row, side: Side, o: RunOptions): Promise<SideRun> {
  const cli = cliOf(side, o);
  const dir = mkdtempSync(join(os.tmpdir(), `storkit-bench-spdk-${side}-`));
  try {
    if (row.kind === 'bdevperf') {
      const cfg = join(dir, 'bdev.json');
      writeFileSync(cfg, JSON.stringify({ subsystems: [bdevConfig(row)] }));
      const perfArgs = [
        '--json',
        cfg,
        ...ioArgs(row, o),
        ...latencyArgs(row, 'bdevperf'),
        '-m',
        mask(o.target),
      ];
      const argv =
        cli === null
          ? [join(SPDK_BIN, 'bdevperf'), ...perfArgs, '-r', join(dir, 'bdevperf.sock')]
          : [process.execPath, cli, 'bdevperf', ...perfArgs];
      const run = await perfRun(
        o,
        o.target,
        argv,
        undefined,
        BDEVPERF_BEGIN,
        BDEVPERF_END,
        undefined,
        row.latency === true,
      );
      // Past the last cluster the writes are overwrites: not first writes any more.
      if (row.bdev === 'lvol-thin' && run.iops * run.seconds > THIN_CLUSTERS)
        throw new Error(
          `${row.id}: ${side} wrote ${Math.round(run.iops * run.seconds)} blocks in ${run.seconds} s, more than the thin lvol's ${THIN_CLUSTERS} clusters: run with --seconds 1`,
        );
      return run;
    }

    const port = await freePort();
    const cfg = join(dir, 'target.json');
    writeFileSync(cfg, JSON.stringify(targetConfig(row, port, o.target)));
    const sock = join(dir, 'rpc.sock');
    const vhostDir = join(dir, 'vhost');
    if (row.kind === 'vhost') execFileSync('mkdir', ['-p', vhostDir]);
    const common = ['-m', mask(o.target), '-r', sock, '--json', cfg];
    const targv =
      cli === null
        ? [join(SPDK_BIN, 'spdk_tgt'), ...common, ...(row.kind === 'vhost' ? ['-S', vhostDir] : [])]
        : [
            process.execPath,
            cli,
            'tgt',
            '--no-stats',
            ...common,
            ...(row.kind === 'vhost' ? ['--vhost-dir', vhostDir] : []),
          ];
    const tgt = start('taskset', ['-c', String(o.target), ...targv]);
    try {
      await waitInit(sock, tgt, cli === null ? 'spdk_tgt' : 'storkit tgt');
      const tpid = tgt.child.pid!;
      if (row.kind === 'nvmf') {
        const trid = `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${NQN}`;
        const argv = [
          join(SPDK_BIN, 'spdk_nvme_perf'),
          '-r',
          trid,
          ...ioArgs(row, o),
          ...latencyArgs(row, 'spdk_nvme_perf'),
          '-c',
          mask(o.client),
        ];
        const snap = row.snapshot === true ? snapshotLater(sock, (o.seconds * 1000) / 2) : undefined;
        const run = await perfRun(
          o,
          o.client,
          argv,
          tpid,
          /Initialization complete/,
          /Latency\(us\)|Device Information/,
          snap?.arm,
          row.latency === true,
        );
        await snap?.done();
        return run;
      }
      if (row.kind === 'vhost') {
        const vcfg = join(dir, 'virtio.json');
        writeFileSync(
          vcfg,
          JSON.stringify({
            subsystems: [
              {
                subsystem: 'bdev',
                config: [
                  {
                    method: 'bdev_virtio_attach_controller',
                    params: {
                      name: 'VirtioBlk0',
                      trtype: 'user',
                      traddr: join(vhostDir, 'vhost.0'),
                      dev_type: 'blk',
                      vq_count: 2,
                      vq_size: 512,
                    },
                  },
                ],
              },
            ],
          }),
        );
        const bdevperf = join(SPDK_BIN, 'bdevperf');
        const sock = join(dir, 'bdevperf.sock');
        const argv = [
          bdevperf,
          '-g',
          '-s',
          '512',
          '-r',
          sock,
          '--json',
          vcfg,
          ...ioArgs(row, o),
          '-m',
          mask(o.client),
        ];
        return await perfRun(o, o.client, argv, tpid, BDEVPERF_BEGIN, BDEVPERF_END);
      }
      // iSCSI: K iscsi-perf processes on the client core share the queue depth, so one
      // single-threaded client is not what bounds both targets. The window is the clients' lifetime
      // (iscsi-perf prints nothing to time by before its first second), logins included.
      const url = `iscsi://127.0.0.1:${port}/${NODE_BASE}:disk1/0`;
      const each = Math.max(1, Math.round(row.qd / o.iscsiClients));
      const c0 = cpuOf(tpid);
      const clients = Array.from({ length: o.iscsiClients }, (_, i) =>
        start('timeout', [
          String(o.seconds + 60),
          'taskset',
          '-c',
          String(o.client),
          'iscsi-perf',
          '-i',
          `iqn.2016-06.io.storkit:bench-${i}`,
          '-t',
          String(o.seconds),
          '-m',
          String(each),
          '-b',
          '1',
          '-r',
          url,
        ]),
      );
      const codes = await Promise.all(clients.map((c) => c.exited));
      const cpuSeconds = cpuOf(tpid) - c0;
      let iops = 0;
      for (const [i, c] of clients.entries()) {
        if (codes[i] !== 0) throw new Error(`iscsi-perf ${i} exited ${codes[i]}:\n${c.out().slice(-2000)}`);
        iops += iscsiPerfIops(c.out());
      }
      return { iops, seconds: o.seconds, cpuSeconds };
    } finally {
      await stop(tgt, cli === null);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// --- the run -------------------------------------------------------------------------------------

const fmtLat = (k: Latency, s: Latency) =>
  `storkit ${k.meanUs.toFixed(2)}/${k.p99Us.toFixed(2)}, SPDK ${s.meanUs.toFixed(2)}/${s.p99Us.toFixed(2)}`;
const fmtIops = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)} M` : `${(v / 1e3).toFixed(0)} k`);
const load1 = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

export async function runRow(row: Row, pairs: number, o: RunOptions): Promise<RowResult> {
  const done: RowResult['pairs'] = [];
  for (let i = 1; i <= pairs; i++) {
    const got: Partial<Record<Side, SideRun>> = {};
    const order = orderOf(i);
    for (const side of order) got[side] = await runSide(row, side, o);
    const p: Pair = { index: i, first: order[0], storkit: got.storkit!, spdk: got.spdk! };
    const s = summarize([p]);
    const full = {
      ...p,
      ratio: s.medianRatio,
      storkitCpuPerMio: s.storkitCpuPerMio,
      spdkCpuPerMio: s.spdkCpuPerMio,
    };
    done.push(full);
    const share = (r: SideRun) => `${Math.round(100 * coreShare(r))}%`;
    o.log(
      `  pair ${i} (${order[0]} first): storkit ${fmtIops(p.storkit.iops)} IOPS, ${cpuPerMio(p.storkit).toFixed(2)} CPU-s/M I/Os` +
        ` | SPDK ${fmtIops(p.spdk.iops)}, ${cpuPerMio(p.spdk).toFixed(2)} CPU-s/M | storkit/SPDK ${full.ratio.toFixed(3)}` +
        ` | target core share storkit ${share(p.storkit)}, SPDK ${share(p.spdk)} | load ${load1()}`,
    );
    if (row.snapshot === true)
      o.log(
        `  pair ${i}: max latency with the snapshot: storkit ${((p.storkit.maxLatencyUs ?? 0) / 1000).toFixed(2)} ms, SPDK ${((p.spdk.maxLatencyUs ?? 0) / 1000).toFixed(2)} ms`,
      );
    if (p.storkit.latency !== undefined && p.spdk.latency !== undefined)
      o.log(`  pair ${i}: latency mean/p99 µs: ${fmtLat(p.storkit.latency, p.spdk.latency)}`);
    if (coreShare(p.spdk) < STARVED)
      o.log(
        `  pair ${i}: SPDK's polling target got ${share(p.spdk)} of its core: other processes had it, this pair measured the machine`,
      );
  }
  const s = summarize(done);
  o.log(
    `  ${row.id}: median storkit/SPDK ${s.medianRatio.toFixed(3)} (${s.minRatio.toFixed(3)}-${s.maxRatio.toFixed(3)}, ${pairs} pairs);` +
      ` target CPU-s per million I/Os: storkit ${s.storkitCpuPerMio.toFixed(2)}, SPDK ${s.spdkCpuPerMio.toFixed(2)}`,
  );
  if (s.latency !== undefined)
    o.log(`  ${row.id}: median latency mean/p99 µs: ${fmtLat(s.latency.storkit, s.latency.spdk)}`);
  return { id: row.id, title: row.title, client: row.client, ...s, pairs: done };
}

/** `--rows` words: a row is picked if its id contains one of them. */
export function pickRows(words: readonly string[]): Row[] {
  if (words.length === 0) return [...ROWS];
  const rows = ROWS.filter((row) => words.some((w) => row.id.includes(w)));
  const unknown = words.filter((w) => !ROWS.some((row) => row.id.includes(w)));
  if (unknown.length > 0)
    throw new Error(
      `--rows: no row matches ${unknown.join(', ')} (rows: ${ROWS.map((x) => x.id).join(', ')})`,
    );
  return rows;
}

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} takes an integer >= 1, not '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '' },
      pairs: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '3' },
      cores: { type: 'string', default: '0,1' },
      'iscsi-clients': { type: 'string', default: '4' },
      json: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      chart: { type: 'string' },
      markdown: { type: 'string' },
      against: { type: 'string' },
    },
  });
  if (values.chart !== undefined || values.markdown !== undefined) {
    const file = (values.chart ?? values.markdown)!;
    const doc = JSON.parse(readFileSync(file, 'utf8')) as SpdkBenchDoc;
    if (doc.format !== 'storkit-bench-spdk/1') throw new Error(`${file} is not a bench:spdk --json run`);
    process.stdout.write(values.chart !== undefined ? spdkChartSvg(doc) : spdkMarkdown(doc));
    return 0;
  }
  const rows = pickRows(values.rows.split(',').filter((w) => w !== ''));
  if (values.list) {
    for (const row of rows) console.log(`${row.id.padEnd(28)} ${row.title} (client: ${row.client})`);
    return 0;
  }
  const pairs = positiveInt(values.pairs, '--pairs');
  const seconds = positiveInt(values.seconds, '--seconds');
  const iscsiClients = positiveInt(values['iscsi-clients'], '--iscsi-clients');
  const cores = values.cores.split(',').map((c) => Number(c));
  if (cores.length !== 2 || cores.some((c) => !Number.isInteger(c) || c < 0 || c >= os.cpus().length))
    throw new Error(`--cores takes TARGET,CLIENT (cores 0..${os.cpus().length - 1}), not '${values.cores}'`);
  checkPeers(rows);
  // with --json the document alone goes to stdout
  const log = (s: string) => (values.json ? process.stderr : process.stdout).write(`${s}\n`);
  const l0 = load1();
  const started = new Date().toISOString();
  let against: string | undefined;
  if (values.against !== undefined) {
    against = join(values.against, 'packages', 'cli', 'dist', 'src', 'main.js');
    if (!existsSync(against))
      throw new Error(`--against ${values.against}: no built storkit CLI at ${against}`);
  }
  const o: RunOptions = { seconds, target: cores[0], client: cores[1], iscsiClients, log, against };
  log(
    `bench:spdk ${started}, load ${l0} on ${os.cpus().length} CPUs, ${pairs} pairs × ${seconds} s,` +
      ` target core ${cores[0]}, client core ${cores[1]}`,
  );
  if (against !== undefined)
    log(`--against: the SPDK column is storkit at ${values.against} (this tree / that tree)`);
  const results: RowResult[] = [];
  for (const row of rows) {
    log(
      `${row.title} (client: ${row.client === 'iscsi-perf × K' ? `iscsi-perf × ${iscsiClients}` : row.client})`,
    );
    results.push(await runRow(row, pairs, o));
  }
  const doc: SpdkBenchDoc = {
    format: 'storkit-bench-spdk/1',
    date: started,
    command: `npm run bench:spdk -- ${argv.join(' ')}`.trim(),
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cpus: os.cpus().length, node: process.version },
    load: [l0, load1()],
    seconds,
    cores: { target: cores[0], client: cores[1] },
    iscsiClients,
    ...(values.against !== undefined ? { against: values.against } : {}),
    rows: results,
  };
  log('\nrow                          median  range          CPU-s/M I/Os storkit  SPDK');
  for (const x of results)
    log(
      `${x.id.padEnd(28)} ${x.medianRatio.toFixed(3).padStart(6)}  ${x.minRatio.toFixed(3)}-${x.maxRatio.toFixed(3)}  ${x.storkitCpuPerMio.toFixed(2).padStart(20)}  ${x.spdkCpuPerMio.toFixed(2).padStart(5)}`,
    );
  if (values.json) process.stdout.write(`${JSON.stringify(doc, null, 1)}\n`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`)
  main(process.argv.slice(2)).then(
    (c) => (process.exitCode = c),
    (e: Error) => {
      console.error(e.message);
      process.exitCode = 2;
    },
  );
