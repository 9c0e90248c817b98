// Fault campaign: kill -9 of `storkit tgt` under verified write load, on file-backed bdevs
// (bdev_uring and bdev_aio, both io_uring here), on every target protocol at once:
// NVMe/TCP (storkit's host), iSCSI (QEMU's qemu-io over libiscsi) and vhost-user-blk (storkit's
// virtio-user initiator). Each round writes stamped blocks with flushes and FUA writes, kills the
// target at a random moment, starts it again on the same files, reads every block back through
// the restarted target and checks that each write acknowledged before an acknowledged flush, or
// acknowledged with FUA, is there (faults/ledger.ts says exactly what is allowed).
//
// CI runs STORKIT_FAULT_ROUNDS (default 2) rounds; `npm run soak` runs many more.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { killRounds } from './faults/kill.js';
import { Ledger, stamp } from './faults/ledger.js';

const ROUNDS = Number(process.env.STORKIT_FAULT_ROUNDS ?? 2);

describe('faults: kill -9 of storkit tgt under verified writes (file-backed bdevs)', function () {
  this.timeout(120_000 + ROUNDS * 60_000);

  it('the ledger flags a lost durable write, an older generation and a stamp of another block', () => {
    const l = new Ledger(7, 4096);
    const b = new Uint8Array(4096);
    const g1 = l.begin(5, b);
    l.acked(5, g1);
    l.flushAcked(l.flushBegin());
    const g2 = l.begin(5, new Uint8Array(4096));
    l.acked(5, g2, true);
    const out = { blocks: 0, errors: [] as string[], lostUnflushed: 0, torn: 0 };
    // Gen 1 on disk where gen 2 was written with FUA: a lost durable write.
    l.check(5, b, out);
    expect(out.errors).to.have.length(8);
    expect(out.errors[0]).to.match(/generation 1, older than durable 2/);
    // Zeroes where gen 1 was flushed; and block 6's stamp where block 5 belongs.
    const l2 = new Ledger(7, 4096);
    l2.acked(5, l2.begin(5, new Uint8Array(4096)));
    l2.flushAcked(l2.flushBegin());
    const o2 = { blocks: 0, errors: [] as string[], lostUnflushed: 0, torn: 0 };
    l2.check(5, new Uint8Array(4096), o2);
    expect(o2.errors[0]).to.match(/generation 0, older than durable 1/);
    const other = new Uint8Array(4096);
    stamp(other, 7, 6, 1);
    const o3 = { blocks: 0, errors: [] as string[], lostUnflushed: 0, torn: 0 };
    l2.check(5, other, o3);
    expect(o3.errors[0]).to.match(/garbage/);
  });

  it(`${ROUNDS} rounds on NVMe/TCP, iSCSI (libiscsi) and vhost-blk: every write acknowledged before an acknowledged flush, or with FUA, is there`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storkit-fault-kill-'));
    try {
      const f = await killRounds(dir, ROUNDS, (l) => console.log(`      ${l}`));
      console.log(
        `      ${f.rounds} rounds, ${f.kills} kills, ${f.writes} writes (${f.fua} FUA), ${f.flushes} flushes, ${f.verified} blocks verified: ${f.errors.length} errors, ${f.lostUnflushed} unflushed writes lost, ${f.torn} torn`,
      );
      expect(f.errors).to.deep.equal([]);
      expect(f.rounds).to.equal(ROUNDS);
      expect(f.flushes).to.be.greaterThan(ROUNDS * 6);
      expect(f.fua).to.be.greaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the same round on RAM disks (malloc bdevs die with the process) is caught: flushed writes are missing on every protocol', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storkit-fault-kill-ram-'));
    try {
      const f = await killRounds(dir, 1, () => {}, true);
      const per = (p: string) => f.errors.filter((e) => e.includes(p) && /older than durable/.test(e)).length;
      console.log(
        `      RAM disks: ${f.errors.length} errors (nvme-tcp ${per('nvme-tcp')}, iscsi ${per('iscsi')}, vhost-blk ${per('vhost-blk')})`,
      );
      expect(per('nvme-tcp')).to.be.greaterThan(0);
      expect(per('iscsi')).to.be.greaterThan(0);
      expect(per('vhost-blk')).to.be.greaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
