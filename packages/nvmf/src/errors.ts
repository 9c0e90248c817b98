// Configuration errors of the target, with stable codes the RPC layer maps to JSON-RPC errors.

export type NvmfErrorCode =
  | 'ERR_NVMF_INVALID_PARAM'
  | 'ERR_NVMF_EXISTS'
  | 'ERR_NVMF_NOT_FOUND'
  | 'ERR_NVMF_NO_TRANSPORT'
  | 'ERR_NVMF_LISTEN';

export class NvmfError extends Error {
  override name = 'NvmfError';
  readonly code: NvmfErrorCode;
  constructor(code: NvmfErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const invalid = (msg: string): NvmfError => new NvmfError('ERR_NVMF_INVALID_PARAM', msg);
