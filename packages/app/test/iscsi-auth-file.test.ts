// iscsi_set_options' auth_file: SPDK's CHAP secret file format, as iscsi_parse_auth_info reads it
// (rpcpy.test.ts loads one into storkit tgt with SPDK's rpc.py and logs in with libiscsi).
import { expect } from 'chai';

import { parseAuthFile } from '../src/iscsi-auth-file.js';

describe('app: iscsi auth_file (SPDK CHAP secret file)', () => {
  it('reads [AuthGroupN] sections: quoted values, comments, continued lines; other sections skipped', () => {
    const text = [
      '# comment',
      '[Global]',
      '  Auth skipped secret',
      '[AuthGroup2]',
      '  Comment "two users"',
      '  Auth "a b" "secret one"',
      '  Auth u2 s2 m2 \\',
      '     ms2',
      '[AuthGroup10]',
      '  Auth u10 s10',
    ].join('\n');
    expect(parseAuthFile(text)).to.deep.equal([
      {
        tag: 2,
        secrets: [
          { user: 'a b', secret: 'secret one' },
          { user: 'u2', secret: 's2', muser: 'm2', msecret: 'ms2' },
        ],
      },
      { tag: 10, secrets: [{ user: 'u10', secret: 's10' }] },
    ]);
  });

  it('refuses what SPDK refuses, naming the line', () => {
    const bad: [string, RegExp][] = [
      ['[AuthGroup0]\n  Auth u s', /:1: auth group 0 is invalid/],
      ['[AuthGroup1]\n  Auth u', /:2: Auth needs a user and a secret/],
      ['[AuthGroup1]\n  Auth u s m', /:2: a mutual user needs a mutual secret/],
      ['[AuthGroup1]\n  Auth u s\n  Auth u t', /:3: user u appears twice/],
      ['[AuthGroup1]\n[AuthGroup1]', /:2: auth group 1 appears twice/],
      ['[AuthGroup1\n', /:1: bad section header/],
      ['[AuthGroup1]\n  Auth "u s', /:2: unterminated quote/],
    ];
    for (const [text, why] of bad) expect(() => parseAuthFile(text, 'f'), text).to.throw(why);
  });
});
