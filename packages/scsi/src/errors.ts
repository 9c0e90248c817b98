import type { Codes } from '@storkit/errors';

/**
 * Codes of configuration and programming errors of the SCSI layer (not SCSI sense), names of
 * @storkit/errors' set: a LUN id, block size or CDB out of range (EINVAL), a LUN that exists (EEXIST).
 */
export type ScsiErrorCode = Codes<'EINVAL' | 'EEXIST'>;

export class ScsiError extends Error {
  readonly code: ScsiErrorCode;
  constructor(code: ScsiErrorCode, message: string) {
    super(message);
    this.name = 'ScsiError';
    this.code = code;
  }
}
