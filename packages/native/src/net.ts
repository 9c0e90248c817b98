import { createServer } from 'node:net';

import { binding } from './binding.js';
import { NativeError, native } from './errors.js';

/** A listening socket shared through SO_REUSEPORT: pass `fd` to `net.Server.listen({ fd })`. */
export interface ReuseportListener {
  readonly fd: number;
  readonly address: string;
  readonly port: number;
}

/**
 * Create a TCP socket with SO_REUSEADDR and SO_REUSEPORT, bind it to `host:port` (an IP
 * literal; port 0 picks one) and listen. Each worker that does this for the same port joins the
 * group, and the kernel spreads new connections across the group. The fd is non-blocking and
 * belongs to the caller: hand it to `net.Server.listen({ fd })` (closing that server closes it)
 * or release it with `closeFd`. Throws NativeError (`EADDRINUSE`, `EINVAL`, ...).
 */
export function reuseportListen(host: string, port: number, backlog = 511): ReuseportListener {
  return native(() => binding.reuseportListen(host, port, backlog));
}

/** Close an fd that was never handed to Node. */
export function closeFd(fd: number): void {
  binding.closeFd(fd);
}

/**
 * Refuse (NativeError `EADDRINUSE`, message `${what} host:port: address in use by another
 * listener`) when something listens on host:port already: call it before the first
 * `reuseportListen` of an address, because the kernel lets any process of the same user join an
 * SO_REUSEPORT group, so a second server would bind without an error and take part of the
 * first one's connections. An ordinary listen (no SO_REUSEPORT) is tried and closed; any
 * listener there refuses it. Port 0 passes; other failures are left to the real bind to report.
 */
export async function assertAddressFree(host: string, port: number, what: string): Promise<void> {
  if (port === 0) return;
  const srv = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new NativeError(`${what} ${host}:${port}: address in use by another listener`, 'EADDRINUSE', {
        cause: e,
      });
    return;
  }
  await new Promise<void>((resolve) => srv.close(() => resolve()));
}
