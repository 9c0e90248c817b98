// `npm run soak [-- --minutes N] [--round-seconds S]`: one `storkit tgt` serving all three target
// protocols at once, each with verified mixed I/O from its own initiator: NVMe/TCP (storkit's host),
// iSCSI (QEMU's qemu-io and qemu-img over libiscsi) and vhost-user-blk (storkit's virtio-user
// initiator). Every round each initiator connects, writes random stamped blocks (some with FUA)
// with flushes between, disconnects, connects again and reads every block it ever wrote back
// through the target (faults/ledger.ts): with no fault injected, any acknowledged write not read
// back exactly is a verify error. The target's RSS and open fds are sampled after every round.
// Prints one line per round and a summary; exits 1 on any verify error or failed I/O.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { verify, writeLoop } from './clients.js';
import { BLOCKS, config, connectRetry, threeDisks } from './kill.js';
import { TgtProcess } from './tgt.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    'round-seconds': { type: 'string', default: '20' },
  },
});
const minutes = Number(values.minutes);
const roundMs = Number(values['round-seconds']) * 1000;
if (!(minutes > 0) || !(roundMs > 0)) {
  console.error('usage: soak [--minutes N (default 60)] [--round-seconds S (default 20)]');
  process.exit(2);
}

interface Mem {
  rss: number;
  open_fds: number;
}
const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

const dir = mkdtempSync(join(tmpdir(), 'storkit-soak-'));
let code = 1;
try {
  const { disks, nvmePort, iscsiPort } = await threeDisks(dir);
  const tgt = await TgtProcess.start(config(dir, nvmePort, iscsiPort, false), dir);
  const mem = () => tgt.rpc<Mem>('storkit_get_memory');
  const t = { rounds: 0, writes: 0, fua: 0, flushes: 0, reads: 0, failed: 0, verifyErrors: 0, stuck: 0 };
  let before: Mem | null = null;
  let after: Mem | null = null;
  const atStart = await mem();
  const start = Date.now();
  const end = start + minutes * 60_000;
  console.log(`soak: ${minutes} min, ${roundMs / 1000} s rounds, storkit tgt pid ${tgt.pid}, dir ${dir}`);
  try {
    for (let r = 0; Date.now() < end; r++) {
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
      await new Promise((res) => setTimeout(res, Math.min(roundMs, Math.max(1000, end - Date.now()))));
      // A writer that cannot stop within 15 s has an I/O the target never answered: a hang, which
      // the soak reports (its connection is dropped so the round can end, and counts as failed).
      const stuck: string[] = [];
      const stats = await Promise.all(
        loops.map(async (l, i) => {
          const stopped = l.stop();
          const t = await Promise.race([stopped, new Promise((res) => setTimeout(res, 15_000, null))]);
          if (t === null) {
            stuck.push(clients[i].name);
            await clients[i].abandon();
          }
          return stopped;
        }),
      );
      for (const c of clients) await c.abandon();
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
      const m = await mem();
      // The first round warms every path (pools, bounce buffers, the iSCSI LUN's file): the
      // baseline is taken after it.
      if (before === null) before = m;
      after = m;
      t.rounds++;
      t.reads += reads;
      t.verifyErrors += errs.length;
      t.stuck += stuck.length;
      for (const s of stats) {
        t.writes += s.writes;
        t.fua += s.fua;
        t.flushes += s.flushes;
        t.failed += s.failed;
      }
      const per = stats.map((s, i) => `${readers[i].name} ${s.writes}w/${s.fua}fua/${s.flushes}f`).join(' ');
      console.log(
        `round ${r + 1} @${((Date.now() - start) / 60_000).toFixed(1)} min: ${per}; ${reads} blocks read back; verify errors ${errs.length}; failed ${stats.reduce((a, s) => a + s.failed, 0)};${stuck.length ? ` NO ANSWER (hung I/O) on ${stuck.join(', ')};` : ''} rss ${mib(m.rss)}, fds ${m.open_fds}`,
      );
      for (const e of errs.slice(0, 10)) console.log(`  ${e}`);
    }
  } finally {
    await tgt.stop();
  }
  const ios = t.writes + t.flushes + t.reads;
  console.log(
    `soak: ${t.rounds} rounds in ${((Date.now() - start) / 60_000).toFixed(1)} min; ${ios} I/Os (${t.writes} writes of which ${t.fua} FUA, ${t.flushes} flushes, ${t.reads} verified reads); verify errors ${t.verifyErrors}; failed I/O ${t.failed}; rounds with an unanswered I/O ${t.stuck}; target rss at start ${mib(atStart.rss)}, after round 1 ${before ? mib(before.rss) : '-'}, at the end ${after ? mib(after.rss) : '-'}; fds ${before?.open_fds ?? '-'} -> ${after?.open_fds ?? '-'}`,
  );
  code = t.verifyErrors === 0 && t.failed === 0 && t.stuck === 0 && t.rounds > 0 ? 0 : 1;
} catch (e) {
  console.error(e);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
// The vhost initiator's reactor harness keeps the loop alive: leave explicitly.
process.exit(code);
