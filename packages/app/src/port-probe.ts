// storkit's reactors share each listening port through SO_REUSEPORT, and the kernel lets any
// process of the same user join such a group: a second target started on the same port would bind
// without an error and silently take half of the new connections. So before the reactors bind an
// address this process does not listen on yet, it is tried with an ordinary listen (no
// SO_REUSEPORT), which any listener already there refuses with EADDRINUSE.
import net from 'node:net';

import { RpcError } from '@storkit/rpc';

/** Throw EADDRINUSE (RPC -98) when something listens on host:port already; port 0 always passes. */
export async function assertPortFree(host: string, port: number, what: string): Promise<void> {
  if (port === 0) return;
  const srv = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw RpcError.errno('EADDRINUSE', `${what} ${host}:${port}: address in use by another listener`);
    return; // anything else (EADDRNOTAVAIL, EACCES): the reactors' own bind reports it
  }
  await new Promise<void>((resolve) => srv.close(() => resolve()));
}
