// Typed errors with stable codes. A protocol error carries the NVMe/TCP fatal error status (FES)
// and information (FEI) to put in the TermReq that ends the connection.

export type NvmeTcpErrorCode =
  | 'ERR_NVME_TCP_PDU_HEADER'
  | 'ERR_NVME_TCP_PDU_SEQUENCE'
  | 'ERR_NVME_TCP_HEADER_DIGEST'
  | 'ERR_NVME_TCP_DATA_RANGE'
  | 'ERR_NVME_TCP_DATA_LIMIT'
  | 'ERR_NVME_TCP_UNSUPPORTED'
  | 'ERR_NVME_TCP_TERMINATED';

/** The peer broke the NVMe/TCP protocol (or sent a TermReq); the connection must end. */
export class NvmeTcpProtocolError extends Error {
  override name = 'NvmeTcpProtocolError';
  readonly code: NvmeTcpErrorCode;
  /** Fatal error status for the TermReq we send. */
  readonly fes: number;
  /** Fatal error information: for a bad header field, its byte offset. */
  readonly fei: number;
  constructor(code: NvmeTcpErrorCode, fes: number, fei: number, message: string) {
    super(message);
    this.code = code;
    this.fes = fes;
    this.fei = fei;
  }
}

/** Status returned for an NVMe command that did not succeed. */
export class NvmeStatusError extends Error {
  override name = 'NvmeStatusError';
  readonly code = 'ERR_NVME_STATUS';
  /** The 15-bit CQE status field (SC, SCT, CRD, M, DNR). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
