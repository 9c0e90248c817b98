import { ManualClock } from './clock.js';
import { setCurrentThread } from './current.js';
import { ReactorError } from './errors.js';
import { Reactor } from './reactor.js';
import type { Thread } from './thread.js';

export { ManualClock } from './clock.js';

export interface TestHarnessOptions {
  /** Simulated reactors; each gets one thread ("app_thread" on reactor 0, "reactor_N" on the others). */
  reactors?: number;
  /** Ticks per second of the fake clock; the default 1e6 makes one tick one microsecond. */
  tickRate?: number;
  /** pollThreads() gives up with EBUSYLOOP after this many rounds in which something stayed busy. */
  maxRounds?: number;
  /** Time every poller run into poller.busyTicks / idleTicks. */
  pollerTicks?: boolean;
}

/**
 * N reactors and their threads in one process, polled explicitly, with a fake clock: the
 * framework's own code (Thread, Poller, io_channel, forEachChannel) runs unchanged, so timing and
 * ordering tests are exact (SPDK's ut_multithread, Seastar's manual_clock).
 */
export class TestHarness {
  readonly clock: ManualClock;
  readonly reactors: Reactor[] = [];
  /** Every thread created through the harness, in creation order; index = setThread() index. */
  readonly threads: Thread[] = [];
  readonly #maxRounds: number;
  #nextId = 1;
  #closed = false;

  constructor(opts: TestHarnessOptions = {}) {
    const n = opts.reactors ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new ReactorError('EINVAL', `reactors must be >= 1, got ${n}`);
    this.clock = new ManualClock(opts.tickRate ?? 1_000_000);
    this.#maxRounds = opts.maxRounds ?? 100_000;
    for (let i = 0; i < n; i++) {
      const r = new Reactor({ index: i, clock: this.clock, allocThreadId: () => this.#nextId++ });
      r.pollerTicks = opts.pollerTicks ?? false;
      this.reactors.push(r);
    }
    for (let i = 0; i < n; i++) this.createThread(i === 0 ? 'app_thread' : `reactor_${i}`, i);
    this.setThread(0);
    openHarnesses.add(this);
  }

  /** Create another thread on reactor `reactor`; returns it (its index is threads.length - 1). */
  createThread(name: string, reactor = 0): Thread {
    const r = this.reactors[reactor];
    if (r === undefined) throw new ReactorError('ENOENT', `no reactor ${reactor}`);
    const t = r.createThread(name);
    this.threads.push(t);
    return t;
  }

  /** Make thread `i` (an index into threads, or the thread) current for code the test runs directly. */
  setThread(i: number | Thread | null): void {
    if (i === null) {
      setCurrentThread(null);
      return;
    }
    const t = typeof i === 'number' ? this.threads[i] : i;
    if (t === undefined) throw new ReactorError('ENOENT', `no thread ${i}`);
    setCurrentThread(t);
  }

  /** Poll thread `i` once at the current fake time; returns its busy count. */
  pollThread(i: number): number {
    const t = this.threads[i];
    if (t === undefined) throw new ReactorError('ENOENT', `no thread ${i}`);
    return t.poll(this.clock.now());
  }

  /** Poll every reactor once (sources, then each of its threads). Returns the total busy count. */
  pollOnce(): number {
    let busy = 0;
    for (const r of this.reactors) busy += r.poll(this.clock.now());
    return busy;
  }

  /**
   * Poll all reactors until nothing is busy: every message sent, also in reply, has run. An
   * active poller that always reports busy makes this throw EBUSYLOOP; use pollOnce then.
   */
  pollThreads(): void {
    for (let round = 0; round < this.#maxRounds; round++) {
      if (this.pollOnce() === 0) return;
    }
    throw new ReactorError('EBUSYLOOP', `threads still busy after ${this.#maxRounds} rounds`);
  }

  /**
   * Poll round by round, the fake clock advancing `stepUs` per round, until `pred` holds. Throws
   * EBUSYLOOP naming `what` after `rounds` rounds (an answer that never comes, not a busy poller).
   */
  until(pred: () => boolean, what = 'condition', rounds = 2_000_000, stepUs = 10): void {
    for (let i = 0; i < rounds; i++) {
      if (pred()) return;
      this.pollOnce();
      this.advanceTime(stepUs);
    }
    throw new ReactorError('EBUSYLOOP', `${what} not reached after ${rounds} rounds`);
  }

  /**
   * Run a callback-style call on thread `t` and poll until it answers: returns its value, or
   * throws the error it answered with. Thread `t` is current again when this returns.
   */
  run<T = unknown>(f: (cb: (err: Error | null, v?: T) => void) => void, t = 0): T {
    let out: { err: Error | null; v?: T } | null = null;
    this.setThread(t);
    f((err, v) => {
      out = { err, v };
    });
    this.until(() => out !== null, 'callback');
    this.setThread(t);
    const o = out as unknown as { err: Error | null; v?: T };
    if (o.err !== null) throw o.err;
    return o.v as T;
  }

  /** Like run, but returns the error the call answered with (null on success). */
  runErr(f: (cb: (err: Error | null) => void) => void, t = 0): Error | null {
    try {
      this.run(f, t);
      return null;
    } catch (e) {
      return e as Error;
    }
  }

  /** Move the fake clock forward; timed pollers fall due on the next poll. */
  advanceTime(us: number): void {
    this.clock.advance(us);
  }

  /** Fake time in microseconds since the harness started. */
  get nowUs(): number {
    return (this.clock.now() * 1e6) / this.clock.rate;
  }

  /**
   * Ask every live thread to exit and poll until they have. Throws ELEAK naming what each
   * remaining thread still holds (registered pollers, io_channels) so tests catch leaks.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openHarnesses.delete(this);
    for (const r of this.reactors) {
      for (const t of [...r.threads]) {
        setCurrentThread(t);
        t.exit();
      }
    }
    setCurrentThread(null);
    for (let round = 0; round < 1000; round++) {
      this.pollOnce();
      if (this.reactors.every((r) => r.threads.length === 0)) break;
    }
    const left = this.reactors.flatMap((r) => r.threads.map((t) => `${t.name}: ${t.exitBlocker()}`));
    for (const r of this.reactors) r.close();
    setCurrentThread(null);
    if (left.length > 0) throw new ReactorError('ELEAK', `threads could not exit: ${left.join('; ')}`);
  }
}

/** Harnesses not closed yet, for closeTestHarnesses. */
const openHarnesses = new Set<TestHarness>();

/**
 * Close every harness still open, for an afterEach hook inside a describe block: a test that
 * failed before its own close() leaves nothing behind for the next. What they leak is not thrown
 * (that test already failed); a test that passes closes its harness itself, where a leak fails it.
 * Never from a root hook (a file's top-level afterEach runs after every test of every file in
 * the process): it would close other files' harnesses still in use.
 */
export function closeTestHarnesses(): void {
  for (const h of [...openHarnesses]) {
    try {
      h.close();
    } catch {
      // the failed test's own leak
    }
  }
}

/** Create a deterministic multi-reactor harness for tests. */
export function createTestHarness(opts: TestHarnessOptions = {}): TestHarness {
  return new TestHarness(opts);
}
