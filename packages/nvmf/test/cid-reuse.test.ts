// Command ID reuse on the admin queue. SPDK's host drops its outstanding Asynchronous Event
// Requests locally when it shuts a controller down and reuses their CIDs at once (its Property Get
// CC): the target forgets such an AER and serves the new command. Any other CID still in use is a
// Command ID Conflict.

import { CommandSpecificStatus, GenericStatus, makeStatus, Sct } from '@storkit/nvme-spec';
import { expect } from 'chai';

import { base, capsule, connected, ramTarget, tick } from './engine-helpers.js';

const AER = 0x0c;
const propertyGetCc = (cid: number) => capsule({ ...base, opcode: 0x7f, fctype: 4, cid, cdws: [0, 0x14] });

describe('nvmf: CID reuse on the admin queue', () => {
  it('serves a command on the CID of an AER the host gave up on, and counts the AER out', async () => {
    const { tgt } = ramTarget({ in_capsule_data_size: 0 }, { blockSize: 512, numBlocks: 64 });
    const { admin } = await connected(tgt);
    const before = admin.statuses.length;
    for (let cid = 10; cid < 14; cid++) admin.send(capsule({ ...base, opcode: AER, cid }));
    await tick();
    expect(admin.statuses.length, 'AERs stay outstanding').to.equal(before);
    admin.send(propertyGetCc(13));
    await tick();
    expect(admin.statuses.slice(before)).to.deep.equal([0]);
    // The forgotten AER left room for another one (the limit is 4).
    admin.send(capsule({ ...base, opcode: AER, cid: 20 }));
    admin.send(capsule({ ...base, opcode: AER, cid: 21 }));
    await tick();
    expect(admin.statuses.slice(before)).to.deep.equal([
      0,
      makeStatus(Sct.CommandSpecific, CommandSpecificStatus.AsyncEventRequestLimitExceeded, true),
    ]);
    expect(admin.closed).to.equal(false);
    await tgt.close();
  });

  it('still refuses a CID in use by a command that is not an AER', async () => {
    const { tgt } = ramTarget({ in_capsule_data_size: 0 }, { blockSize: 512, numBlocks: 64 });
    const { io } = await connected(tgt);
    const before = io.statuses.length;
    // A write whose data never comes (R2T outstanding) keeps its CID busy.
    io.send(
      capsule({ ...base, opcode: 0x01, cid: 7, nsid: 1, sglId: 0x5a, sglLen: 4096 }, (dv, s) =>
        dv.setUint16(s + 48, 7, true),
      ),
    );
    io.send(capsule({ ...base, opcode: 0x02, cid: 7, nsid: 1, sglId: 0x5a, sglLen: 512 }));
    await tick();
    expect(io.statuses.slice(before)).to.deep.equal([
      makeStatus(Sct.Generic, GenericStatus.CommandIdConflict),
    ]);
    await tgt.close();
  });
});
