import { requireThread } from './current.js';
import { ReactorError } from './errors.js';
import { type IoChannel, type IoDevice, lookupDevice, maybeFinishUnregister } from './io-channel.js';
import { localThreads } from './local-reactors.js';
import type { Thread } from './thread.js';

/** The cursor a forEachChannel callback gets (spdk_io_channel_iter). */
export class ChannelIter<C = unknown, A = unknown> {
  /** The argument given to forEachChannel. */
  readonly arg: A;
  /** The thread that started the walk; done runs there. */
  readonly origin: Thread;
  /** @internal */ readonly dev: IoDevice<C>;
  /** The channel being visited (valid during the callback and until continue()). */
  channel!: IoChannel<C>;
  readonly #fn: (it: ChannelIter<C, A>) => void;
  readonly #done: (status: number, arg: A) => void;
  readonly #threads: Thread[];
  #next = 0;
  #status = 0;
  #finished = false;

  /** @internal */
  constructor(
    dev: IoDevice<C>,
    origin: Thread,
    threads: Thread[],
    fn: (it: ChannelIter<C, A>) => void,
    done: (status: number, arg: A) => void,
    arg: A,
  ) {
    this.dev = dev;
    this.origin = origin;
    this.#threads = threads;
    this.#fn = fn;
    this.#done = done;
    this.arg = arg;
  }

  get ctx(): C {
    return this.channel.ctx;
  }
  get thread(): Thread {
    return this.channel.thread;
  }

  /**
   * Move on (spdk_for_each_channel_continue), from the visited thread, now or later. A non-zero
   * status stops the walk and is handed to done.
   */
  continue(status = 0): void {
    if (this.#finished)
      throw new ReactorError('EINVAL', 'forEachChannel: continue() called twice at the end');
    this.#status = status;
    if (status !== 0) {
      for (let i = this.#next; i < this.#threads.length; i++) this.#threads[i].pendingIters--;
      this.#next = this.#threads.length;
    }
    this.#step();
  }

  /** @internal */
  _start(): void {
    this.#step();
  }

  #step(): void {
    if (this.#next < this.#threads.length) {
      const t = this.#threads[this.#next++];
      t.sendMsg(visit, this);
      return;
    }
    this.#finished = true;
    this.origin.sendMsg(complete, this);
  }

  /** @internal runs on the visited thread */
  _visit(): void {
    const t = this.#threads[this.#next - 1];
    t.pendingIters--;
    const ch = t.channels.get(this.dev.key) as IoChannel<C> | undefined;
    // The channel may have been released between the walk's start and this visit: skip it.
    if (ch === undefined || ch.destroyed) {
      this.#step();
      return;
    }
    this.channel = ch;
    this.#fn(this);
  }

  /** @internal runs on the origin thread */
  _complete(): void {
    this.dev.iterCount--;
    this.#done(this.#status, this.arg);
    maybeFinishUnregister(this.dev);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: walks of every context type share these two messages
type AnyIter = ChannelIter<any, any>;

function visit(it: AnyIter): void {
  it._visit();
}
function complete(it: AnyIter): void {
  it._complete();
}

/**
 * Visit every thread of this isolate that holds a channel to `device` when the walk starts
 * (spdk_for_each_channel), one at a time and each on its own thread; `fn` calls it.continue()
 * when done there. Then `done(status, arg)` runs on the calling thread. Never completes inside
 * this call. For walks that cross reactor workers, see forEachChannelGlobal.
 */
export function forEachChannel<C = unknown, A = undefined>(
  device: object,
  fn: (it: ChannelIter<C, A>) => void,
  done: (status: number, arg: A) => void,
  arg?: A,
): void {
  forEachChannelOn(-1, device, fn, done, arg as A);
}

/** @internal forEachChannel over the threads of one reactor (-1: every reactor of this isolate). */
export function forEachChannelOn<C, A>(
  reactor: number,
  device: object,
  fn: (it: ChannelIter<C, A>) => void,
  done: (status: number, arg: A) => void,
  arg: A,
): void {
  const origin = requireThread('forEachChannel');
  const dev = lookupDevice(device) as IoDevice<C>;
  const threads: Thread[] = [];
  for (const t of localThreads()) {
    if ((reactor < 0 || t.reactor === reactor) && t.channels.has(device)) {
      t.pendingIters++;
      threads.push(t);
    }
  }
  dev.iterCount++;
  new ChannelIter<C, A>(dev, origin, threads, fn, done, arg)._start();
}
