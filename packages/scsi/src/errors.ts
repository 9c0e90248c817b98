/** Stable codes for configuration and programming errors of the SCSI layer (not SCSI sense). */
export type ScsiErrorCode =
  | 'EINVAL_BLOCK_SIZE'
  | 'EINVAL_NUM_BLOCKS'
  | 'EINVAL_LUN'
  | 'EEXIST_LUN'
  | 'EINVAL_CDB';

export class ScsiError extends Error {
  readonly code: ScsiErrorCode;
  constructor(code: ScsiErrorCode, message: string) {
    super(message);
    this.name = 'ScsiError';
    this.code = code;
  }
}
