/** Stable error codes of the lvol layer (errno names, as SPDK's lvol RPCs answer with). */
export type LvolErrorCode =
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
  | 'ENOTHREAD';

export class LvolError extends Error {
  override name = 'LvolError';
  readonly code: LvolErrorCode;
  constructor(code: LvolErrorCode, message: string) {
    super(`[${code}] ${message}`);
    this.code = code;
  }

  /** An error of a lower layer (BlobError, BdevError), with its code kept and context added. */
  static from(e: unknown, context: string): LvolError {
    if (e instanceof LvolError) return e;
    const code = (e as { code?: string })?.code;
    const msg = e instanceof Error ? e.message : String(e);
    return new LvolError((code as LvolErrorCode) ?? 'EIO', `${context}: ${msg}`);
  }
}
