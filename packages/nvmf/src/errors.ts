// Configuration errors of the target, with codes of @storkit/errors' set (the RPC layer answers
// -errno, as SPDK).

import type { Codes } from '@storkit/errors';

/**
 * A bad parameter or a missing transport (EINVAL), a subsystem, namespace, host or listener that
 * exists already (EEXIST) or not at all (ENODEV), an address that cannot be listened on (EBUSY).
 */
export type NvmfErrorCode = Codes<'EINVAL' | 'EEXIST' | 'ENODEV' | 'EBUSY'>;

export class NvmfError extends Error {
  override name = 'NvmfError';
  readonly code: NvmfErrorCode;
  constructor(code: NvmfErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const invalid = (msg: string): NvmfError => new NvmfError('EINVAL', msg);
