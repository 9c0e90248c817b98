// @storkit/reactor/module: for code that drives reactors itself (a custom loop, a transport that
// feeds messages in as a reactor source, introspection for the RPC layer). Consumers use
// '@storkit/reactor'.
export { setCurrentThread } from './current.js';
export { forEachChannelOn } from './for-each-channel.js';
export { handlerByName, handlerId, lookupHandler } from './handlers.js';
export {
  cpumask,
  reactorInfo,
  threadIoChannels,
  threadPollers,
  threadStats,
} from './introspect.js';
export { type LocalReactor, localReactor, localReactors, localThreads } from './local-reactors.js';
export { LOOP_DEFAULTS, ReactorLoop } from './loop.js';
export { createMeshMemory, MeshEndpoint, RX_BATCH } from './mesh.js';
export { MsgQueue } from './msg-queue.js';
export { Reactor, type ReactorOptions, type ReactorSource, type SleepHook } from './reactor.js';
export { RingConsumer, RingProducer, recordSlots, ringBytes, SLOT_BYTES } from './ring.js';
export { type RemoteTransport, setTransport } from './send.js';
export type { ThreadHost } from './thread.js';
export type { ReactorApi, WorkerInit } from './worker-protocol.js';
