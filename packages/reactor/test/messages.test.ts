import { expect } from 'chai';
import fc from 'fast-check';

import {
  type ChannelIter,
  type Codec,
  codec,
  createThreadOn,
  defineChannelIterator,
  defineHandler,
  forEachChannelGlobal,
  getIoChannel,
  getThread,
  ioDeviceRegister,
  ioDeviceUnregister,
  ReactorError,
  reactorThread,
  send,
  type ThreadRef,
  trySend,
} from '../src/index.js';
import { createMeshMemory, handlerId, MeshEndpoint, Reactor } from '../src/module.js';
import { createTestHarness, ManualClock } from '../src/testing.js';

function roundTrip<T>(c: Codec<T>, v: T): T {
  const n = c.words(v);
  const buf = new SharedArrayBuffer(4 * (n + 3));
  const w = new Int32Array(buf);
  const b = new Uint8Array(buf);
  c.encode(v, w, 2, b);
  return c.decode(w, 2, b);
}

describe('codecs', () => {
  it('round-trip every value (property)', () => {
    const s = codec.struct('t', { a: 'i32', b: 'u32', c: 'f64' });
    const j = codec.json<unknown>();
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.double(),
        fc.string(),
        fc.uint8Array({ maxLength: 64 }),
        fc.jsonValue(),
        (i, u, d, str, bytes, json) => {
          expect(roundTrip(codec.i32, i)).to.equal(i);
          expect(roundTrip(codec.u32, u)).to.equal(u);
          expect(Object.is(roundTrip(codec.float64, d), d)).to.equal(true);
          expect({ ...roundTrip(s, { a: i, b: u, c: d }) }).to.deep.equal({ a: i, b: u, c: d });
          expect(roundTrip(codec.utf8, str)).to.equal(str);
          expect([...roundTrip(codec.bytes, bytes)]).to.deep.equal([...bytes]);
          expect(roundTrip(j, json)).to.deep.equal(JSON.parse(JSON.stringify(json)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('struct decode reuses one object (no allocation per message)', () => {
    const s = codec.struct('reuse', { a: 'i32' });
    expect(roundTrip(s, { a: 1 })).to.equal(roundTrip(s, { a: 2 }));
  });
});

describe('handlers and send', () => {
  it('ids are a stable hash of the name; duplicates are EEXIST', () => {
    expect(handlerId('storkit.walk.step')).to.equal(handlerId('storkit.walk.step'));
    expect(handlerId('a')).to.not.equal(handlerId('b'));
    defineHandler('test.msg.dup', codec.none, () => {});
    expect(() => defineHandler('test.msg.dup', codec.none, () => {}))
      .to.throw(ReactorError)
      .with.property('code', 'EEXIST');
  });

  it('in the harness, send delivers on the target thread in order, never inside send', () => {
    const h = createTestHarness({ reactors: 3 });
    const seen: [number, number][] = [];
    const rec = defineHandler('test.msg.rec', codec.i32, (v) => seen.push([getThread()!.id, v]));
    h.setThread(0);
    for (let i = 0; i < 10; i++) send(reactorThread(2), rec, i);
    expect(trySend(reactorThread(1), rec, 99)).to.equal(true);
    expect(seen).to.deep.equal([]);
    h.pollThreads();
    expect(seen).to.deep.equal([
      [2, 99],
      ...Array.from({ length: 10 }, (_, i) => [3, i] as [number, number]),
    ]);
    expect(() => send({ id: 77, reactor: 1 }, rec, 0))
      .to.throw(ReactorError)
      .with.property('code', 'ESHUTDOWN');
    expect(() => send({ id: 1, reactor: 9 }, rec, 0))
      .to.throw(ReactorError)
      .with.property('code', 'ENOENT');
    h.close();
  });

  it('through a ring mesh in one isolate: order, backlog behind a full ring, trySend refusal', () => {
    // Two reactors wired by real rings, driven by hand: the transport path without workers.
    const sab = createMeshMemory(2, 8);
    const clock = new ManualClock();
    const a = new MeshEndpoint(sab, 0);
    const b = new MeshEndpoint(sab, 1);
    const rb = new Reactor({ index: 1, clock, allocThreadId: () => b.allocThreadId() });
    b.attach(rb);
    const t = rb.createThread('rx', 2);
    const got: number[] = [];
    const h = defineHandler('test.msg.ring', codec.u32, (v) => {
      expect(getThread()).to.equal(t);
      got.push(v);
    });
    const to = { id: 2, reactor: 1 };
    // 8 one-slot records fill the ring; the rest wait in the backlog, in order.
    for (let i = 0; i < 20; i++) a.send(to, h, i);
    expect(a.backlog).to.equal(12);
    expect(a.trySend(to, h, 999)).to.equal(false);
    a.flush();
    rb.poll();
    expect(got).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    for (let k = 0; k < 3; k++) {
      a.flush();
      rb.poll();
    }
    expect(got).to.deep.equal(Array.from({ length: 20 }, (_, i) => i));
    expect(a.backlog).to.equal(0);
    expect(a.trySend(to, h, 20)).to.equal(true);
    a.flush();
    rb.poll();
    expect(got.at(-1)).to.equal(20);
    // A record for a thread that is gone is dropped and counted, not delivered elsewhere.
    a.send({ id: 5, reactor: 1 }, h, 1);
    a.flush();
    rb.poll();
    expect(b.dropped).to.equal(1);
    expect(b.lastDrop).to.match(/not running here/);
    rb.close();
  });

  it('word payloads (none, i32, u32) cross a ring inline as their codecs would carry them (property)', () => {
    const sab = createMeshMemory(2, 16);
    const a = new MeshEndpoint(sab, 0);
    const b = new MeshEndpoint(sab, 1);
    const rb = new Reactor({ index: 1, clock: new ManualClock(), allocThreadId: () => b.allocThreadId() });
    b.attach(rb);
    rb.createThread('rx', 2);
    const got: unknown[] = [];
    const hi = defineHandler('test.msg.wire.i32', codec.i32, (v) => got.push(['i', v]));
    const hu = defineHandler('test.msg.wire.u32', codec.u32, (v) => got.push(['u', v]));
    const hn = defineHandler('test.msg.wire.none', codec.none, (v) => got.push(['n', v]));
    const hf = defineHandler('test.msg.wire.f64', codec.float64, (v) => got.push(['f', v]));
    const to = { id: 2, reactor: 1 };
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('i'), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
            fc.tuple(fc.constant('u'), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
            fc.tuple(fc.constant('n'), fc.constant(undefined)),
            fc.tuple(fc.constant('f'), fc.double({ noNaN: true })),
          ),
          { maxLength: 40 },
        ),
        (msgs) => {
          got.length = 0;
          for (const [k, v] of msgs) {
            if (k === 'i') a.send(to, hi, v as number);
            else if (k === 'u') a.send(to, hu, v as number);
            else if (k === 'n') a.send(to, hn, undefined);
            else a.send(to, hf, v as number);
          }
          for (let r = 0; r < 20 && got.length < msgs.length; r++) {
            a.flush();
            rb.poll();
          }
          expect(got).to.deep.equal(msgs);
          expect(a.backlog).to.equal(0);
        },
      ),
      { numRuns: 200 },
    );
    expect(b.dropped).to.equal(0);
    rb.close();
  });

  it('oversize payloads are EMSGSIZE at send time', () => {
    const sab = createMeshMemory(2, 8);
    const a = new MeshEndpoint(sab, 0);
    const big = defineHandler('test.msg.big', codec.bytes, () => {});
    expect(() => a.send({ id: 2, reactor: 1 }, big, new Uint8Array(1000)))
      .to.throw(ReactorError)
      .with.property('code', 'EMSGSIZE');
  });
});

describe('createThreadOn', () => {
  it('creates a thread on another reactor and answers on the caller with a usable ref', () => {
    const h = createTestHarness({ reactors: 2 });
    const ran: number[] = [];
    const hello = defineHandler('test.msg.hello', codec.none, () => ran.push(getThread()!.reactor));
    let ref: ThreadRef | null = null;
    let on: unknown = null;
    h.setThread(0);
    createThreadOn(1, 'poll_group_1', (err, t) => {
      expect(err).to.equal(null);
      ref = t;
      on = getThread();
      send(t!, hello, undefined);
    });
    h.pollThreads();
    expect(on).to.equal(h.threads[0]);
    expect(ref).to.deep.include({ reactor: 1 });
    expect(h.reactors[1].threads.map((t) => t.name)).to.deep.equal(['reactor_1', 'poll_group_1']);
    expect(ran).to.deep.equal([1]);
    expect(() => createThreadOn(5, 'x', () => {}))
      .to.throw(ReactorError)
      .with.property('code', 'ENOENT');
    // The harness only tracks threads it created itself: exit the new one by hand.
    const t = h.reactors[1].threads[1];
    t.sendMsg(() => t.exit());
    h.pollThreads();
    h.close();
  });
});

describe('forEachChannelGlobal in the harness', () => {
  const it3 = defineChannelIterator<{ visited: number[] }>(
    'test.msg.walk',
    (it: ChannelIter<unknown, { visited: number[] }>) => {
      it.arg.visited.push(it.thread.id);
      it.continue(it.arg.visited.length === 99 ? 1 : 0);
    },
  );

  it('walks reactor by reactor, each thread once, and completes on the caller', () => {
    const h = createTestHarness({ reactors: 3 });
    h.createThread('more', 1);
    const key = {};
    ioDeviceRegister(key, { name: 'test.msg.walkdev', create: () => null });
    const chans = [0, 1, 2, 3].map((i) => {
      h.setThread(i);
      return getIoChannel(key);
    });
    let result: { status: number; visited: number[]; thread: unknown } | null = null;
    h.setThread(2);
    forEachChannelGlobal('test.msg.walkdev', it3, { visited: [] as number[] }, (status, arg) => {
      result = { status, visited: arg.visited, thread: getThread() };
    });
    h.pollThreads();
    expect(result).to.deep.equal({ status: 0, visited: [1, 2, 4, 3], thread: h.threads[2] });
    chans.forEach((c, i) => {
      h.setThread(i);
      c.put();
    });
    h.pollThreads();
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
  });

  const seen: string[] = [];
  const it4 = defineChannelIterator<{ tag: string }>(
    'test.msg.walk_on_reactor',
    (it) => {
      seen.push(`${it.arg.tag} channel on ${it.thread.reactor}`);
      it.continue(0);
    },
    (arg, reactor) => seen.push(`${arg.tag} reactor ${reactor}`),
  );

  it('onReactor runs on every reactor as the walk reaches it, before its channels, also without any', () => {
    const h = createTestHarness({ reactors: 3 });
    const key = {};
    ioDeviceRegister(key, { name: 'test.msg.walkdev2', create: () => null });
    h.setThread(2);
    const c = getIoChannel(key); // only reactor 2 has a channel
    let done = false;
    h.setThread(0);
    forEachChannelGlobal('test.msg.walkdev2', it4, { tag: 'w' }, () => {
      done = true;
    });
    h.pollThreads();
    expect(done).to.equal(true);
    expect(seen).to.deep.equal(['w reactor 0', 'w reactor 1', 'w reactor 2', 'w channel on 2']);
    h.setThread(2);
    c.put();
    h.pollThreads();
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
  });
  it('a harness an earlier test left open does not stretch the walk past the reactors that run', () => {
    // Test files share one process: a harness never closed (a test that failed before its
    // close) keeps its reactor registered; the next harness's reactor 0 takes that index over.
    const leaked = createTestHarness({ reactors: 1 });
    const h = createTestHarness({ reactors: 2 });
    const key = {};
    ioDeviceRegister(key, { name: 'test.msg.walkdev3', create: () => null });
    let status: number | null = null;
    h.setThread(1);
    forEachChannelGlobal('test.msg.walkdev3', it4, { tag: 'l' }, (st) => {
      status = st;
    });
    h.pollThreads();
    expect(status).to.equal(0);
    expect(seen.filter((x) => x.startsWith('l '))).to.deep.equal(['l reactor 0', 'l reactor 1']);
    h.setThread(0);
    ioDeviceUnregister(key);
    h.close();
    leaked.close();
  });
});
