import { expect } from 'chai';
import fc from 'fast-check';

import { getThread, POLLER_BUSY, POLLER_IDLE, ReactorError, registerPoller } from '../src/index.js';
import { threadPollers } from '../src/module.js';
import { createTestHarness } from '../src/testing.js';

function rec<T>(log: T[], v: T, rc: number): number {
  log.push(v);
  return rc;
}
function bump(counts: number[], i: number, rc: number): number {
  counts[i]++;
  return rc;
}

describe('Thread messages', () => {
  it('run in order per sender, on the target thread, never inside sendMsg', () => {
    const h = createTestHarness({ reactors: 2 });
    const seen: string[] = [];
    const target = h.threads[1];
    for (let i = 0; i < 100; i++) {
      target.sendMsg((n: number) => {
        expect(getThread()).to.equal(target);
        seen.push(`a${n}`);
      }, i);
    }
    expect(seen).to.deep.equal([]);
    h.pollThreads();
    expect(seen).to.deep.equal(Array.from({ length: 100 }, (_, i) => `a${i}`));
    h.close();
  });

  it('run at most MSG_BATCH per poll, the rest on later polls', () => {
    const h = createTestHarness();
    let ran = 0;
    for (let i = 0; i < 70; i++) h.threads[0].sendMsg(() => ran++);
    expect(h.pollThread(0)).to.equal(32);
    expect(ran).to.equal(32);
    h.pollThread(0);
    h.pollThread(0);
    expect(ran).to.equal(70);
    h.close();
  });

  it('a message sent to self while running waits for the next poll', () => {
    const h = createTestHarness();
    const t = h.threads[0];
    let depth = 0;
    const again = (n: number) => {
      depth = n;
      if (n < 5) t.sendMsg(again, n + 1);
    };
    t.sendMsg(again, 1);
    h.pollThread(0);
    expect(depth).to.equal(1);
    h.pollThreads();
    expect(depth).to.equal(5);
    h.close();
  });

  it('keeps per-sender order for any interleaving of senders (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 200 }), (senders) => {
        const h = createTestHarness({ reactors: 3 });
        const got: number[][] = [[], [], []];
        const counts = [0, 0, 0];
        for (const s of senders) {
          h.setThread(s);
          h.threads[0].sendMsg((v: [number, number]) => got[v[0]].push(v[1]), [s, counts[s]++]);
          if (counts[s] % 7 === 0) h.pollOnce();
        }
        h.pollThreads();
        for (let s = 0; s < 3; s++)
          expect(got[s]).to.deep.equal(Array.from({ length: counts[s] }, (_, i) => i));
        h.close();
      }),
      { numRuns: 50 },
    );
  });

  it('exits once pollers are gone and the queue is empty; then refuses messages', () => {
    const h = createTestHarness({ reactors: 1 });
    const t = h.createThread('worker');
    h.setThread(t);
    const p = registerPoller(() => POLLER_IDLE, 0, 'spin');
    let exited = false;
    t.exit(() => {
      exited = true;
    });
    h.pollThreads();
    expect(exited).to.equal(false);
    expect(t.exitBlocker()).to.match(/poller/);
    h.setThread(t);
    p.unregister();
    h.pollThreads();
    expect(exited).to.equal(true);
    expect(t.exited).to.equal(true);
    expect(h.reactors[0].threads).to.not.include(t);
    expect(() => t.sendMsg(() => {}))
      .to.throw(ReactorError)
      .with.property('code', 'ESHUTDOWN');
    h.close();
  });

  it('exit must be called on the thread itself', () => {
    const h = createTestHarness({ reactors: 2 });
    h.setThread(0);
    expect(() => h.threads[1].exit())
      .to.throw(ReactorError)
      .with.property('code', 'EWRONGTHREAD');
    h.close();
  });

  it('accounts busy and idle ticks per thread', () => {
    const h = createTestHarness();
    const t = h.threads[0];
    // The fake clock does not move inside poll, so drive a clock that does.
    let work = false;
    h.setThread(t);
    const p = registerPoller(() => {
      if (work) h.advanceTime(10);
      return work ? POLLER_BUSY : POLLER_IDLE;
    });
    work = true;
    h.pollThread(0);
    work = false;
    h.pollThread(0);
    expect(t.busyTicks).to.equal(10);
    expect(t.idleTicks).to.equal(0);
    expect(p.runCount).to.equal(2);
    expect(p.busyCount).to.equal(1);
    h.setThread(t);
    p.unregister();
    h.close();
  });
});

