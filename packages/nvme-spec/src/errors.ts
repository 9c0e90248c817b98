// Typed errors with codes of @storkit/errors' set. A protocol error carries the NVMe/TCP fatal
// error status (FES) and information (FEI) to put in the TermReq that ends the connection.

/**
 * The peer broke the NVMe/TCP protocol (or sent a TermReq); the connection must end. Code EPROTO;
 * what was wrong is the fatal error status (FES) and information (FEI) the TermReq carries.
 */
export class NvmeTcpProtocolError extends Error {
  override name = 'NvmeTcpProtocolError';
  readonly code = 'EPROTO';
  /** Fatal error status for the TermReq we send. */
  readonly fes: number;
  /** Fatal error information: for a bad header field, its byte offset. */
  readonly fei: number;
  constructor(fes: number, fei: number, message: string) {
    super(message);
    this.fes = fes;
    this.fei = fei;
  }
}

/** Status returned for an NVMe command that did not succeed. */
export class NvmeStatusError extends Error {
  override name = 'NvmeStatusError';
  readonly code = 'EIO';
  /** The 15-bit CQE status field (SC, SCT, CRD, M, DNR). */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
