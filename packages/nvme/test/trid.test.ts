import { expect } from 'chai';

import { formatTransportId, parseTransportId, TransportIdError } from '../src/host/trid.js';

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
    expect(parseTransportId('TRTYPE:tcp TrAddr:10.0.0.1')).to.include({ trsvcid: '4420' });
    expect(() => parseTransportId('trtype:RDMA traddr:1.2.3.4')).to.throw(/unsupported trtype/);
    expect(() => parseTransportId('trtype:TCP')).to.throw(/traddr/);
    expect(() => parseTransportId('trtype:TCP traddr:x trsvcid:99999')).to.throw(/trsvcid/);
  });
});

describe('nvme host: PCIe transport IDs', () => {
  it('parses a PCI address in any of its spellings into dddd:bb:dd.f', () => {
    expect(parseTransportId('trtype:PCIe traddr:0000:00:04.0')).to.deep.equal({
      trtype: 'PCIe',
      traddr: '0000:00:04.0',
      subnqn: '',
    });
    expect(parseTransportId('trtype:pcie traddr:00:04.0').traddr).to.equal('0000:00:04.0');
    expect(parseTransportId('trtype:PCIe traddr:1:2:1F.7').traddr).to.equal('0001:02:1f.7');
    expect(formatTransportId(parseTransportId('trtype:PCIe traddr:0:4.0'))).to.equal(
      'trtype:PCIe traddr:0000:00:04.0',
    );
    expect(() => parseTransportId('trtype:PCIe traddr:00:20.0')).to.throw(TransportIdError, /PCI device/);
    expect(() => parseTransportId('trtype:PCIe traddr:00:04.8')).to.throw(TransportIdError, /PCI address/);
    expect(() => parseTransportId('trtype:PCIe')).to.throw(TransportIdError, /traddr/);
  });

  // While no PCIe transport is registered (it comes with packages/nvme/src/pcie): when one is,
  // this test moves to another unregistered trtype or goes.
  it('NvmeController.connect names the missing transport for a trtype nothing registered', async () => {
    const { getTransport, NvmeController, registerTransport } = await import('../src/index.js');
    expect(getTransport('PCIe')).to.equal(undefined);
    expect(() => registerTransport(getTransport('TCP')!)).to.throw(/already registered/);
    try {
      await NvmeController.connect('trtype:PCIe traddr:0000:00:04.0');
      expect.fail('connected');
    } catch (e) {
      expect((e as Error).message).to.match(/no NVMe transport for trtype PCIe/);
    }
  });
});
