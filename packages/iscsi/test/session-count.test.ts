// max_sessions: the session count (one Int32 in a SharedArrayBuffer, Atomics) alone, across
// threads, and as the engine uses it: a target's own count, or one shared by several copies of a
// target (as the app's reactors share it), with refusals, logouts and reinstatement.
import { Worker } from 'node:worker_threads';

import { expect } from 'chai';

import { type IscsiTarget, LoginStatus, SessionCount, TOp } from '../src/index.js';
import { ramTarget, TestInitiator } from './initiator.js';

const status = (r: { bhs: Uint8Array }) => (r.bhs[36] << 8) | r.bhs[37];

/** ramTarget() with max_sessions `max`, counting sessions in `count` (its own when none). */
function target(max: number, count?: SessionCount): { target: IscsiTarget; iqn: string } {
  return ramTarget(512, 64, { max_sessions: max }, count);
}

function logout(i: TestInitiator): void {
  const rsp = i.logout(0x99);
  expect(rsp.opcode).to.equal(TOp.LogoutResponse);
  expect(i.closed).to.equal(true);
}

describe('iscsi: session count (max_sessions)', () => {
  it('claims up to the limit, refuses without counting, and counts again after a release', () => {
    const c = new SessionCount();
    expect(c.value).to.equal(0);
    expect([c.claim(3), c.claim(3), c.claim(3)]).to.deep.equal([true, true, true]);
    expect(c.claim(3)).to.equal(false);
    expect(c.value).to.equal(3);
    c.release();
    expect(c.value).to.equal(2);
    expect(c.claim(3)).to.equal(true);
    expect(c.claim(3)).to.equal(false);
    // A view of the same memory is the same count.
    const view = new SessionCount(c.sab);
    expect(view.value).to.equal(3);
    view.release();
    expect(c.value).to.equal(2);
    expect(() => new SessionCount(new ArrayBuffer(4) as unknown as SharedArrayBuffer)).to.throw(
      /SharedArrayBuffer/,
    );
  });

  it('never admits more than the limit when worker threads claim and release at once', async () => {
    const c = new SessionCount();
    const max = 5;
    const peak = new Int32Array(new SharedArrayBuffer(4));
    const url = new URL('../src/session-count.js', import.meta.url).href;
    const code = `
      const { workerData: w, parentPort } = require('node:worker_threads');
      import(w.url).then(({ SessionCount }) => {
        const c = new SessionCount(w.sab);
        const peak = new Int32Array(w.peak);
        let won = 0;
        for (let i = 0; i < 20000; i++) {
          if (!c.claim(w.max)) continue;
          won++;
          const v = c.value;
          if (v > Atomics.load(peak, 0)) Atomics.store(peak, 0, v);
          c.release();
        }
        parentPort.postMessage(won);
      });`;
    const wins = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<number>((resolve, reject) => {
            const w = new Worker(code, {
              eval: true,
              workerData: { url, sab: c.sab, peak: peak.buffer, max },
            });
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    expect(wins.every((n) => n > 0)).to.equal(true);
    expect(Atomics.load(peak, 0)).to.be.within(1, max);
    expect(c.value).to.equal(0);
  });

  it('a target alone: the session over max_sessions fails with Target Error / Out of resources', () => {
    const { target: t, iqn } = target(2);
    const a = new TestInitiator(t);
    const b = new TestInitiator(t);
    const c = new TestInitiator(t);
    expect(status(a.loginNormal(iqn, [], 1))).to.equal(0);
    // Discovery sessions count too (SPDK's session pool holds both kinds).
    const d = b.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['SessionType', 'Discovery'],
      ],
      1,
      3,
      true,
      2,
    );
    expect(status(d)).to.equal(0);
    expect(t.sessionCount.value).to.equal(2);
    const r = c.loginNormal(iqn, [], 3);
    expect(r.opcode).to.equal(TOp.LoginResponse);
    expect(r.bhs[36], 'status class: Target Error').to.equal(3);
    expect(r.bhs[37], 'status detail: Out of resources').to.equal(2);
    expect(status(r)).to.equal(LoginStatus.OutOfResources);
    expect((r.bhs[14] << 8) | r.bhs[15], 'TSIH').to.equal(0);
    expect(r.flags & 0x80, 'transit').to.equal(0);
    expect(c.closed).to.equal(true);
    expect(t.sessionCount.value).to.equal(2);
    expect(t.sessions.size).to.equal(2);
    // A logout gives the place back: the next login succeeds, and the one after is refused.
    logout(a);
    expect(t.sessionCount.value).to.equal(1);
    expect(status(new TestInitiator(t).loginNormal(iqn, [], 4))).to.equal(0);
    expect(status(new TestInitiator(t).loginNormal(iqn, [], 5))).to.equal(LoginStatus.OutOfResources);
    // Connections that go away without a logout give their places back too, once.
    t.close();
    expect(t.sessions.size).to.equal(0);
    expect(t.sessionCount.value).to.equal(0);
  });

  it('reinstatement at the limit replaces the session without a free place, and counts it once', () => {
    const { target: t, iqn } = target(2);
    const a = new TestInitiator(t);
    const b = new TestInitiator(t);
    expect(status(a.loginNormal(iqn, [], 7))).to.equal(0);
    expect(status(b.loginNormal(iqn, [], 8))).to.equal(0);
    const a2 = new TestInitiator(t);
    expect(status(a2.loginNormal(iqn, [], 7)), 'same ISID: reinstated').to.equal(0);
    expect(a.closed).to.equal(true);
    expect(a2.closed).to.equal(false);
    expect(t.sessions.size).to.equal(2);
    expect(t.sessionCount.value).to.equal(2);
    // Still full: the old session's end did not give a place back on top of the hand-over.
    expect(status(new TestInitiator(t).loginNormal(iqn, [], 9))).to.equal(LoginStatus.OutOfResources);
    a2.conn.drop('test');
    b.conn.drop('test');
    expect(t.sessionCount.value).to.equal(0);
  });

  it('copies of a target sharing one count enforce max_sessions over all of them', () => {
    const shared = new SessionCount();
    const r0 = target(3, new SessionCount(shared.sab));
    const r1 = target(3, new SessionCount(shared.sab));
    const on = (x: { target: IscsiTarget; iqn: string }, isid: number) => {
      const i = new TestInitiator(x.target);
      return { i, status: status(i.loginNormal(x.iqn, [], isid)) };
    };
    const s1 = on(r0, 1);
    const s2 = on(r1, 2);
    const s3 = on(r0, 3);
    expect([s1.status, s2.status, s3.status]).to.deep.equal([0, 0, 0]);
    expect(shared.value).to.equal(3);
    // Each copy alone is under the limit (2 and 1 sessions), the target as a whole is not.
    expect(on(r1, 4).status).to.equal(LoginStatus.OutOfResources);
    expect(on(r0, 5).status).to.equal(LoginStatus.OutOfResources);
    // A session ending on one copy lets a login on the other in.
    logout(s2.i);
    const s4 = on(r0, 6);
    expect(s4.status).to.equal(0);
    expect(r0.target.sessions.size + r1.target.sessions.size).to.equal(shared.value);
    r0.target.close();
    r1.target.close();
    expect(shared.value).to.equal(0);
  });

  it('the default limit (128) is per target and a failed login leaves the count unchanged', () => {
    const { target: t, iqn } = ramTarget();
    expect(t.options.max_sessions).to.equal(128);
    const bad = new TestInitiator(t);
    expect(status(bad.loginNormal('iqn.2016-06.io.spdk:nope'))).to.equal(LoginStatus.NotFound);
    expect(t.sessionCount.value).to.equal(0);
    const ok = new TestInitiator(t);
    expect(status(ok.loginNormal(iqn))).to.equal(0);
    expect(t.sessionCount.value).to.equal(1);
    expect(ramTarget().target.sessionCount.value, 'another target has its own count').to.equal(0);
    t.close();
  });
});
