import { connect } from 'node:net';

import { expect } from 'chai';

import { type App, type AppResult, startApp } from '../src/index.js';
import type { Scenario } from './fixtures/app-traffic.js';

const MAIN = new URL('./fixtures/app-traffic.js', import.meta.url);

interface Run {
  app: App;
  reports: unknown[];
  next(pred: (r: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

async function run(
  scenario: Scenario,
  loop: Parameters<typeof startApp>[0]['loop'] = {},
  cores: number[] = [0, 1],
): Promise<Run> {
  const reports: unknown[] = [];
  const waiters: {
    pred: (r: Record<string, unknown>) => boolean;
    resolve: (r: Record<string, unknown>) => void;
  }[] = [];
  const onReport = (v: unknown) => {
    reports.push(v);
    for (const w of [...waiters]) {
      if (w.pred(v as Record<string, unknown>)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(v as Record<string, unknown>);
      }
    }
  };
  // Pinned when every reactor has its own CPU; bigger meshes share the two CPUs unpinned.
  const pin = new Set(cores).size === cores.length;
  const app = await startApp({ cores, pin, main: MAIN, mainArg: scenario, loop, signals: false, onReport });
  return {
    app,
    reports,
    next: (pred) =>
      new Promise((resolve, reject) => {
        const hit = (reports as Record<string, unknown>[]).find(pred);
        if (hit) return resolve(hit);
        waiters.push({ pred, resolve });
        void app.done.then((r) => reject(new Error(`app ended first: ${JSON.stringify(r)}`)));
      }),
  };
}

/** Polls `cond` until it holds (a state, not a time: the machine may be slow). */
async function until(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 5));
}

function expectClean(r: AppResult): void {
  expect(r.error).to.equal(undefined);
  expect(r.leaked).to.deep.equal([]);
  expect(r.code).to.equal(0);
}

describe('startApp: reactors in pinned workers', function () {
  this.timeout(60_000);

  it('streams 2 M messages between two reactors in order, checksummed, then stops via appStop', async () => {
    const n = 2_000_000;
    const { app, next } = await run({ kind: 'stream', count: n });
    const r = await next((x) => x.kind === 'stream');
    expect(r.count).to.equal(n);
    expect(r.outOfOrder).to.equal(0);
    let sum = 0;
    for (let i = 0; i < n; i++) sum = (sum + i) | 0;
    expect(r.sum).to.equal(sum);
    expectClean(await app.done);
    expect(app.workers.every((w) => w.threadId === -1)).to.equal(true);
  });

  it('loses no wake-up: 5000 ping-pongs with both reactors sleeping whenever idle', async () => {
    const { app, next } = await run({ kind: 'pingpong', count: 5000 }, { idleUs: 0 });
    const r = await next((x) => x.kind === 'pingpong');
    expect(r.rounds).to.equal(5000);
    const snaps = await app.snapshot();
    // Each side went to sleep between messages many times and was woken by the other.
    for (const s of snaps) expect(s.reactor.sleeps).to.be.greaterThan(100);
    expectClean(await app.stop(0));
  });

  it('a timed poller wakes a sleeping reactor on time', async () => {
    const { app, next } = await run({ kind: 'timer', periodUs: 5000, durationUs: 200_000 });
    const r = await next((x) => x.kind === 'timer');
    // 200 ms / 5 ms = 40 runs at most (never early); a loaded machine may delay some, so the
    // count, not the time, is checked: the reactor slept between runs and was woken for them.
    expect(r.runs as number).to.be.within(1, 41);
    const snaps = await app.snapshot();
    expect(snaps[0].reactor.sleeps).to.be.at.least(r.runs as number);
    expectClean(await app.stop(0));
  });

  it('an idle reactor with a sub-millisecond timer sleeps instead of spinning', async () => {
    // V8 rounds waitAsync timeouts to whole ms: a 200 us sleep would return at once, ~60 k times a
    // second. The loop sleeps at least 1 ms, so the 200 us poller runs about once a millisecond.
    const { app, next } = await run({ kind: 'timer', periodUs: 200, durationUs: 300_000 });
    const r = await next((x) => x.kind === 'timer');
    const snaps = await app.snapshot();
    // Spinning would mean tens of thousands of runs in 300 ms; sleeping at least 1 ms allows ~300.
    expect(snaps[0].reactor.sleeps).to.be.within(1, 2000);
    expect(r.runs as number).to.be.within(1, 1500);
    expectClean(await app.stop(0));
  });

  it('forEachChannelGlobal visits the device instance of every reactor, then completes on the app thread', async () => {
    const { app, next } = await run({ kind: 'walk' });
    const r = await next((x) => x.kind === 'walk');
    expect(r.status).to.equal(0);
    expect(r.visited).to.deep.equal(['0:app_thread', '1:reactor_1']);
    const snaps = await app.snapshot();
    expect(snaps.map((s) => s.channels[0].io_channels)).to.deep.equal([
      [{ name: 'test.counter', ref: 1 }],
      [{ name: 'test.counter', ref: 1 }],
    ]);
    expectClean(await app.stop(0));
  });

  it('shuts down with messages in flight: fini in reverse order on every reactor, nothing leaked', async () => {
    const { app, next, reports } = await run({ kind: 'idle' });
    await next((x) => x.kind === 'idle');
    await until(async () => {
      const s = (await app.snapshot())[0];
      return s.reactor.messages_out > 0 && s.pollers[0].active_pollers.some((p) => p.name === 'traffic');
    });
    const snaps = await app.snapshot();
    expect(snaps[0].reactor.messages_out).to.be.greaterThan(0);
    expect(snaps[0].pollers[0].active_pollers.map((p) => p.name)).to.include('traffic');
    expectClean(await app.stop(0));
    const fini = (reports as Record<string, unknown>[]).filter((x) => 'fini' in x || x.kind === 'traffic');
    for (const r of [0, 1]) {
      const order = fini.filter((x) => x.reactor === r).map((x) => (x.fini as string) ?? x.kind);
      expect(order).to.deep.equal(['traffic', 'second', 'first']);
    }
    const traffic = fini.filter((x) => x.kind === 'traffic');
    for (const t of traffic) expect(t.got as number).to.be.greaterThan(0);
    expect(app.workers.every((w) => w.threadId === -1)).to.equal(true);
  });

  it('answers framework_get_reactors / thread_get_stats / thread_get_pollers / thread_get_io_channels', async () => {
    const { app, next } = await run({ kind: 'timer', periodUs: 5000, durationUs: 600_000 });
    await until(async () =>
      (await app.getPollers()).threads[0].timed_pollers.some((p) => p.name === 'tick' && p.run_count > 0),
    );
    const reactors = await app.getReactors();
    expect(reactors.tick_rate).to.be.greaterThan(0);
    expect(reactors.reactors.map((r) => r.lcore)).to.deep.equal([0, 1]);
    expect(reactors.reactors.map((r) => r.lw_threads.map((t) => t.name))).to.deep.equal([
      ['app_thread'],
      ['reactor_1'],
    ]);
    expect(reactors.reactors[1].lw_threads[0].cpumask).to.equal('0x2');
    const stats = await app.getThreadStats();
    expect(stats.threads.map((t) => [t.id, t.timed_pollers_count])).to.deep.equal([
      [1, 2],
      [2, 0],
    ]);
    const pollers = await app.getPollers();
    const tick = pollers.threads[0].timed_pollers.find((p) => p.name === 'tick')!;
    expect(tick.run_count).to.be.greaterThan(0);
    expect(tick.period_ticks).to.equal(Math.round((5000 * pollers.tick_rate) / 1e6));
    const chans = await app.getIoChannels();
    expect(chans.threads.map((t) => t.io_channels)).to.deep.equal([
      [{ name: 'test.counter', ref: 1 }],
      [{ name: 'test.counter', ref: 1 }],
    ]);
    const done = next((x) => x.kind === 'timer');
    void done.catch(() => {});
    expectClean(await app.stop(0));
  });

  it('a main that throws stops the app with code 1', async () => {
    const app = await startApp({ cores: [0, 1], main: MAIN, mainArg: { kind: 'throw' }, signals: false });
    const r = await app.done;
    expect(r.code).to.equal(1);
    expect(r.error).to.match(/main failed on purpose/);
  });

  for (const busy of [true, false]) {
    it(`keeps libuv working in the worker (socket, setTimeout) while ${busy ? 'polling busy' : 'asleep'}`, async () => {
      const { app, next } = await run({ kind: 'net', busy });
      const { port } = await next((x) => x.kind === 'net');
      // The worker's timer fired (it reports so), then, when that is what is tested, the reactor
      // is asleep before the client connects: states, not times.
      await next((x) => x.kind === 'net-timer');
      if (!busy) await until(async () => (await app.snapshot())[0].reactor.sleeps > 0);
      const reply = await new Promise<string>((resolve, reject) => {
        const c = connect(port as number, '127.0.0.1', () => c.write('hello'));
        let buf = '';
        c.on('data', (d) => {
          buf += d.toString();
        });
        c.on('end', () => resolve(buf));
        c.on('error', reject);
      });
      expect(reply).to.equal('HELLO timer=true');
      const snaps = await app.snapshot();
      if (!busy) expect(snaps[0].reactor.sleeps).to.be.greaterThan(0);
      expectClean(await app.stop(0));
    });
  }

  it('native sockets: bytes that arrive while the reactor sleeps wake it (not its 60 s sleep timeout)', async () => {
    // Long sleeps: without the socket group's waiter, a reply would wait up to maxSleepUs (1 s).
    // A sleep of up to 60 s: a reply that did not wake the reactor would time the test out.
    const { app, next } = await run({ kind: 'sock' }, { maxSleepUs: 60_000_000 });
    const { port } = await next((x) => x.kind === 'sock');
    const c = connect(port as number, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const closed = new Promise((r) => c.once('close', r)); // the host closes it after '!'
    let buf = '';
    for (const word of ['hello', 'again', 'bye!']) {
      // Until the reactor is asleep again (its state, not a time).
      while (!(await app.snapshot())[0].reactor.in_interrupt) await new Promise((r) => setTimeout(r, 5));
      const reply = new Promise<void>((resolve) => {
        const on = (d: Buffer) => {
          buf += d.toString();
          if (buf.endsWith(word.toUpperCase())) {
            c.off('data', on);
            resolve();
          }
        };
        c.on('data', on);
      });
      c.write(word);
      await reply;
    }
    // Each word was answered by a reactor asleep for up to 60 s: the socket woke it.
    expect(buf).to.equal('HELLOAGAINBYE!');
    await closed;
    expect(await next((x) => x.kind === 'sock-closed')).to.include({ got: 14, accepted: 1 });
    expectClean(await app.stop(0));
  });

  it('yieldIdleUs: an idle reactor gives libuv its turn at once, however long the slice', async () => {
    // 60 s slices and no sleep: without the idle yield the socket would wait out a whole slice,
    // and the test would time out.
    const { app, next } = await run(
      { kind: 'net', busy: false },
      { sliceUs: 60_000_000, idleUs: false, yieldIdleUs: 0 },
    );
    const { port } = await next((x) => x.kind === 'net');
    await next((x) => x.kind === 'net-timer'); // the worker's timer fired: it is part of the reply
    const reply = await new Promise<string>((resolve, reject) => {
      const c = connect(port as number, '127.0.0.1', () => c.write('hello'));
      let buf = '';
      c.on('data', (d) => {
        buf += d.toString();
      });
      c.on('end', () => resolve(buf));
      c.on('error', reject);
    });
    expect(reply).to.equal('HELLO timer=true');
    expectClean(await app.stop(0));
  });

  it('a handler that throws on another reactor ends the app with code 1, promptly', async () => {
    const app = await startApp({
      cores: [0, 1],
      main: MAIN,
      mainArg: { kind: 'throw-remote' },
      signals: false,
    });
    const r = await app.done;
    expect(r.code).to.equal(1);
    expect(r.error).to.match(/handler failed on purpose/);
    expect(app.workers.every((w) => w.threadId === -1)).to.equal(true);
  });

  it('a subsystem whose init fails on one reactor stops the app with code 1, finishing only what started', async () => {
    const reports: Record<string, unknown>[] = [];
    const app = await startApp({
      cores: [0, 1],
      main: MAIN,
      mainArg: { kind: 'idle' },
      modules: [new URL('./fixtures/failing-subsystem.js', import.meta.url)],
      signals: false,
      onReport: (v) => reports.push(v as Record<string, unknown>),
    });
    const r = await app.done;
    expect(r.code).to.equal(1);
    expect(r.error).to.match(/no disk on reactor 1/);
    const fini = (reactor: number) =>
      reports.filter((x) => x.reactor === reactor && typeof x.fini === 'string').map((x) => x.fini);
    // Reactor 0 initialised everything; reactor 1 stopped at the failing subsystem.
    expect(fini(0)).to.deep.equal(['second', 'first', 'after-failing', 'failing']);
    expect(fini(1)).to.deep.equal([]);
  });

  it('full mesh of 4 (unpinned) reactors: every ordered pair carries its messages in order', async () => {
    const { app, reports, next } = await run({ kind: 'mesh', count: 20_000 }, {}, [0, 1, 0, 1]);
    for (let r = 0; r < 4; r++) await next((x) => x.kind === 'mesh' && x.reactor === r);
    const mesh = (reports as Record<string, unknown>[]).filter((x) => x.kind === 'mesh');
    expect(mesh.map((x) => [x.reactor, x.got, x.outOfOrder]).sort()).to.deep.equal([
      [0, 60_000, 0],
      [1, 60_000, 0],
      [2, 60_000, 0],
      [3, 60_000, 0],
    ]);
    expectClean(await app.stop(0));
  });

  it('walks channels across 4 reactors in reactor order', async () => {
    const { app, next } = await run({ kind: 'walk' }, {}, [0, 1, 0, 1]);
    const r = await next((x) => x.kind === 'walk');
    expect(r.visited).to.deep.equal(['0:app_thread', '1:reactor_1', '2:reactor_2', '3:reactor_3']);
    expectClean(await app.stop(0));
  });

  it('rejects bad core selections with EINVAL before starting anything', async () => {
    for (const opts of [{ cores: [0, 0] }, { cores: [99] }, { mask: '0x0' }, { mask: 'zz' }]) {
      try {
        await startApp({ ...opts, signals: false });
        expect.fail(`accepted ${JSON.stringify(opts)}`);
      } catch (e) {
        expect(e).to.have.property('code', 'EINVAL');
      }
    }
  });
});
