import { readFileSync } from 'node:fs';

import { expect } from 'chai';

describe('@storkit/vhost exports', () => {
  it('exposes exactly the consumer entry and the testing entry', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.exports)).to.deep.equal(['.', './testing']);
    const main = await import('@storkit/vhost');
    expect(Object.keys(main).sort()).to.deep.equal(
      [
        'BLK_SEG_MAX',
        'BlkDevice',
        'FRONTEND_UVA_BASE',
        'GuestMemory',
        'MAX_MEM_SLOTS',
        'VhostController',
        'VhostError',
        'VhostScsiDevice',
        'VhostTarget',
        'VhostUserFrontend',
        'VirtioUserBlk',
      ].sort(),
    );
    const testing = await import('@storkit/vhost/testing');
    expect(Object.keys(testing).sort()).to.deep.equal([
      'Blk',
      'DriverQueue',
      'Feature',
      'MsgFlag',
      'ProtocolFeature',
      'Req',
      'Scsi',
      'Vring',
      'bits',
    ]);
  });
});
