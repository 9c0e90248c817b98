// The soak's rounds (`npm run soak`, ../fault-soak.test.ts): one `storkit tgt` serving all three
// target protocols at once, each with verified mixed I/O from its own initiator: NVMe/TCP
// (storkit's host), iSCSI (QEMU's qemu-io and qemu-img over libiscsi) and vhost-user-blk
// (storkit's virtio-user initiator). Every round each initiator connects, writes random stamped
// blocks (some with FUA) with flushes between, disconnects, connects again and reads every block
// it ever wrote back through the target (faults/ledger.ts): with no fault injected, any
// acknowledged write not read back exactly is a verify error. After every round the target must
// be back where it was (the same open fds and io_channel references once the round's connections
// are gone), and its RSS is sampled.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { RpcClient } from '@storkit/rpc';

import { verify, writeLoop } from './clients.js';
import { BLOCKS, config, connectRetry, NQN, threeDisks } from './kill.js';
import { TgtProcess } from './tgt.js';

interface Mem {
  rss: number;
  open_fds: number;
}

export interface SoakFigures {
  rounds: number;
  writes: number;
  fua: number;
  flushes: number;
  reads: number;
  failed: number;
  verifyErrors: number;
  /** Acknowledged writes and flushes per protocol. */
  per: Record<string, { writes: number; flushes: number }>;
  /** Rounds (1-based) that had verify errors. */
  errorRounds: number[];
  /** Rounds in which a writer's I/O was never answered (its connection had to be dropped). */
  stuck: number;
  /** Round-end states that differ from the baseline (fds, channel references): must be empty. */
  leaks: string[];
  atStart: Mem;
  /** After the first round (every path warmed), and after the last. */
  before: Mem | null;
  after: Mem | null;
  minutes: number;
}

export interface SoakOptions {
  /** Stop starting rounds after this long... */
  minutes?: number;
  /** ...or after this many rounds (whichever comes first). */
  rounds?: number;
  roundMs: number;
  log?: (line: string) => void;
  /**
   * The negative control: before round `tamperRound`'s read-back, overwrite one written block of
   * the NVMe disk's backing file behind the target's back. The round must report verify errors.
   */
  tamperRound?: number;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const channels = (t: { threads: { io_channels: { ref: number }[] }[] }) =>
  t.threads.reduce((a, th) => a + th.io_channels.reduce((b, c) => b + c.ref, 0), 0);

/** Wait until the target has no NVMe/TCP qpair, iSCSI connection or vhost session left. */
async function drained(rpc: RpcClient, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    const q = await rpc.call<unknown[]>('nvmf_subsystem_get_qpairs', { nqn: NQN });
    const ic = await rpc.call<unknown[]>('iscsi_get_connections');
    const vh = await rpc.call<{ sessions: unknown[] }[]>('vhost_get_controllers');
    if (q.length === 0 && ic.length === 0 && vh.every((c) => c.sessions.length === 0)) return true;
    if (Date.now() > until) return false;
    await new Promise((res) => setTimeout(res, 100));
  }
}

