// Wireshark's NVMe/TCP dissector as an independent judge of our wire format. A capture on lo of a
// full session (connect, identify, in-capsule and R2T writes, reads, with and without header and
// data digests) must decode with no malformed packet and no warning-level expert info, with every
// digest verified correct. A second connection on another port sends one PDU with a bad header
// digest: the dissector must flag that one, which proves the check can fail.
// Needs tshark (Debian package; .ci/run installs it) and permission to capture on lo.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { discover } from '@storkit/nvme';
import {
  badDigestSession,
  digestVerdicts,
  explainFrame,
  flaggedFrames,
  pduTypes,
  requireTshark,
  session,
  startCapture,
} from '@storkit/nvme/testing';
import { PduType } from '@storkit/nvme-spec';
import { expect } from 'chai';
import { freePort, startTarget } from './helpers.js';

describe('nvmf: Wireshark decodes a captured session cleanly', function () {
  this.timeout(60000);
  let dir: string;
  let stopCapture: (() => Promise<void>) | undefined;

  before(() => {
    requireTshark();
    dir = mkdtempSync(join(tmpdir(), 'storkit-ws-'));
  });

  after(async () => {
    await stopCapture?.();
    if (process.env.KEEP_CAPTURE) console.error('capture kept in', dir);
    else rmSync(dir, { recursive: true, force: true });
  });

  it('has no malformed PDUs or warnings, verifies every digest, and flags a bad one', async () => {
    const f = await startTarget({ in_capsule_data_size: 4096, io_unit_size: 16384 }, { blocks: 4096 });
    const bad = await startTarget({}, { port: await freePort() });
    const file = join(dir, 'nvme-tcp.pcapng');
    stopCapture = (await startCapture(file, [f.port, bad.port], bad.port)).stop;
    try {
      await session(f.trid, false);
      await session(f.trid, true);
      expect(await discover(f.trid, { hdgst: true })).to.have.length(2);
      await badDigestSession(bad.port);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await stopCapture();
      stopCapture = undefined;
      await f.tgt.close();
      await bad.tgt.close();
    }
    const bad1 = flaggedFrames(file, f.port);
    const why = bad1.length ? explainFrame(file, f.port, bad1[0]) : '';
    expect(bad1, `frames Wireshark flags in the good sessions:\n${why}`).to.deep.equal([]);
    expect(flaggedFrames(file, bad.port).length, 'the bad header digest is flagged').to.be.greaterThan(0);

    // The dissector really decoded NVMe/TCP: count PDUs by type in the good sessions.
    const types = pduTypes(file, f.port);
    const count = (t: number) => types.filter((x) => x === t).length;
    expect(count(PduType.ICReq), types.join(' ')).to.equal(5); // two sessions (admin + I/O queue) and a discovery
    expect(count(PduType.ICResp)).to.equal(count(PduType.ICReq));
    expect(count(PduType.CapsuleCmd)).to.be.greaterThan(20);
    expect(count(PduType.CapsuleResp)).to.be.greaterThan(15);
    expect(count(PduType.R2T)).to.equal(2);
    expect(count(PduType.H2CData)).to.equal(8); // 64 KiB in 16 KiB PDUs, twice
    expect(count(PduType.C2HData)).to.be.greaterThan(8);
    // Digest verdicts (1 = good, 0 = bad): many checked, all good (bad ones are in PROBLEMS above).
    const verdicts = digestVerdicts(file, f.port);
    expect(verdicts.length).to.be.greaterThan(20);
    expect(verdicts.every((v) => v === '1')).to.equal(true);
  });
});
