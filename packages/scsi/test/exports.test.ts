import * as scsi from '@storkit/scsi';
import { expect } from 'chai';

describe('scsi: package entry points', () => {
  it('exports the consumer API; the backend contract and its RAM double live in @storkit/block', () => {
    expect(Object.keys(scsi).sort()).to.deep.equal(
      [
        'Asc',
        'DataDirection',
        'LogicalUnit',
        'MAX_LUNS',
        'Nexus',
        'Op',
        'ScsiDevice',
        'ScsiError',
        'ScsiTask',
        'SenseKey',
        'Status',
        'ascOf',
        'senseKeyOf',
        'writeFixedSense',
      ].sort(),
    );
  });
});
