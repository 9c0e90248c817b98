import { expect } from 'chai';

import {
  forEachChannel,
  getIoChannel,
  getThread,
  type IoChannel,
  ioDeviceByName,
  ioDeviceRegister,
  ioDeviceUnregister,
  ReactorError,
} from '../src/index.js';
import { createTestHarness, type TestHarness } from '../src/testing.js';

let seq = 0;
function device(log: string[] = []) {
  const key = { id: ++seq };
  const name = `dev${seq}`;
  ioDeviceRegister<{ thread: number; hits: number }>(key, {
    name,
    create(ch) {
      log.push(`create@${ch.thread.id}`);
      return { thread: ch.thread.id, hits: 0 };
    },
    destroy(ch) {
      log.push(`destroy@${ch.thread.id}`);
    },
  });
  return { key, name, log };
}

function onThread<T>(h: TestHarness, i: number, fn: () => T): T {
  h.setThread(i);
  return fn();
}

describe('io_device and io_channel', () => {
  it('creates one channel per thread, ref-counted, destroyed after the last deferred put', () => {
    const h = createTestHarness({ reactors: 2 });
    const { key, log } = device();
    const a1 = onThread(h, 0, () => getIoChannel<{ thread: number }>(key));
    const a2 = onThread(h, 0, () => getIoChannel<{ thread: number }>(key));
    const b = onThread(h, 1, () => getIoChannel<{ thread: number }>(key));
    expect(a1).to.equal(a2);
    expect(a1.refCount).to.equal(2);
    expect(a1.ctx.thread).to.equal(h.threads[0].id);
    expect(b.ctx.thread).to.equal(h.threads[1].id);
    expect(log).to.deep.equal([`create@${h.threads[0].id}`, `create@${h.threads[1].id}`]);
    onThread(h, 0, () => a1.put());
    onThread(h, 0, () => a2.put());
    // Deferred: nothing is destroyed until thread 0 polls.
    expect(log).to.have.length(2);
    h.pollThreads();
    expect(log.slice(2)).to.deep.equal([`destroy@${h.threads[0].id}`]);
    onThread(h, 1, () => b.put());
    h.pollThreads();
    onThread(h, 0, () => ioDeviceUnregister(key));
    h.close();
  });

  it('a get right after a put reuses the channel instead of rebuilding it', () => {
    const h = createTestHarness();
    const { key, log } = device();
    const ch = getIoChannel(key);
    ch.put();
    const again = getIoChannel(key);
    h.pollThreads();
    expect(again).to.equal(ch);
    expect(log).to.have.length(1);
    again.put();
    h.pollThreads();
    expect(log).to.have.length(2);
    ioDeviceUnregister(key);
    h.close();
  });

  it('put on the wrong thread, unknown devices and duplicate names are typed errors', () => {
    const h = createTestHarness({ reactors: 2 });
    const { key, name } = device();
    const ch = onThread(h, 0, () => getIoChannel(key));
    h.setThread(1);
    expect(() => ch.put())
      .to.throw(ReactorError)
      .with.property('code', 'EWRONGTHREAD');
    expect(() => getIoChannel({}))
      .to.throw(ReactorError)
      .with.property('code', 'ENODEV');
    expect(() => ioDeviceRegister({}, { name, create: () => 0 }))
      .to.throw(ReactorError)
      .with.property('code', 'EEXIST');
    expect(() => ioDeviceRegister(key, { name: 'other', create: () => 0 }))
      .to.throw(ReactorError)
      .with.property('code', 'EEXIST');
    h.setThread(null);
    expect(() => getIoChannel(key))
      .to.throw(ReactorError)
      .with.property('code', 'ENOTHREAD');
    onThread(h, 0, () => ch.put());
    h.pollThreads();
    ioDeviceUnregister(key);
    h.close();
  });

  it('unregister completes on the caller thread only after the last channel is gone', () => {
    const h = createTestHarness({ reactors: 2 });
    const { key, name } = device();
    const ch = onThread(h, 1, () => getIoChannel(key));
    let done: unknown = null;
    onThread(h, 0, () =>
      ioDeviceUnregister(key, () => {
        done = getThread();
      }),
    );
    expect(ioDeviceByName(name)).to.equal(undefined);
    expect(() => onThread(h, 0, () => getIoChannel(key)))
      .to.throw(ReactorError)
      .with.property('code', 'ENODEV');
    h.pollThreads();
    expect(done).to.equal(null);
    onThread(h, 1, () => ch.put());
    h.pollThreads();
    expect(done).to.equal(h.threads[0]);
    h.close();
  });

  it('unregister with no channels still completes on a later poll, not inside the call', () => {
    const h = createTestHarness();
    const { key } = device();
    let done = false;
    ioDeviceUnregister(key, () => {
      done = true;
    });
    expect(done).to.equal(false);
    h.pollThreads();
    expect(done).to.equal(true);
    h.close();
  });

  it('a thread holding a channel cannot exit until it puts it', () => {
    const h = createTestHarness();
    const { key } = device();
    const t = h.createThread('holder');
    h.setThread(t);
    const ch = getIoChannel(key);
    t.exit();
    h.pollThreads();
    expect(t.exited).to.equal(false);
    expect(t.exitBlocker()).to.match(/io_channel/);
    h.setThread(t);
    ch.put();
    h.pollThreads();
    expect(t.exited).to.equal(true);
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
  });
});

