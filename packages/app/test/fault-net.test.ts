// Fault campaign: connections damaged mid-transfer, against one `storkit tgt` process (spawned,
// ephemeral ports, malloc bdevs). A steady NVMe/TCP host (storkit's host driver) straight to the
// target does verified write/read-back I/O the whole time; a second host goes through a proxy
// (faults/proxy.ts) that cuts the connection mid-transfer (FIN and RST), delays every chunk, or
// re-chunks / reorders / duplicates chunks of the byte stream (with digests on, so the target must
// see the damage). The steady host must keep working with intact data, the affected I/O must fail
// or time out with a status (never hang: each round is bounded), and after every round the target
// must be back where it was: same open fds, same io_channel references, no qpair left over
// (storkit_get_memory, thread_get_io_channels, nvmf_subsystem_get_qpairs).
//
// STORKIT_FAULT_NET_KINDS overrides the kinds (comma separated, faults/net.ts FAULTS); `npm run
// soak` runs all of them, many rounds.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { type FaultKind, netRounds } from './faults/net.js';

// CI runs the cuts and the delay. 'reorder' and 'duplicate' stay out of the default until one
// unexplained run is understood: 1 of ~10 runs of all five reported 8 corrupt reads (which round
// was not logged), and 'reorder' ends with every affected I/O succeeding, which a split PDU
// stream with digests on should not allow (docs/performance.md, Fault campaign).
const KINDS = (process.env.STORKIT_FAULT_NET_KINDS?.split(',') ?? ['cut', 'reset', 'delay']) as FaultKind[];

describe('faults: NVMe/TCP connections cut, delayed and reordered mid-transfer', function () {
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
      expect(f.fired, 'faults that fired').to.be.at.least(KINDS.filter((k) => k !== 'delay').length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
