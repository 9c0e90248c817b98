import { binding } from './binding.js';
import { native } from './errors.js';

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
