import { expect } from 'chai';

import { parseTransportId } from '../src/host/trid.js';

describe('nvme host: transport ID strings', () => {
  it('parses SPDK syntax with case-insensitive keys', () => {
    expect(
      parseTransportId(
        'trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1',
      ),
    ).to.deep.equal({
      trtype: 'TCP',
      adrfam: 'IPv4',
      traddr: '127.0.0.1',
      trsvcid: '4420',
      subnqn: 'nqn.2016-06.io.spdk:cnode1',
    });
    expect(parseTransportId('TRTYPE:tcp TrAddr:10.0.0.1').trsvcid).to.equal('4420');
    expect(() => parseTransportId('trtype:RDMA traddr:1.2.3.4')).to.throw(/unsupported trtype/);
    expect(() => parseTransportId('trtype:TCP')).to.throw(/traddr/);
    expect(() => parseTransportId('trtype:TCP traddr:x trsvcid:99999')).to.throw(/trsvcid/);
  });
});
