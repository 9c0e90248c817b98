// The package's public surface: the wire format at the root, the NVMe/TCP framing under ./tcp,
// nothing else. The target and the host both build on it, so it must not grow a host or target part.

import { readFileSync } from 'node:fs';

import { expect } from 'chai';

describe('nvme-spec: package exports', () => {
  it('exports the wire format and the TCP framing, and depends on nothing but the native core', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.exports)).to.deep.equal(['.', './tcp']);
    expect(Object.keys(pkg.dependencies)).to.deep.equal(['@storkit/native']);
    const spec = await import('@storkit/nvme-spec');
    for (const k of [
      'PduType',
      'AdminOpcode',
      'IoOpcode',
      'GenericStatus',
      'Reg',
      'decodeCap',
      'doorbellOffset',
      'encodeIdentifyController',
      'encodeDiscoveryLog',
      'NvmeTcpProtocolError',
    ])
      expect(spec).to.have.property(k);
    const tcp = await import('@storkit/nvme-spec/tcp');
    expect(Object.keys(tcp).sort()).to.deep.equal(['PduReader', 'TxQueue', 'copyBytes']);
  });

  it('the target no longer depends on the host package', () => {
    const nvmf = JSON.parse(readFileSync(new URL('../../../nvmf/package.json', import.meta.url), 'utf8'));
    expect(nvmf.dependencies).to.not.have.property('@storkit/nvme');
    expect(nvmf.dependencies).to.have.property('@storkit/nvme-spec');
  });
});
