// @storkit/reactor: the consumer API (threads, pollers, messages, io_channels).
// Module authors who drive reactors themselves import '@storkit/reactor/module'; tests import
// '@storkit/reactor/testing' for the deterministic harness.
export { defer, registerPoller } from './api.js';
export { type Clock, ManualClock, realClock } from './clock.js';
export { getThread } from './current.js';
export { ReactorError, type ReactorErrorCode } from './errors.js';
export { ChannelIter, forEachChannel } from './for-each-channel.js';
export {
  getIoChannel,
  IoChannel,
  type IoDeviceOps,
  ioDeviceByName,
  ioDeviceNames,
  ioDeviceRegister,
  ioDeviceUnregister,
} from './io-channel.js';
export type { MsgFn } from './msg-queue.js';
export { POLLER_BUSY, POLLER_IDLE, Poller, type PollerFn } from './poller.js';
export { MSG_BATCH, Thread } from './thread.js';