describe('forEachChannel', () => {
  it('visits every thread holding a channel, on that thread, then completes on the caller', () => {
    const h = createTestHarness({ reactors: 3 });
    const extra = h.createThread('extra', 1);
    const { key } = device();
    const holders = [0, 2, 3];
    const chans = holders.map((i) => onThread(h, i, () => getIoChannel<{ hits: number }>(key)));
    const visited: number[] = [];
    let result: [number, unknown, string] | null = null;
    onThread(h, 1, () =>
      forEachChannel<{ hits: number }, string>(
        key,
        (it) => {
          expect(getThread()).to.equal(it.thread);
          it.ctx.hits++;
          visited.push(it.thread.id);
          it.continue();
        },
        (status, arg) => {
          result = [status, getThread(), arg];
        },
        'tag',
      ),
    );
    expect(visited).to.deep.equal([]);
    h.pollThreads();
    // Reactor by reactor: the extra thread lives on reactor 1, before reactor 2.
    expect(visited).to.deep.equal([h.threads[0].id, extra.id, h.threads[2].id]);
    expect(result).to.deep.equal([0, h.threads[1], 'tag']);
    expect(chans.map((c) => c.ctx.hits)).to.deep.equal([1, 1, 1]);
    for (const [k, i] of holders.entries()) onThread(h, i, () => chans[k].put());
    h.pollThreads();
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
  });

  it('a callback may continue later; a non-zero status stops the walk', () => {
    const h = createTestHarness({ reactors: 3 });
    const { key } = device();
    const chans = [0, 1, 2].map((i) => onThread(h, i, () => getIoChannel(key)));
    const visited: number[] = [];
    let status = -1;
    onThread(h, 0, () =>
      forEachChannel(
        key,
        (it) => {
          visited.push(it.thread.id);
          // Finish on a later message of the same thread, as an async step would.
          it.thread.sendMsg(() => it.continue(visited.length === 2 ? -5 : 0));
        },
        (s) => {
          status = s;
        },
      ),
    );
    h.pollThreads();
    expect(visited).to.have.length(2);
    expect(status).to.equal(-5);
    for (let i = 0; i < 3; i++) h.threads[i].sendMsg((c: IoChannel) => c.put(), chans[i]);
    h.pollThreads();
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
  });

  it('skips a channel released before its turn, and delays unregister until done', () => {
    const h = createTestHarness({ reactors: 2 });
    const { key } = device();
    const c0 = onThread(h, 0, () => getIoChannel(key));
    const c1 = onThread(h, 1, () => getIoChannel(key));
    const visited: number[] = [];
    let unregistered = false;
    let finished = false;
    onThread(h, 0, () =>
      forEachChannel(
        key,
        (it) => {
          visited.push(it.thread.id);
          it.continue();
        },
        () => {
          finished = true;
        },
      ),
    );
    onThread(h, 1, () => c1.put());
    onThread(h, 0, () => c0.put());
    onThread(h, 0, () =>
      ioDeviceUnregister(key, () => {
        unregistered = true;
      }),
    );
    h.pollThreads();
    expect(finished).to.equal(true);
    expect(unregistered).to.equal(true);
    // Thread 0 visited before its put ran; thread 1's channel was gone by its turn.
    expect(visited).to.deep.equal([h.threads[0].id]);
    h.close();
  });
});
