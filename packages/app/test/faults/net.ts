// Fault campaign, part two: connections that break mid-transfer, hosts that vanish, and bdevs that
// fail or stall, against one `storkit tgt` process while a steady connection keeps working.
//
// Every round injects one fault. A steady NVMe/TCP connection, straight to the target, writes and
// reads back (and compares) all the time; during each fault its progress is measured against the
// second before. The affected traffic must end cleanly: I/O that succeeded returned the right
// data, the rest failed or timed out with a status, and no host hangs. After each round the
// target must be back where it was: the same open fds, no connection or qpair left over, the same
// io_channel references, and a heap that does not keep growing (storkit_get_memory).
import { execFile } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { type HostQpair, NvmeController } from '@storkit/nvme';

import type { SpdkConfig } from '../../src/index.js';
import { freePort } from '../nvmf-helpers.js';
import { type Fault, FaultProxy } from './proxy.js';
import { TgtProcess } from './tgt.js';

const run = promisify(execFile);

const NET = 'nqn.2016-06.io.storkit:net';
const ERR = 'nqn.2016-06.io.storkit:err';
const STALL = 'nqn.2016-06.io.storkit:stall';
const IQN = 'iqn.2016-06.io.storkit:net';
const BS = 4096;

function config(dir: string, nvmePort: number, iscsiPort: number): SpdkConfig {
  const la = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(nvmePort) };
  const sub = (nqn: string, bdev: string) => [
    { method: 'nvmf_create_subsystem', params: { nqn, allow_any_host: true } },
    { method: 'nvmf_subsystem_add_ns', params: { nqn, namespace: { nsid: 1, bdev_name: bdev } } },
    { method: 'nvmf_subsystem_add_listener', params: { nqn, listen_address: la } },
  ];
  const malloc = (name: string) => ({
    method: 'bdev_malloc_create',
    params: { name, num_blocks: (32 << 20) / BS, block_size: BS },
  });
  return {
    subsystems: [
      {
        subsystem: 'bdev',
        config: [
          malloc('M0'),
          malloc('M1'),
          malloc('M2'),
          {
            method: 'bdev_uring_create',
            params: { name: 'F3', filename: join(dir, 'iscsi.img'), block_size: 512 },
          },
          { method: 'bdev_error_create', params: { base_name: 'M1' } },
          {
            method: 'bdev_delay_create',
            params: {
              base_bdev_name: 'M2',
              name: 'D2',
              avg_read_latency: 0,
              p99_read_latency: 0,
              avg_write_latency: 0,
              p99_write_latency: 0,
            },
          },
        ],
      },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          ...sub(NET, 'M0'),
          ...sub(ERR, 'EE_M1'),
          ...sub(STALL, 'D2'),
        ],
      },
      {
        subsystem: 'iscsi',
        config: [
          // A vanished initiator is found by NOP-In pings: every second, given up after 2 s.
          {
            method: 'iscsi_set_options',
            params: { node_base: 'iqn.2016-06.io.storkit', nop_in_interval: 1, nop_timeout: 2 },
          },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: String(iscsiPort) }] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/32'] },
          },
          {
            method: 'iscsi_create_target_node',
            params: {
              name: 'net',
              pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
              luns: [{ bdev_name: 'F3', lun_id: 0 }],
              queue_depth: 64,
              disable_chap: true,
            },
          },
        ],
      },
    ],
  };
}

/** Verified I/O on one qpair: each worker writes fresh data to its own blocks and reads it back. */
class Traffic {
  ok = 0;
  failed = 0;
  corrupt = 0;
  #stop = false;
  readonly #workers: Promise<void>[];
  readonly #poll: NodeJS.Timeout;

