import { expect } from 'chai';

import { parseCoreMask, ReactorError } from '../src/index.js';

describe('parseCoreMask (SPDK -m)', () => {
  it('reads hex masks and core lists', () => {
    expect(parseCoreMask('0x3')).to.deep.equal([0, 1]);
    expect(parseCoreMask('0X5')).to.deep.equal([0, 2]);
    expect(parseCoreMask('f0')).to.deep.equal([4, 5, 6, 7]);
    expect(parseCoreMask('0x10000000000000001')).to.deep.equal([0, 64]);
    expect(parseCoreMask('[0,1]')).to.deep.equal([0, 1]);
    expect(parseCoreMask('[3, 0-2, 2]')).to.deep.equal([0, 1, 2, 3]);
  });

  it('rejects malformed and empty selections with EINVAL', () => {
    for (const bad of ['', '0x0', 'zz', '0x', '[]', '[1-0]', '[a]', '[1,,2]']) {
      expect(() => parseCoreMask(bad), bad)
        .to.throw(ReactorError)
        .with.property('code', 'EINVAL');
    }
  });
});
