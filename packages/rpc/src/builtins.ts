import { defineMethod } from './method.js';
import { bool, obj, opt } from './schema.js';
import type { RpcServer } from './server.js';

/** rpc_get_methods and spdk_get_version, which every storkit RPC server answers. */
export function registerBuiltins(
  server: RpcServer,
  version: { version: string; fields: Record<string, unknown> },
): void {
  server.register(
    defineMethod({
      name: 'rpc_get_methods',
      description: 'List the RPC methods (with current: only those callable in the current state)',
      state: 'both',
      params: obj({
        current: opt(bool({ description: 'only methods callable now' })),
        include_aliases: opt(bool()),
      }),
      handler(p) {
        const names: string[] = [];
        for (const m of server.methods()) {
          const st = m.state ?? 'runtime';
          if (p.current && st !== 'both' && st !== server.state) continue;
          names.push(m.name);
          if (p.include_aliases) names.push(...(m.aliases ?? []));
        }
        return names.sort();
      },
    }),
  );
  server.register(
    defineMethod({
      name: 'spdk_get_version',
      description: "storkit's version, in SPDK's spdk_get_version shape",
      state: 'both',
      handler: () => ({ version: version.version, fields: version.fields }),
    }),
  );
}
