export { ChapExchange, type ChapSecret, chapResponse } from './chap.js';
export {
  type AuthGroupParams,
  DEFAULT_OPTIONS,
  type DiscoveryAuthParams,
  type InitiatorGroupParams,
  type IscsiOptions,
  type Portal,
  type PortalGroupParams,
  type TargetLunParams,
  type TargetNodeParams,
} from './config.js';
export { Connection, type ConnectionInfo, type ConnectionState, type PduSink } from './connection.js';
export { IscsiError, type IscsiErrorCode } from './errors.js';
export { encodeText, type KeyPairs, parseText, SessionParams } from './keys.js';
export {
  BHS_LENGTH,
  encodePdu,
  IOp,
  LoginStatus,
  Pdu,
  PduParser,
  RejectReason,
  TOp,
} from './pdu.js';
export {
  type FlushScheduler,
  type HostedSocket,
  IscsiServer,
  type ListeningPortal,
  type MovedConnection,
  type ServeOptions,
  type SocketHost,
} from './server.js';
export { Session } from './session.js';
export { SessionCount } from './session-count.js';
export { type BdevLookup, type IscsiStats, IscsiTarget, TargetNode } from './target.js';
