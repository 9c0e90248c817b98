// A device that lives on every reactor: each worker registers its own instance under one name, and
// each thread that uses it gets a channel with a private counter (no sharing, no locks).
import {
  defineChannelIterator,
  defineSubsystem,
  getIoChannel,
  type IoChannel,
  ioDeviceRegister,
  ioDeviceUnregister,
} from '@storkit/reactor';

export interface CounterCtx {
  tokens: number;
}

export const COUNTER = 'hello.counter';
const key = { device: COUNTER };
let channel: IoChannel<CounterCtx> | null = null;

// The subsystem registers the device on each reactor at start and takes a channel for the
// reactor's first thread; at shutdown it releases both, in reverse.
defineSubsystem({
  name: 'hello.counter',
  init(done) {
    ioDeviceRegister<CounterCtx>(key, { name: COUNTER, create: () => ({ tokens: 0 }) });
    channel = getIoChannel<CounterCtx>(key);
    done();
  },
  fini(done) {
    channel?.put();
    channel = null;
    ioDeviceUnregister(key, done);
  },
});

/** This thread's counter channel (created on the subsystem's init). */
export function counter(): IoChannel<CounterCtx> {
  if (channel === null) throw new Error('hello.counter is not initialised on this reactor');
  return channel;
}

/** Adds up every reactor's counter: run with forEachChannelGlobal(COUNTER, sumCounters, ...). */
export const sumCounters = defineChannelIterator<{ total: number; perReactor: number[] }>(
  'hello.sum',
  (it) => {
    const ctx = it.ctx as CounterCtx;
    it.arg.total += ctx.tokens;
    it.arg.perReactor.push(ctx.tokens);
    it.continue();
  },
);
