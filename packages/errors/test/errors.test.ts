import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import { codeOf, ERRNO, errnoOf, isErrno } from '../src/index.js';

describe('errors: the one code set', () => {
  it('holds the errno names with their Linux numbers', () => {
    expect([
      ERRNO.EPERM,
      ERRNO.ENOENT,
      ERRNO.EEXIST,
      ERRNO.ENODEV,
      ERRNO.EINVAL,
      ERRNO.EPROTO,
      ERRNO.EADDRINUSE,
    ]).to.deep.equal([1, 2, 17, 19, 22, 71, 98]);
    expect(isErrno('EINVAL')).to.equal(true);
    expect(isErrno('ERR_SOMETHING')).to.equal(false);
    expect(isErrno('toString')).to.equal(false);
    expect(errnoOf('EEXIST')).to.equal(17);
    expect(errnoOf('EWRONGTHREAD')).to.equal(22);
    expect(errnoOf('nonsense')).to.equal(5);
    expect(codeOf(Object.assign(new Error('x'), { code: 'ENODEV' }))).to.equal('ENODEV');
    expect(codeOf(Object.assign(new Error('x'), { code: 'ERR_X' }))).to.equal(undefined);
    expect(codeOf(null)).to.equal(undefined);
  });

  it("is the set the native core's error codes come from (crates/core/src/error.rs)", () => {
    const rs = readFileSync(new URL('../../../../crates/core/src/error.rs', import.meta.url), 'utf8');
    const codes = new Set([...rs.matchAll(/"(E[A-Z0-9]+)"/g)].map((m) => m[1]));
    expect(codes.size).to.be.greaterThan(10);
    for (const c of codes) expect(isErrno(c), c).to.equal(true);
  });
});
