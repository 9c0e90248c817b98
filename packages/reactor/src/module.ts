// @storkit/reactor/module: for code that drives reactors itself (a custom loop, a transport that
// feeds messages in as a reactor source). Consumers use '@storkit/reactor'.
export { setCurrentThread } from './current.js';
export { type LocalReactor, localReactors, localThreads } from './local-reactors.js';
export { MsgQueue } from './msg-queue.js';
export { Reactor, type ReactorOptions, type ReactorSource } from './reactor.js';
export type { ThreadHost } from './thread.js';
