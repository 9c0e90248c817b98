import { type Codes, codeOf } from '@storkit/errors';

/** Codes of the lvol layer: errno names of @storkit/errors' set, as SPDK's lvol RPCs answer with. */
export type LvolErrorCode = Codes<
  | 'EINVAL'
  | 'EEXIST'
  | 'ENOENT'
  | 'ENODEV'
  | 'EBUSY'
  | 'EPERM'
  | 'ENOSPC'
  | 'ENOMEM'
  | 'ENOTSUP'
  | 'EIO'
  | 'EILSEQ'
  | 'ENXIO'
  | 'ENOTHREAD'
>;

const CODES: ReadonlySet<string> = new Set<LvolErrorCode>([
  'EINVAL',
  'EEXIST',
  'ENOENT',
  'ENODEV',
  'EBUSY',
  'EPERM',
  'ENOSPC',
  'ENOMEM',
  'ENOTSUP',
  'EIO',
  'EILSEQ',
  'ENXIO',
  'ENOTHREAD',
]);
const isLvolCode = (c: string | undefined): c is LvolErrorCode => c !== undefined && CODES.has(c);

export class LvolError extends Error {
  override name = 'LvolError';
  /** What to match on: the message is text for people and may change. */
  readonly code: LvolErrorCode;
  constructor(code: LvolErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** An error of a lower layer (BlobError, BdevError), with its code kept (EIO for one outside the lvol set) and context added. */
  static from(e: unknown, context: string): LvolError {
    if (e instanceof LvolError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    const code = codeOf(e);
    return new LvolError(isLvolCode(code) ? code : 'EIO', `${context}: ${msg}`);
  }
}