  constructor(qp: HostQpair, first: number, depth: number, span: number) {
    this.#poll = setInterval(() => qp.processCompletions(), 1);
    const io = (submit: (cb: (x: null, st: number) => void) => boolean) =>
      new Promise<boolean>((res) => {
        if (
          !submit((_x, st) => {
            if (st !== 0 && process.env.FAULTS_DEBUG)
              console.error(
                `${new Date().toISOString()} traffic@${first}: status 0x${st.toString(16)} failed=${qp.failed?.message}`,
              );
            res(st === 0);
          })
        ) {
          if (process.env.FAULTS_DEBUG)
            console.error(
              `${new Date().toISOString()} traffic@${first}: submit refused, failed=${qp.failed?.message} outstanding ${qp.outstanding}`,
            );
          res(false);
        }
      });
    this.#workers = Array.from({ length: depth }, async (_, w) => {
      const data = new Uint8Array(BS);
      const back = new Uint8Array(BS);
      // The previous pair's data: a read "completed" without its data leaves it in `back`.
      const prev = new Uint8Array(BS);
      for (let i = 0; !this.#stop && !qp.failed; i++) {
        if (process.env.FAULTS_DEBUG && first === 0 && i % 2000 === 1999)
          console.error(`${new Date().toISOString()} steady w${w} i${i} outstanding ${qp.outstanding}`);
        const lba = first + w + depth * (i % span);
        crypto.getRandomValues(data);
        if (!(await io((cb) => qp.write(1, lba, 1, data, cb, null)))) {
          this.failed++;
          continue;
        }
        if (!(await io((cb) => qp.read(1, lba, 1, back, cb, null)))) {
          this.failed++;
          continue;
        }
        const stale = Buffer.compare(prev, back) === 0;
        prev.set(data);
        if (Buffer.compare(data, back) !== 0) {
          this.corrupt++;
          if (process.env.FAULTS_DEBUG)
            console.error(
              `corrupt lba ${lba} w ${w} i ${i}: want ${Buffer.from(data.subarray(0, 8)).toString('hex')} got ${Buffer.from(back.subarray(0, 8)).toString('hex')} zero=${back.every((b) => b === 0)} untouched-since-last-read=${stale}`,
            );
        } else this.ok++;
      }
    });
  }

  async stop(): Promise<void> {
    this.#stop = true;
    if (process.env.FAULTS_DEBUG)
      console.error(`${new Date().toISOString()} traffic stop: ok ${this.ok} failed ${this.failed}`);
    await Promise.all(this.#workers);
    clearInterval(this.#poll);
  }
}

async function host(port: number, nqn: string, o: { timeoutMs: number; kato: number; digests?: boolean }) {
  const c = await NvmeController.connect(
    `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:${nqn}`,
    {
      timeoutMs: o.timeoutMs,
      kato: o.kato,
      hdgst: o.digests,
      ddgst: o.digests,
    },
  );
  const qp = await c.allocIoQpair({ depth: 32 });
  return { c, qp };
}

export type FaultKind =
  | 'cut'
  | 'reset'
  | 'blackhole'
  | 'delay'
  | 'rechunk'
  | 'reorder'
  | 'duplicate'
  | 'bdev-error'
  | 'bdev-stall'
  | 'iscsi-cut'
  | 'iscsi-vanish';
export const FAULTS: FaultKind[] = [
  'cut',
  'reset',
  'blackhole',
  'delay',
  'rechunk',
  'reorder',
  'duplicate',
  'bdev-error',
  'bdev-stall',
  'iscsi-cut',
  'iscsi-vanish',
];

export interface Sample {
  open_fds: number;
  rss: number;
  heap: number;
  channels: number;
}

export interface NetFigures {
  rounds: number;
  faults: Record<string, number>;
  /** Affected I/O: succeeded (right data), failed or timed out with a status. */
  affectedOk: number;
  /** The same, by fault kind (all rounds of that kind). */
  byKind: Record<string, { ok: number; failed: number }>;
  affectedFailed: number;
  /** Acknowledged reads that returned the wrong data: must be 0. */
  corrupt: number;
  /** Proxy faults that actually fired (a cut at a byte count the transfer never reached did not). */
  fired: number;
  /** Stream corruptions (reorder, duplicate) that fired, and those after which the connection failed. */
  corruptions: number;
  detected: number;
  /** Steady connection I/O pairs during faults, and its worst rate during a fault vs the second before. */
  steadyOk: number;
  steadyFailed: number;
  worstSteadyRatio: number;
  /** Leaks found after a round (an fd, a qpair, a connection, a channel reference): must be empty. */
  leaks: string[];
  samples: Sample[];
}

interface Env {
  tgt: TgtProcess;
  nvmePort: number;
  iscsiPort: number;
}

async function sample(tgt: TgtProcess): Promise<Sample> {
  const m = await tgt.rpc<{ open_fds: number; rss: number; reactors: { heap_used: number }[] }>(
    'storkit_get_memory',
  );
  const ch = await tgt.rpc<{ threads: { io_channels: { ref: number }[] }[] }>('thread_get_io_channels');
  return {
    open_fds: m.open_fds,
    rss: m.rss,
    heap: m.reactors.reduce((a, r) => a + r.heap_used, 0),
    channels: ch.threads.reduce((a, t) => a + t.io_channels.reduce((b, c) => b + c.ref, 0), 0),
  };
}

/** Connections and qpairs besides the steady connection's: wait for them to be gone. */
async function settled(e: Env, base: Sample, ms: number): Promise<string[]> {
  const until = Date.now() + ms;
  let why: string[] = [];
  while (Date.now() < until) {
    why = [];
    for (const nqn of [NET, ERR, STALL]) {
      const q = await e.tgt.rpc<unknown[]>('nvmf_subsystem_get_qpairs', { nqn });
      const want = nqn === NET ? 2 : 0; // the steady connection: admin + one I/O queue
      if (q.length !== want) why.push(`${nqn}: ${q.length} qpairs, ${want} expected`);
    }
    const ic = await e.tgt.rpc<unknown[]>('iscsi_get_connections');
    if (ic.length) why.push(`iscsi: ${ic.length} connections`);
    const s = await sample(e.tgt);
    if (s.open_fds !== base.open_fds) why.push(`open fds ${s.open_fds}, ${base.open_fds} before`);
    if (s.channels !== base.channels) why.push(`io_channel refs ${s.channels}, ${base.channels} before`);
    if (why.length === 0) return [];
    await new Promise((r) => setTimeout(r, 200));
  }
  return why;
}

async function nvmeFault(e: Env, f: Fault, digests: boolean, fig: NetFigures): Promise<void> {
  const proxy = await FaultProxy.start({ host: '127.0.0.1', port: e.nvmePort });
  proxy.next = { kind: 'pass' };
  // The admin queue passes untouched; the I/O queue (the next connection) gets the fault.
  const c = await NvmeController.connect(
    `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${proxy.port} subnqn:${NET}`,
    { timeoutMs: 2000, kato: 2000, hdgst: digests, ddgst: digests },
  ).catch(() => null);
  if (c === null) {
    fig.affectedFailed++;
    await proxy.close();
    return;
  }
  proxy.next = f;
  const qp = await c.allocIoQpair({ depth: 32 }).catch(() => null);
  if (qp) {
    const t = new Traffic(qp, 4096, 8, 32);
    // A stream corruption runs until the connection fails (bounded: a loaded machine is slow to
    // get there, and one that never fails is reported, not waited for).
    const corrupting = f.kind === 'reorder' || f.kind === 'duplicate';
    const until = Date.now() + (corrupting ? 15_000 : 1500);
    while (Date.now() < until && !qp.failed) await new Promise((r) => setTimeout(r, 20));
    await t.stop();
    fig.affectedOk += t.ok;
    fig.affectedFailed += t.failed;
    fig.corrupt += t.corrupt;
    if (process.env.FAULTS_DEBUG && t.corrupt)
      console.error(`nvme fault ${JSON.stringify(f)} digests ${digests}: ${t.corrupt} corrupt`);
    // A corrupted stream with digests on must end the connection (a bad digest or a malformed
    // header is fatal): that it failed is the detection.
    if (corrupting && proxy.stats.fired) {
      fig.corruptions++;
      if (qp.failed) fig.detected++;
      if (process.env.FAULTS_DEBUG)
        console.error(`${f.kind}: connection ${qp.failed ? `failed: ${qp.failed.message}` : 'still up'}`);
    }
  } else fig.affectedFailed++;
  // A vanished host never says goodbye: leave its connections to the target's keep-alive timer.
  if (f.kind === 'blackhole') {
    await c.close().catch(() => {});
    await new Promise((r) => setTimeout(r, 100));
  } else await c.close().catch(() => {});
  fig.fired += proxy.stats.fired;
  await proxy.close();
}

async function bdevFault(e: Env, kind: 'bdev-error' | 'bdev-stall', fig: NetFigures): Promise<void> {
  const { c, qp } = await host(e.nvmePort, kind === 'bdev-error' ? ERR : STALL, {
    timeoutMs: 1000,
    kato: 10_000,
  });
  if (kind === 'bdev-error') {
    await e.tgt.rpc('bdev_error_inject_error', {
      name: 'EE_M1',
      io_type: 'write',
      error_type: 'failure',
      num: 20,
    });
    await e.tgt.rpc('bdev_error_inject_error', {
      name: 'EE_M1',
      io_type: 'read',
      error_type: 'failure',
      num: 20,
    });
  } else {
    // p99 first: it may never be below the average.
    for (const t of ['p99_read', 'avg_read', 'p99_write', 'avg_write'])
      await e.tgt.rpc('bdev_delay_update_latency', {
        delay_bdev_name: 'D2',
        latency_type: t,
        latency_us: 4_000_000,
      });
  }
  const t = new Traffic(qp, 0, 8, 32);
  const until = Date.now() + 2500;
  while (Date.now() < until && !qp.failed) await new Promise((r) => setTimeout(r, 20));
  await t.stop();
  fig.affectedOk += t.ok;
  fig.affectedFailed += t.failed;
  fig.corrupt += t.corrupt;
  if (process.env.FAULTS_DEBUG && t.corrupt) console.error(`${kind}: ${t.corrupt} corrupt`);
  if (kind === 'bdev-stall')
    for (const l of ['avg_read', 'p99_read', 'avg_write', 'p99_write'])
      await e.tgt.rpc('bdev_delay_update_latency', { delay_bdev_name: 'D2', latency_type: l, latency_us: 0 });
  else await e.tgt.rpc('bdev_error_inject_error', { name: 'EE_M1', io_type: 'clear', error_type: 'failure' });
  await c.close().catch(() => {});
}

async function iscsiFault(e: Env, kind: 'iscsi-cut' | 'iscsi-vanish', fig: NetFigures): Promise<void> {
  const proxy = await FaultProxy.start({ host: '127.0.0.1', port: e.iscsiPort });
  // iscsi-perf only reads: host-to-target is 48-byte command PDUs after a login of about 1 KiB,
  // so a fault a few KiB in lands after some dozens of commands, within the first second.
  const afterBytes = 2048 + Math.floor(Math.random() * 6144);
  proxy.next =
    kind === 'iscsi-cut'
      ? { kind: 'cut', afterBytes, reset: Math.random() < 0.5 }
      : { kind: 'blackhole', afterBytes };
  // libiscsi reconnects after a broken connection: its next connection gets through.
  proxy.once = true;
  const url = `iscsi://127.0.0.1:${proxy.port}/${IQN}/0`;
  // libiscsi's load tool reads through the proxy until the fault ends its connection. A vanished
  // host's connection is the target's to find (NOP-In unanswered for nop_timeout) and drop.
  let said = '';
  const r = await run('iscsi-perf', ['-t', '3', '-m', '16', '-b', '8', url], { timeout: 20_000 }).then(
    (x) => {
      said = x.stdout + x.stderr;
      return 0;
    },
    (x: { code?: number; stdout?: string; stderr?: string }) => {
      said = `${x.stdout}${x.stderr}`;
      return x.code ?? 1;
    },
  );
  if (process.env.FAULTS_DEBUG) console.error(said.slice(-600));
  if (r === 0) fig.affectedOk++;
  else fig.affectedFailed++;
  fig.fired += proxy.stats.fired;
  if (process.env.FAULTS_DEBUG)
    console.error(
      `${new Date().toISOString()} ${kind} after ${afterBytes} B: iscsi-perf exit ${r} via proxy port ${proxy.port}, fired ${proxy.stats.fired}, ${proxy.stats.bytesUp} B up, accepted ${proxy.stats.accepted}, open ${proxy.open}, target connections ${(await e.tgt.rpc<unknown[]>('iscsi_get_connections')).length}`,
    );
  // The target's side of a vanished connection stays open until its NOP timer fires: closing the
  // proxy would close it first and prove nothing.
  if (kind === 'iscsi-vanish') await iscsiGone(e, 20_000);
  await proxy.close();
}

/** Wait until the target has no iSCSI connection left. */
async function iscsiGone(e: Env, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await e.tgt.rpc<unknown[]>('iscsi_get_connections')).length === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Run `rounds` fault rounds (kinds in order, cycling) against a fresh storkit tgt in `dir`. */
export async function netRounds(
  dir: string,
  rounds: number,
  log = (_: string) => {},
  kinds: FaultKind[] = FAULTS,
): Promise<NetFigures> {
  writeFileSync(join(dir, 'iscsi.img'), '');
  truncateSync(join(dir, 'iscsi.img'), 32 << 20);
  const nvmePort = await freePort();
  const iscsiPort = await freePort();
  const tgt = await TgtProcess.start(config(dir, nvmePort, iscsiPort), dir);
  const e: Env = { tgt, nvmePort, iscsiPort };
  const fig: NetFigures = {
    rounds: 0,
    faults: {},
    affectedOk: 0,
    byKind: {},
    affectedFailed: 0,
    corrupt: 0,
    fired: 0,
    corruptions: 0,
    detected: 0,
    steadyOk: 0,
    steadyFailed: 0,
    worstSteadyRatio: Number.POSITIVE_INFINITY,
    leaks: [],
    samples: [],
  };
  const steady = await host(nvmePort, NET, { timeoutMs: 30_000, kato: 10_000 });
  const st = new Traffic(steady.qp, 0, 4, 64);
  try {
    // Every path once before the baseline: pools and bounce buffers made on first use stay.
    for (const nqn of [ERR, STALL]) {
      const h = await host(nvmePort, nqn, { timeoutMs: 30_000, kato: 10_000 });
      const w = new Traffic(h.qp, 0, 4, 8);
      await new Promise((r) => setTimeout(r, 300));
      await w.stop();
      await h.c.close();
    }
    await run('iscsi-perf', ['-t', '1', '-m', '16', '-b', '8', `iscsi://127.0.0.1:${iscsiPort}/${IQN}/0`], {
      timeout: 20_000,
    });
    await new Promise((r) => setTimeout(r, 500));
    const base = await sample(tgt);
    fig.samples.push(base);
    for (let r = 0; r < rounds; r++) {
      const kind = kinds[r % kinds.length];
      const before0 = st.ok;
      await new Promise((res) => setTimeout(res, 1000));
      const rateBefore = st.ok - before0;
      const t0 = Date.now();
      const during0 = st.ok;
      const a0 = { ok: fig.affectedOk, failed: fig.affectedFailed, fired: fig.fired, detected: fig.detected };
      if (kind === 'bdev-error' || kind === 'bdev-stall') await bdevFault(e, kind, fig);
      else if (kind === 'iscsi-cut' || kind === 'iscsi-vanish') await iscsiFault(e, kind, fig);
      else {
        const f: Fault =
          kind === 'cut'
            ? { kind: 'cut', afterBytes: 20_000 + Math.floor(Math.random() * 200_000) }
            : kind === 'reset'
              ? { kind: 'cut', afterBytes: 20_000 + Math.floor(Math.random() * 200_000), reset: true }
              : kind === 'blackhole'
                ? { kind: 'blackhole', afterBytes: 20_000 + Math.floor(Math.random() * 200_000) }
                : kind === 'delay'
                  ? { kind: 'delay', ms: 5 + Math.floor(Math.random() * 20) }
                  : kind === 'rechunk'
                    ? { kind: 'rechunk', max: 1 + Math.floor(Math.random() * 700) }
                    : kind === 'reorder'
                      ? { kind: 'reorder', at: 3 + Math.floor(Math.random() * 30) }
                      : { kind: 'duplicate', at: 3 + Math.floor(Math.random() * 30) };
        // Stream corruption is only detectable with digests; without them TCP's own checksum is
        // all there is, and a corrupted payload would be the host's data to lose.
        await nvmeFault(e, f, kind === 'reorder' || kind === 'duplicate', fig);
      }
      const secs = (Date.now() - t0) / 1000;
      const rateDuring = (st.ok - during0) / secs;
      if (rateBefore > 0) fig.worstSteadyRatio = Math.min(fig.worstSteadyRatio, rateDuring / rateBefore);
      fig.faults[kind] = (fig.faults[kind] ?? 0) + 1;
      const k = (fig.byKind[kind] ??= { ok: 0, failed: 0 });
      k.ok += fig.affectedOk - a0.ok;
      k.failed += fig.affectedFailed - a0.failed;
      // Back where we were: nothing left over (a vanished host's keep-alive or NOP timer may take seconds).
      const leaks = await settled(e, base, 20_000);
      if (steady.qp.failed) leaks.push(`the steady connection failed: ${steady.qp.failed.message}`);
      fig.leaks.push(...leaks.map((l) => `round ${r + 1} (${kind}): ${l}`));
      const s = await sample(tgt);
      fig.samples.push(s);
      fig.rounds++;
      log(
        `${new Date().toISOString()} resets ${steady.c.resets} events ${JSON.stringify(steady.c.events)} round ${r + 1} ${kind}: fired ${fig.fired - a0.fired}${kind === 'reorder' || kind === 'duplicate' ? `, connection failed ${fig.detected - a0.detected}` : ''}, affected ${fig.affectedOk - a0.ok} ok ${fig.affectedFailed - a0.failed} failed; steady ${rateBefore}/s before, ${rateDuring.toFixed(0)}/s during; fds ${s.open_fds}, heap ${(s.heap / 1048576).toFixed(1)} MiB, rss ${(s.rss / 1048576).toFixed(0)} MiB${leaks.length ? `; LEAK ${leaks.join(', ')}` : ''}`,
      );
    }
  } finally {
    await st.stop();
    fig.steadyOk = st.ok;
    fig.steadyFailed = st.failed;
    fig.corrupt += st.corrupt;
    await steady.c.close().catch(() => {});
    await tgt.stop();
    if (process.env.FAULTS_DEBUG) console.error(tgt.output);
  }
  return fig;
}