describe('Pollers', () => {
  it('active pollers run every iteration in registration order', () => {
    const h = createTestHarness();
    const order: string[] = [];
    const a = registerPoller(() => rec(order, 'a', POLLER_IDLE), 0, 'a');
    const b = registerPoller(() => rec(order, 'b', POLLER_BUSY), 0, 'b');
    expect(h.pollThread(0)).to.equal(1);
    h.pollThread(0);
    expect(order).to.deep.equal(['a', 'b', 'a', 'b']);
    a.unregister();
    b.unregister();
    h.close();
  });

  it('timed pollers run when due, in deadline order, ties in registration order', () => {
    const h = createTestHarness();
    const order: string[] = [];
    const mk = (name: string, us: number) => registerPoller(() => rec(order, name, POLLER_BUSY), us, name);
    const ps = [mk('p300', 300), mk('p100', 100), mk('p200', 200), mk('q100', 100)];
    h.pollThreads();
    expect(order).to.deep.equal([]);
    h.advanceTime(99);
    h.pollThreads();
    expect(order).to.deep.equal([]);
    h.advanceTime(1);
    h.pollThreads();
    expect(order).to.deep.equal(['p100', 'q100']);
    h.advanceTime(250);
    h.pollOnce();
    // At t=350: p200 (due 200), p100 and q100 (due 200, registered later), p300 (due 300).
    expect(order.slice(2)).to.deep.equal(['p100', 'p200', 'q100', 'p300']);
    for (const p of ps) p.unregister();
    h.close();
  });

  it('a timed poller runs once per elapsed period, rescheduled from the poll time', () => {
    const h = createTestHarness();
    let runs = 0;
    const p = registerPoller(
      () => {
        runs++;
        return POLLER_IDLE;
      },
      1000,
      'ms',
    );
    for (let i = 0; i < 10; i++) {
      h.advanceTime(1000);
      h.pollOnce();
    }
    expect(runs).to.equal(10);
    // A late poll runs it once, not once per missed period.
    h.advanceTime(5000);
    h.pollOnce();
    expect(runs).to.equal(11);
    p.unregister();
    h.close();
  });

  it('pause and resume, also from inside the callback; resume restarts the period', () => {
    const h = createTestHarness();
    let runs = 0;
    const p = registerPoller(
      () => {
        runs++;
        p.pause();
        return POLLER_BUSY;
      },
      10,
      'once',
    );
    const q = registerPoller(
      () => {
        runs += 100;
        return POLLER_IDLE;
      },
      0,
      'active',
    );
    q.pause();
    expect(p.paused).to.equal(false);
    h.advanceTime(10);
    h.pollThreads();
    expect(runs).to.equal(1);
    expect(p.paused).to.equal(true);
    h.advanceTime(100);
    h.pollThreads();
    expect(runs).to.equal(1);
    h.setThread(0);
    p.resume();
    q.resume();
    h.pollOnce();
    expect(runs).to.equal(101);
    h.advanceTime(10);
    h.pollOnce();
    expect(runs).to.equal(202);
    const lists = h.threads[0].pollers();
    expect(lists.paused.map((x) => x.name)).to.deep.equal(['once']);
    expect(lists.active.map((x) => x.name)).to.deep.equal(['active']);
    h.setThread(0);
    p.unregister();
    q.unregister();
    h.close();
  });

  it('unregister from inside its own callback and of a later poller in the same pass', () => {
    const h = createTestHarness();
    const order: string[] = [];
    let b: ReturnType<typeof registerPoller> | null = null;
    const a = registerPoller(
      () => {
        order.push('a');
        a.unregister();
        b!.unregister();
        return POLLER_BUSY;
      },
      0,
      'a',
    );
    b = registerPoller(() => rec(order, 'b', POLLER_BUSY), 0, 'b');
    const c = registerPoller(() => rec(order, 'c', POLLER_IDLE), 0, 'c');
    h.pollOnce();
    h.pollOnce();
    expect(order).to.deep.equal(['a', 'c', 'c']);
    expect(a.registered).to.equal(false);
    c.unregister();
    h.close();
  });

  it('rejects bad periods and calls from another thread with typed errors', () => {
    const h = createTestHarness({ reactors: 2 });
    expect(() => registerPoller(() => 0, -1))
      .to.throw(ReactorError)
      .with.property('code', 'EINVAL');
    expect(() => registerPoller(() => 0, Number.NaN))
      .to.throw(ReactorError)
      .with.property('code', 'EINVAL');
    const p = registerPoller(() => 0, 5, 'x');
    h.setThread(1);
    expect(() => p.pause())
      .to.throw(ReactorError)
      .with.property('code', 'EWRONGTHREAD');
    h.setThread(null);
    expect(() => registerPoller(() => 0))
      .to.throw(ReactorError)
      .with.property('code', 'ENOTHREAD');
    h.setThread(0);
    p.unregister();
    h.close();
  });

  it('matches a model of timed-poller scheduling (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 40 }),
        (periods, steps) => {
          const h = createTestHarness();
          const runs: number[] = periods.map(() => 0);
          const ps = periods.map((us, i) => registerPoller(() => bump(runs, i, POLLER_IDLE), us, `p${i}`));
          // Model: each poller's next due time; a poll at t runs those due and reschedules t + period.
          const due = periods.map((us) => us);
          const model = periods.map(() => 0);
          let now = 0;
          for (const s of steps) {
            h.advanceTime(s);
            now += s;
            h.pollOnce();
            for (let i = 0; i < periods.length; i++) {
              if (due[i] <= now) {
                model[i]++;
                due[i] = now + periods[i];
              }
            }
          }
          expect(runs).to.deep.equal(model);
          h.setThread(0);
          for (const p of ps) p.unregister();
          h.close();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('times poller runs into busy and idle ticks when asked', () => {
    const h = createTestHarness({ pollerTicks: true });
    let work = 0;
    const p = registerPoller(
      () => {
        h.advanceTime(work);
        return work > 0 ? POLLER_BUSY : POLLER_IDLE;
      },
      0,
      'timed',
    );
    work = 7;
    h.pollOnce();
    work = 0;
    h.pollOnce();
    expect([p.busyTicks, p.idleTicks]).to.deep.equal([7, 0]);
    const q = registerPoller(
      () => {
        h.advanceTime(3);
        return POLLER_IDLE;
      },
      10,
      'periodic',
    );
    h.advanceTime(10);
    h.pollOnce();
    expect([q.busyTicks, q.idleTicks]).to.deep.equal([0, 3]);
    expect(threadPollers(h.threads[0]).timed_pollers[0]).to.include({
      name: 'periodic',
      idle_ticks: 3,
      period_ticks: 10,
    });
    p.unregister();
    q.unregister();
    h.close();
  });

  it('busy loop detection in pollThreads', () => {
    const h = createTestHarness({ maxRounds: 50 });
    const p = registerPoller(() => POLLER_BUSY, 0, 'hog');
    expect(() => h.pollThreads())
      .to.throw(ReactorError)
      .with.property('code', 'EBUSYLOOP');
    p.unregister();
    h.close();
  });

  it('harness close reports leaked pollers', () => {
    const h = createTestHarness();
    registerPoller(() => POLLER_IDLE, 0, 'leaky');
    expect(() => h.close())
      .to.throw(ReactorError)
      .with.property('code', 'ELEAK');
  });
});
