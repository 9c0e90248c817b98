// comlink ships UMD for Node (its ESM build has no Node-resolvable typings): load it through
// require, typed from its own declarations. Used for main-thread management calls only.
import { createRequire } from 'node:module';
import type { MessagePort, Worker } from 'node:worker_threads';

import type * as ComlinkNs from 'comlink';

const require = createRequire(import.meta.url);
export const Comlink: typeof ComlinkNs = require('comlink');
const adapter: (nep: unknown) => ComlinkNs.Endpoint = require('comlink/dist/umd/node-adapter.js');

/** A comlink endpoint over a worker (main side) or its parentPort (worker side). */
export function nodeEndpoint(port: Worker | MessagePort): ComlinkNs.Endpoint {
  return adapter(port);
}
