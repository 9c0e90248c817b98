// @storkit/reactor: the consumer API. Module authors who drive reactors themselves import
// '@storkit/reactor/module'; tests import '@storkit/reactor/testing' for the deterministic harness.
export { defer, registerPoller } from './api.js';
export { App, type AppOptions, type AppResult, startApp } from './app.js';
export { type Clock, ManualClock, realClock } from './clock.js';
export type { Codec } from './codec.js';
export * as codec from './codec.js';
export {
  type Control,
  type ControlDone,
  ControlError,
  type ControlFn,
  type ControlParams,
  type ControlResult,
  type ControlResultOf,
  declareControl,
  defineControl,
} from './control.js';
export { parseCoreMask } from './cores.js';
export { getThread } from './current.js';
export { ReactorError, type ReactorErrorCode } from './errors.js';
export { ChannelIter, forEachChannel } from './for-each-channel.js';
export {
  type ChannelIterator,
  defineChannelIterator,
  defineReactorStep,
  forEachChannelGlobal,
  forEachReactor,
  type ReactorStep,
} from './global-walk.js';
export { defineHandler, type Handler } from './handlers.js';
export type {
  PollerInfo,
  ReactorInfo,
  ThreadInfo,
  ThreadIoChannels,
  ThreadPollers,
  ThreadStats,
} from './introspect.js';
export {
  getIoChannel,
  IoChannel,
  type IoDeviceOps,
  ioDeviceByName,
  ioDeviceNames,
  ioDeviceRegister,
  ioDeviceUnregister,
} from './io-channel.js';
export type { LoopOptions } from './loop.js';
export type { MsgFn } from './msg-queue.js';
export { type OffloadOptions, OffloadPool } from './offload.js';
export { POLLER_BUSY, POLLER_IDLE, Poller, type PollerFn } from './poller.js';
export {
  appReport,
  appStop,
  createThread,
  reactorCore,
  reactorCount,
  reactorIndex,
  wakeReactor,
} from './runtime.js';
export { APP_THREAD, reactorThread, send, type ThreadRef, trySend } from './send.js';
export {
  SockConn,
  type SockConnectOptions,
  type SockConnHandler,
  SockHost,
  type SockHostOptions,
  type SockListenOptions,
} from './sock-host.js';
export { createThreadOn } from './spawn.js';
export { defineSubsystem, type Subsystem } from './subsystem.js';
export { MSG_BATCH, Thread } from './thread.js';
export type { ReactorSnapshot } from './worker-protocol.js';
