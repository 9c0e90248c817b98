import { expect } from 'chai';

import { iscsiConfig, type Running, runTarget, tool } from './iscsi-helpers.js';

describe('app: iscsi subsystem', function () {
  this.timeout(120_000);
  let t: Running;
  before(async () => {
    t = await runTarget(
      iscsiConfig([
        { name: 'Malloc0', blockSize: 512, bytes: 16 << 20 },
        { name: 'Malloc1', blockSize: 4096, bytes: 64 << 20 },
      ]),
    );
  });
  after(async () => {
    await t?.stop();
  });

  it('iscsi-ls lists both target nodes', async () => {
    const r = await tool('iscsi-ls', [`iscsi://127.0.0.1:${t.port}`]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.include(`Portal:127.0.0.1:${t.port},1`);
  });

  it('iscsi-inq and readcapacity16 on both nodes', async () => {
    for (const [n, bs, bytes] of [
      [1, 512, 16 << 20],
      [2, 4096, 64 << 20],
    ]) {
      for (let k = 0; k < 4; k++) {
        const inq = await tool('iscsi-inq', [t.url(n)]);
        expect(inq.code, inq.out).to.equal(0);
        const cap = await tool('iscsi-readcapacity16', [t.url(n)]);
        expect(cap.code, cap.out).to.equal(0);
        expect(cap.out).to.include(`LOGICAL BLOCK LENGTH IN BYTES:${bs}`);
        expect(cap.out).to.include(`Total size:${bytes}`);
      }
    }
  });
});
