import { readFileSync } from 'node:fs';
import { expect } from 'chai';

describe('@storkit/blob entry points', () => {
  it('exports the blobstore and the format', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.exports)).to.deep.equal(['.', './format', './testing']);
    const format = await import('@storkit/blob/format');
    for (const k of [
      'decodeSuper',
      'encodeSuper',
      'decodeMdPage',
      'encodeMdPage',
      'serializeBlob',
      'parseBlob',
    ])
      expect(format).to.have.property(k);
  });
});
