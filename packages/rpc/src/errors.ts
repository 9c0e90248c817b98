import { type Errno, errnoOf, isErrno } from '@storkit/errors';

/**
 * JSON-RPC 2.0 error codes, plus SPDK's convention for application errors: a negative errno
 * (`-19` for ENODEV, `-17` for EEXIST, ...) with a message that says what went wrong.
 */
export const RpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** SPDK: the method exists but not in the current state (startup-only after init, or before init). */
  InvalidState: -1,
} as const;

/** An error a method reports to its caller. `data` is optional structured detail. */
export class RpcError extends Error {
  readonly code: number;
  readonly data?: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }

  /** An application error from an errno name (`'ENODEV'`) and a message, SPDK style. */
  static errno(name: Errno | string, message: string): RpcError {
    return new RpcError(-errnoOf(name), message);
  }

  static invalidParams(message: string): RpcError {
    return new RpcError(RpcCode.InvalidParams, `Invalid parameters: ${message}`);
  }
}

/**
 * Map anything a handler throws to an RpcError. Errors from lower layers that carry a stable
 * errno-style `code` (ReactorError, NativeError, BdevError, ...) become `-errno` with their message.
 */
export function toRpcError(e: unknown): RpcError {
  if (e instanceof RpcError) return e;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (isErrno(code)) return RpcError.errno(code, e.message);
    return new RpcError(RpcCode.InternalError, e.message);
  }
  return new RpcError(RpcCode.InternalError, String(e));
}
