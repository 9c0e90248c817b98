import { expect } from 'chai';

import { getThread, ReactorError } from '../src/index.js';
import { closeTestHarnesses, createTestHarness } from '../src/testing.js';

describe('TestHarness: waiting for answers', () => {
  afterEach(() => closeTestHarnesses());

  it('run answers with the value from a later poll, on the thread it asked for; runErr with the error', () => {
    const h = createTestHarness({ reactors: 2 });
    const v = h.run<number>((cb) => {
      const t = getThread();
      t?.sendMsg(() => cb(null, (t?.reactor ?? -1) + 40));
    }, 1);
    expect(v).to.equal(41);
    expect(getThread()?.reactor).to.equal(1);
    const e = h.runErr((cb) => getThread()?.sendMsg(() => cb(new Error('no'))));
    expect(e?.message).to.equal('no');
    expect(h.runErr((cb) => cb(null))).to.equal(null);
    h.close();
  });

  it('until advances the fake clock each round and names what never came', () => {
    const h = createTestHarness();
    const start = h.nowUs;
    h.until(() => h.nowUs - start >= 50, 'fifty microseconds', 100, 10);
    expect(h.nowUs - start).to.equal(50);
    expect(() => h.until(() => false, 'an answer', 3))
      .to.throw(ReactorError, /an answer not reached after 3 rounds/)
      .with.property('code', 'EBUSYLOOP');
    h.close();
  });

  it('closeTestHarnesses closes what a failed test left open', () => {
    const h = createTestHarness();
    closeTestHarnesses();
    expect(h.reactors.every((r) => r.threads.length === 0)).to.equal(true);
  });
});
