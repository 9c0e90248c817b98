import * as scsi from '@storkit/scsi';
import * as backend from '@storkit/scsi/backend';
import { expect } from 'chai';

describe('scsi: package entry points', () => {
  it('exports the consumer API and, separately, the backend contract', () => {
    expect(Object.keys(scsi).sort()).to.deep.equal(
      [
        'Asc',
        'DataDirection',
        'IoStatus',
        'LogicalUnit',
        'MAX_LUNS',
        'Nexus',
        'Op',
        'RamBackend',
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
    expect(Object.keys(backend)).to.deep.equal(['IoStatus']);
  });
});
