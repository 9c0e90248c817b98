export { NvmeStatusError, NvmeTcpProtocolError } from '@storkit/nvme-spec';
export {
  type AdminResult,
  type ControllerOptions,
  discover,
  type IoQpairOptions,
  NvmeController,
} from './host/controller.js';
export {
  type CommandSpec,
  type Completion,
  ConnectError,
  HostQpair,
  HostQpairError,
  type HostQpairOptions,
  type QpairSocket,
  STATUS_ABORTED_SQ_DELETION,
  STATUS_TRANSPORT_ERROR,
} from './host/qpair.js';
export { formatTransportId, parseTransportId, type TransportId, TransportIdError } from './host/trid.js';
