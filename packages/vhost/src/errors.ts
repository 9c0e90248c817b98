import type { Codes, Errno } from '@storkit/errors';

/** Codes of the vhost layer's errors: names of @storkit/errors' set. */
export type VhostErrorCode =
  | Codes<
      /** A parameter is out of range or malformed. */
      | 'EINVAL'
      /** A controller or target with that name already exists. */
      | 'EEXIST'
      /** No such controller, target or backend. */
      | 'ENOENT'
      /** The controller is serving a frontend, or I/O is outstanding. */
      | 'EBUSY'
      /** The frontend broke the vhost-user protocol; the connection is dropped. */
      | 'EPROTO'
      /** The guest broke the virtio ring rules; the queue (device) is marked broken. */
      | 'EBROKEN'
      /** The peer went away. */
      | 'ENOTCONN'
      /** A live backend already listens on the controller's socket path (it is left alone). */
      | 'EADDRINUSE'
      /** The controller's socket path is a socket file another user owns (it is left alone). */
      | 'EPERM'
    >
  /** Any other failure of a native call keeps the core's own code (ENOENT, EBADF, ENOMEM, ...). */
  | Errno;

export class VhostError extends Error {
  readonly code: VhostErrorCode;
  constructor(code: VhostErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VhostError';
    this.code = code;
  }
}
