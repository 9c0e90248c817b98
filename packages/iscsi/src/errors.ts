import type { Codes } from '@storkit/errors';

/**
 * Codes of iSCSI errors (names of @storkit/errors' set): a peer broke the protocol (EPROTO: a bad
 * length, digest, opcode, sequence or field, which the message names), a parameter is out of range
 * (EINVAL), a target node or group is missing (ENOENT) or exists already (EEXIST).
 */
export type IscsiErrorCode = Codes<'EPROTO' | 'EINVAL' | 'ENOENT' | 'EEXIST'>;

export class IscsiError extends Error {
  readonly code: IscsiErrorCode;
  constructor(code: IscsiErrorCode, message: string) {
    super(message);
    this.name = 'IscsiError';
    this.code = code;
  }
}
