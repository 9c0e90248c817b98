// @storkit/nvme: the NVMe host driver. One controller API over every transport (NVMe/TCP here;
// transports register under their trtype, see host/transport.ts), polled I/O qpairs, transport IDs.

export { NvmeStatusError, NvmeTcpProtocolError } from '@storkit/nvme-spec';
export {
  type AdminResult,
  type ControllerOptions,
  discover,
  NvmeController,
} from './host/controller.js';
export {
  type CommandSpec,
  type Completion,
  type HostQpair,
  HostQpairError,
  type QpairErrorCode,
  type QpairStats,
  STATUS_ABORTED_SQ_DELETION,
  STATUS_TRANSPORT_ERROR,
} from './host/qpair.js';
export {
  type ControllerLink,
  getTransport,
  type IoQpairGrant,
  type IoQpairOptions,
  type LinkOptions,
  type NvmeTransport,
  type PcieOptions,
  registerTransport,
} from './host/transport.js';
export {
  formatTransportId,
  normalizePciAddress,
  type PcieTransportId,
  parseTransportId,
  type TcpTransportId,
  type TransportId,
  TransportIdError,
  type TrType,
} from './host/trid.js';
export { PcieQpair, type PcieQpairGrant, type PcieQpairStats } from './pcie/qpair.js';
export { NvmeLinkError, pcieTransport } from './pcie/transport.js';
export { ConnectError } from './tcp/connect-error.js';
export { TcpHostQpair, type TcpQpairGrant, type TcpQpairOptions } from './tcp/qpair.js';
