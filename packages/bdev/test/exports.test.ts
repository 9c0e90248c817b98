import { readFileSync } from 'node:fs';
import { expect } from 'chai';

describe('package entry points', () => {
  it('exports only the consumer, module-author, modules and perf entries', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.exports)).to.deep.equal(['.', './module', './modules', './perf']);
  });

  it('keeps module-author calls out of the consumer entry', async () => {
    const consumer = await import('@storkit/bdev');
    const module = await import('@storkit/bdev/module');
    for (const k of [
      'bdevIoComplete',
      'bdevRegister',
      'bdevModuleClaimBdev',
      'bdevLockLbaRange',
      'openBase',
      'registerVbdevDevice',
      'submitToBase',
    ]) {
      expect(consumer).to.not.have.property(k);
      expect(module).to.have.property(k);
    }
    for (const k of ['bdevOpenExt', 'bdevReadv', 'queueIoWait', 'bdevSetQosLimit', 'IoStatus']) {
      expect(consumer).to.have.property(k);
    }
    const modules = await import('@storkit/bdev/modules');
    expect(
      Object.keys(modules)
        .filter((k) => k.endsWith('Create'))
        .sort(),
    ).to.deep.equal([
      'bdevAioCreate',
      'bdevDelayCreate',
      'bdevErrorCreate',
      'bdevMallocCreate',
      'bdevNullCreate',
      'bdevPassthruCreate',
      'bdevRaidCreate',
      'bdevSplitCreate',
      'bdevUringCreate',
    ]);
  });
});