export async function soakRounds(dir: string, o: SoakOptions): Promise<SoakFigures> {
  const log = o.log ?? (() => {});
  const { disks, nvmePort, iscsiPort } = await threeDisks(dir);
  const tgt = await TgtProcess.start(config(dir, nvmePort, iscsiPort, false), dir);
  // One RPC connection for every sample: a connection per call may still be open on the target's
  // side when the next call counts fds.
  const rpc = await RpcClient.connect(tgt.rpcPath);
  const mem = () => rpc.call<Mem>('storkit_get_memory');
  const refs = async () => channels(await rpc.call('thread_get_io_channels'));
  const t: SoakFigures = {
    rounds: 0,
    writes: 0,
    fua: 0,
    flushes: 0,
    reads: 0,
    failed: 0,
    verifyErrors: 0,
    errorRounds: [],
    per: {},
    stuck: 0,
    leaks: [],
    atStart: await mem(),
    before: null,
    after: null,
    minutes: 0,
  };
  let base: { fds: number; refs: number } | null = null;
  const start = Date.now();
  const end = start + (o.minutes ?? Number.POSITIVE_INFINITY) * 60_000;
  const maxRounds = o.rounds ?? Number.POSITIVE_INFINITY;
  log(`soak: storkit tgt pid ${tgt.pid}, dir ${dir}, ${o.roundMs / 1000} s rounds`);
  try {
    for (let r = 0; Date.now() < end && r < maxRounds; r++) {
      const clients = await Promise.all(disks.map((d) => connectRetry(d)));
      const loops = clients.map((c, i) =>
        writeLoop(c, disks[i].ledger, {
          blocks: BLOCKS,
          depth: disks[i].depth,
          flushEvery: disks[i].flushEvery,
          fuaEvery: 8,
          seed: r * 3 + i + 1,
        }),
      );
      await new Promise((res) => setTimeout(res, Math.min(o.roundMs, Math.max(1000, end - Date.now()))));
      // A writer that cannot stop within 15 s has an I/O the target never answered: a hang, which
      // the soak reports (its connection is dropped so the round can end, and counts as failed).
      const stuck: string[] = [];
      const stats = await Promise.all(
        loops.map(async (l, i) => {
          const stopped = l.stop();
          const s = await Promise.race([stopped, new Promise((res) => setTimeout(res, 15_000, null))]);
          if (s === null) {
            stuck.push(clients[i].name);
            await clients[i].abandon();
          }
          return stopped;
        }),
      );
      for (const c of clients) await c.abandon();
      if (r === o.tamperRound) {
        const lba = disks[0].ledger.lbas[0];
        const bs = disks[0].ledger.blockSize;
        const fd = openSync(join(dir, 'nvme.img'), 'r+');
        writeSync(fd, new Uint8Array(bs), 0, bs, lba * bs);
        closeSync(fd);
      }
      // Read back through a fresh connection: what was acknowledged must be there.
      const readers = await Promise.all(disks.map((d) => connectRetry(d)));
      const errs: string[] = [];
      let reads = 0;
      for (const [i, c] of readers.entries()) {
        const v = await verify(c, disks[i].ledger);
        reads += v.blocks;
        errs.push(...v.errors.map((e) => `${c.name}: ${e}`));
        if (v.lostUnflushed) errs.push(`${c.name}: ${v.lostUnflushed} acknowledged writes lost`);
        if (v.torn) errs.push(`${c.name}: ${v.torn} torn blocks`);
        await c.abandon();
      }
      // Every connection of the round is gone: once the target has noticed (no qpair, iSCSI
      // connection or vhost session left), its fds and channel references must be back where
      // they were after round 1.
      const gone = await drained(rpc, 20_000);
      let leak: string[] = gone ? [] : ['connections still open 20 s after the round ended'];
      let m = await mem();
      if (base) {
        const until = Date.now() + 10_000;
        for (;;) {
          const n = await refs();
          leak = gone ? [] : leak.slice(0, 1);
          if (m.open_fds !== base.fds) leak.push(`open fds ${m.open_fds}, ${base.fds} after round 1`);
          if (n !== base.refs) leak.push(`io_channel refs ${n}, ${base.refs} after round 1`);
          if (leak.length === 0 || Date.now() > until) break;
          await new Promise((res) => setTimeout(res, 200));
          m = await mem();
        }
      }
      // The first round warms every path (pools, bounce buffers, the iSCSI LUN's file): the
      // baseline is taken after it.
      if (t.before === null) {
        // The baseline must not catch a socket still closing: two samples that agree.
        for (let i = 0; i < 25; i++) {
          await new Promise((res) => setTimeout(res, 200));
          const again = await mem();
          if (again.open_fds === m.open_fds) break;
          m = again;
        }
        t.before = m;
        base = { fds: m.open_fds, refs: await refs() };
      }
      t.after = m;
      t.rounds++;
      t.reads += reads;
      t.verifyErrors += errs.length;
      if (errs.length) t.errorRounds.push(r + 1);
      t.stuck += stuck.length;
      t.leaks.push(...leak.map((l) => `round ${r + 1}: ${l}`));
      for (const [i, s] of stats.entries()) {
        const p = (t.per[clients[i].name] ??= { writes: 0, flushes: 0 });
        p.writes += s.writes;
        p.flushes += s.flushes;
        t.writes += s.writes;
        t.fua += s.fua;
        t.flushes += s.flushes;
        t.failed += s.failed;
      }
      const per = stats.map((s, i) => `${readers[i].name} ${s.writes}w/${s.fua}fua/${s.flushes}f`).join(' ');
      log(
        `round ${r + 1} @${((Date.now() - start) / 60_000).toFixed(1)} min: ${per}; ${reads} blocks read back; verify errors ${errs.length}; failed ${stats.reduce((a, s) => a + s.failed, 0)};${stuck.length ? ` NO ANSWER (hung I/O) on ${stuck.join(', ')};` : ''}${leak.length ? ` LEAK ${leak.join(', ')};` : ''} rss ${mib(m.rss)}, fds ${m.open_fds}`,
      );
      for (const e of errs.slice(0, 10)) log(`  ${e}`);
    }
  } finally {
    rpc.close();
    await tgt.stop();
  }
  t.minutes = (Date.now() - start) / 60_000;
  return t;
}

/** The soak's one-line summary. */
export function summary(t: SoakFigures): string {
  const ios = t.writes + t.flushes + t.reads;
  return `soak: ${t.rounds} rounds in ${t.minutes.toFixed(1)} min; ${ios} I/Os (${t.writes} writes of which ${t.fua} FUA, ${t.flushes} flushes, ${t.reads} verified reads); verify errors ${t.verifyErrors}; failed I/O ${t.failed}; rounds with an unanswered I/O ${t.stuck}; leaks ${t.leaks.length}; target rss at start ${mib(t.atStart.rss)}, after round 1 ${t.before ? mib(t.before.rss) : '-'}, at the end ${t.after ? mib(t.after.rss) : '-'}; fds ${t.before?.open_fds ?? '-'} -> ${t.after?.open_fds ?? '-'}`;
}

/** A soak passes with rounds run, no verify error, no failed or unanswered I/O and nothing leaked. */
export function passed(t: SoakFigures): boolean {
  return t.rounds > 0 && t.verifyErrors === 0 && t.failed === 0 && t.stuck === 0 && t.leaks.length === 0;
}
