/** Stable codes for iSCSI errors: protocol violations by a peer and configuration mistakes. */
export type IscsiErrorCode =
  | 'EPROTO_DATA_LENGTH'
  | 'EPROTO_HEADER_DIGEST'
  | 'EPROTO_OPCODE'
  | 'EPROTO_SEQUENCE'
  | 'EPROTO_FIELD'
  | 'EINVAL_CONFIG'
  | 'ENOENT_TARGET'
  | 'EEXIST_TARGET'
  | 'ENOENT_GROUP'
  | 'EEXIST_GROUP';

export class IscsiError extends Error {
  readonly code: IscsiErrorCode;
  constructor(code: IscsiErrorCode, message: string) {
    super(message);
    this.name = 'IscsiError';
    this.code = code;
  }
}
