import { expect } from 'chai';

import { defineReactorStep, forEachReactor, getThread } from '../src/index.js';
import { createTestHarness } from '../src/testing.js';

const visits = defineReactorStep<{ seen: number[] }>('test.visits', (arg, reactor, done) => {
  arg.seen.push(reactor * 10 + (getThread()?.reactor ?? -1));
  // Finishes later, on a later poll: the next reactor waits for it.
  getThread()?.sendMsg(() => done(reactor === 2 && arg.seen.length > 10 ? 5 : 0));
});

describe('forEachReactor', () => {
  it('runs the step on each reactor in order, each after the last finished; done on the caller', () => {
    const h = createTestHarness({ reactors: 3 });
    try {
      h.setThread(1);
      let result: { status: number; seen: number[]; on: number | undefined } | null = null;
      forEachReactor(visits, { seen: [] }, (status, arg) => {
        result = { status, seen: arg.seen, on: getThread()?.reactor };
      });
      h.pollThreads();
      expect(result).to.deep.equal({ status: 0, seen: [0, 11, 22], on: 1 });
    } finally {
      h.close();
    }
  });

  it('a step that fails stops the walk and reports its status', () => {
    const h = createTestHarness({ reactors: 3 });
    try {
      let status = -1;
      forEachReactor(visits, { seen: Array.from({ length: 11 }, () => 0) }, (s) => {
        status = s;
      });
      h.pollThreads();
      expect(status).to.equal(5);
    } finally {
      h.close();
    }
  });
});
