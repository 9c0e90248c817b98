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

  it('both transports are registered; a PCIe address with no device says so, with a code', async () => {
    const { getTransport, NvmeController, registerTransport } = await import('../src/index.js');
    expect(getTransport('PCIe')?.trtype).to.equal('PCIe');
    expect(() => registerTransport(getTransport('TCP')!)).to.throw(/already registered/);
    try {
      await NvmeController.connect('trtype:PCIe traddr:0000:7f:1f.7');
      expect.fail('connected');
    } catch (e) {
      expect((e as { code?: string }).code).to.equal('ENODEV');
      expect((e as Error).message).to.match(/no PCI device at 0000:7f:1f.7/);
    }
  });
});
