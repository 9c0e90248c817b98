// Fault campaign: connections damaged mid-transfer, hosts that vanish and bdevs that fail or
// stall, against one `storkit tgt` process (spawned, ephemeral ports, malloc bdevs and one file).
// A steady NVMe/TCP host (storkit's host driver) straight to the target does verified
// write/read-back I/O the whole time. Each round injects one fault (faults/net.ts): a second host
// goes through a proxy (faults/proxy.ts) that cuts its connection mid-transfer (FIN and RST),
// delays every chunk, or reorders / duplicates bytes of its stream inside a PDU (with digests on,
// so the target must see the damage and drop the connection); an error bdev fails 20 writes and
// 20 reads, or a delay bdev stalls every I/O 4 s, under a host's verified I/O; libiscsi's
// iscsi-perf reads through the proxy until it cuts the connection, or stops forwarding anything
// (a host that vanished, which the target must find by its NOP-In pings and drop). The steady host must keep
// working with intact data, no acknowledged read may return wrong data, the affected I/O must fail
// or time out with a status (never hang: each round is bounded), and after every round the target
// must be back where it was: same open fds, same io_channel references, no qpair or iSCSI
// connection left over (storkit_get_memory, thread_get_io_channels, nvmf_subsystem_get_qpairs,
// iscsi_get_connections).
//
// STORKIT_FAULT_NET_KINDS overrides the kinds (comma separated, faults/net.ts FAULTS).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { type FaultKind, netRounds } from './faults/net.js';

// CI runs every kind but 'blackhole' and 'rechunk' (run them with STORKIT_FAULT_NET_KINDS).
// 'reorder' and 'duplicate' damage the stream inside a PDU with digests on: the connection must
// fail and no wrong data may be acknowledged (faults/proxy.ts says why whole PDUs are not moved).
const KINDS = (process.env.STORKIT_FAULT_NET_KINDS?.split(',') ?? [
  'cut',
  'reset',
  'delay',
  'reorder',
  'duplicate',
  'bdev-error',
  'bdev-stall',
  'iscsi-cut',
  'iscsi-vanish',
]) as FaultKind[];

describe('faults: connections cut, delayed and corrupted mid-transfer, bdevs failing and stalling', function () {
  this.timeout(60_000 + KINDS.length * 30_000);

  it(`${KINDS.join(', ')}: the direct host keeps intact data, the proxied I/O ends with a status, the target leaks nothing`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storkit-fault-net-'));
    try {
      const f = await netRounds(dir, KINDS.length, (l) => console.log(`      ${l}`), KINDS);
      const first = f.samples[0];
      const last = f.samples[f.samples.length - 1];
      console.log(
        `      ${f.rounds} rounds ${JSON.stringify(f.faults)}; affected I/O ${f.affectedOk} ok, ${f.affectedFailed} failed; steady ${f.steadyOk} ok, ${f.steadyFailed} failed; corrupt ${f.corrupt}; fds ${first.open_fds} -> ${last.open_fds}, rss ${(first.rss / 1048576).toFixed(0)} -> ${(last.rss / 1048576).toFixed(0)} MiB`,
      );
      expect(f.rounds).to.equal(KINDS.length);
      expect(f.corrupt, 'acknowledged reads with wrong data').to.equal(0);
      expect(f.leaks).to.deep.equal([]);
      expect(f.steadyOk, 'the direct host made progress').to.be.greaterThan(KINDS.length * 10);
      expect(f.steadyFailed, 'the direct host lost no I/O').to.equal(0);
      // Each fault fired: a cut/reorder that never happened proves nothing.
      const proxied = KINDS.filter((k) => !['delay', 'bdev-error', 'bdev-stall'].includes(k));
      expect(f.fired, 'faults that fired').to.be.at.least(proxied.length);
      // Every stream corruption fired and ended its connection.
      const corrupting = KINDS.filter((k) => k === 'reorder' || k === 'duplicate').length;
      expect(f.corruptions, 'stream corruptions that fired').to.equal(corrupting);
      expect(f.detected, 'stream corruptions after which the connection failed').to.equal(corrupting);
      // A failing bdev fails I/O with a status (20 writes and 20 reads injected); a stalled one
      // (4 s per I/O) outlasts the host's 1 s command timeout.
      for (const k of ['bdev-error', 'bdev-stall'] as const)
        if (KINDS.includes(k)) expect(f.byKind[k].failed, `${k}: I/O failed`).to.be.greaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
