export { Controller } from './controller.js';
export { type ControllerSlot, ControllerTable, nqnHash } from './controller-table.js';
export { NvmfError, type NvmfErrorCode } from './errors.js';
export {
  TCP_DEFAULTS,
  type TcpTransportOptions,
  type TcpTransportParams,
  tcpTransportOptions,
} from './options.js';
export {
  type CreateSubsystemParams,
  type ListenAddress,
  Namespace,
  type NamespaceParams,
  Subsystem,
  validateNqn,
} from './subsystem.js';
export {
  type ClusterHooks,
  NvmfTarget,
  type ReferralParams,
  type SharedSubsystemState,
  type TargetOptions,
} from './target.js';
export type { ListenOptions } from './tcp-listener.js';
export { type QpairOwner, type QpairStats, TcpQpair } from './tcp-qpair.js';
