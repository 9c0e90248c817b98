import { methodCatalog, type TargetPlugin } from '@storkit/app';
import { methodHelp, paramsFromArgs, RpcClient, RpcError, type RpcTarget } from '@storkit/rpc';

import { type Command, UsageError } from '../command.js';
import { loadPlugin } from './plugins.js';

export const DEFAULT_RPC_SOCKET = '/var/tmp/storkit.sock';

const USAGE = `usage: storkit rpc [-s SOCKET|HOST] [-p PORT] [-t SECONDS] [--plugin P]... METHOD [params...]
       storkit rpc METHOD --help        describe a method's params
       storkit rpc --list               list every method

Calls a JSON-RPC method on a running 'storkit tgt', in the manner of SPDK's rpc.py:
positional params in the order '--help' shows, '--name value' for the others,
'--json {...}' for the whole params object. Prints the result as JSON.
  -s  Unix socket path (default ${DEFAULT_RPC_SOCKET}) or a loopback address with -p
  -p  TCP port
  -t  seconds to wait for the answer (default 60)
  --plugin P  know a plugin's methods too (the one given to storkit tgt --plugin): their
              positional params and --help`;

export const rpc: Command = {
  name: 'rpc',
  summary: 'call a JSON-RPC method on a running target (rpc.py style)',
  usage: USAGE,
  handlesHelp: true,
  async run(argv) {
    let address = DEFAULT_RPC_SOCKET;
    let port: number | undefined;
    let timeout = 60;
    const plugins: TargetPlugin[] = [];
    let i = 0;
    for (; i < argv.length; i++) {
      const a = argv[i];
      if (a === '-s') address = argv[++i] ?? '';
      else if (a === '-p') port = Number(argv[++i]);
      else if (a === '-t') timeout = Number(argv[++i]);
      else if (a === '--plugin') plugins.push(await loadPlugin(argv[++i] ?? ''));
      else if (a === '--help' || a === '-h') {
        process.stdout.write(`${USAGE}\n`);
        return 0;
      } else if (a === '--list') {
        for (const m of methodCatalog(plugins).sort((x, y) => x.name.localeCompare(y.name)))
          process.stdout.write(`${m.name.padEnd(32)} ${m.description}\n`);
        return 0;
      } else break;
    }
    const method = argv[i];
    if (!method || method.startsWith('-')) throw new UsageError('no METHOD given');
    if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
      throw new UsageError('-p takes a port');
    if (!(timeout > 0)) throw new UsageError('-t takes a positive number of seconds');
    const rest = argv.slice(i + 1);
    const spec = methodCatalog(plugins).find((m) => m.name === method || m.aliases?.includes(method));
    if (rest.includes('--help') || rest.includes('-h')) {
      if (!spec) throw new UsageError(`unknown method '${method}' (storkit rpc --list)`);
      process.stdout.write(`${methodHelp(spec)}\n`);
      return 0;
    }
    let params: Record<string, unknown> | undefined;
    try {
      params = paramsFromArgs(spec, rest);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const target: RpcTarget = port === undefined ? { address } : { address, port };
    let client: RpcClient;
    try {
      client = await RpcClient.connect(target);
    } catch (e) {
      process.stderr.write(
        `storkit rpc: cannot reach ${address}${port ? `:${port}` : ''}: ${(e as Error).message}\n`,
      );
      return 1;
    }
    const timer = setTimeout(() => {
      process.stderr.write(`storkit rpc: no answer to ${method} in ${timeout} s\n`);
      process.exit(1);
    }, timeout * 1000);
    try {
      const result = await client.call(method, params);
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    } catch (e) {
      if (e instanceof RpcError) {
        process.stderr.write(`${JSON.stringify({ code: e.code, message: e.message }, null, 2)}\n`);
        return 1;
      }
      throw e;
    } finally {
      clearTimeout(timer);
      client.close();
    }
  },
};
