import type { Codes } from '@storkit/errors';

/** Errno-style codes for programming and configuration errors of a block backend. */
export type BlockErrorCode = Codes<'EINVAL'>;

export class BlockError extends Error {
  override name = 'BlockError';
  readonly code: BlockErrorCode;
  constructor(code: BlockErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
