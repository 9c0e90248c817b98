import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { methodCatalog, type RpcCommand, stripJsonComments, type TargetPlugin } from '@storkit/app';
import { methodHelp, paramsFromArgs, RpcClient, RpcError, type RpcTarget } from '@storkit/rpc';

import { type Command, UsageError } from '../command.js';
import { ArgError, parseRpcPyArgs, rpcPyTable, rpcPyUsage } from '../rpcpy/argparse.js';
import { rpcPyParams } from '../rpcpy/convert.js';
import { loadPlugin } from './plugins.js';

export const DEFAULT_RPC_SOCKET = '/var/tmp/storkit.sock';

const USAGE = `usage: storkit rpc [-h] [-s SOCKET|HOST] [-p PORT] [-t TIMEOUT] [-r RETRIES] [-v]
                   [--verbose LEVEL] [--dry-run] [--plugin P]... [--list] METHOD [args...]
       storkit rpc [--plugin P]... --server    (rpc.py's coprocess mode)
       storkit rpc [options] < FILE     one 'METHOD args...' per line ('#' comments)

SPDK's rpc.py for a running 'storkit tgt': the same method names, positional arguments, flags
and output (storkit rpc METHOD -h shows them), plus load_config, load_subsystem_config,
save_config and save_subsystem_config.
  -s SOCKET   Unix socket path (default ${DEFAULT_RPC_SOCKET}) or an IP address with -p
  -p PORT     TCP port (with an IP address in -s; default 5260)
  -t TIMEOUT  seconds to wait for each answer (default 60.0)
  -r RETRIES  retry connecting this many times, 0.2 s apart (default 0)
  -v          print requests and responses (--verbose INFO); --verbose DEBUG|INFO|ERROR
  --dry-run   print the request and exit, without a target
  --plugin P  know a plugin's methods (the one given to storkit tgt --plugin) and its client-side
              commands (rpcCommands: rpc.py --plugin's subcommands)
  --server    read whole command lines from stdin, each answered and ended by **STATUS=0|1
  --list      list every method with a line of description (storkit)`;

interface Options {
  address: string;
  port: number | undefined;
  timeout: number;
  retries: number;
  verbose: 'DEBUG' | 'INFO' | 'ERROR';
  dryRun: boolean;
  plugins: TargetPlugin[];
}

/** An RPC failure as rpc.py reports it (its JSONRPCException message): printed, exit code 1. */
class Failed extends Error {}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Python's json.dumps(x, indent=2): JSON.stringify's layout, non-ASCII escaped as Python does. */
function pyJson(x: unknown, indent = 2): string {
  const s =
    indent < 0
      ? JSON.stringify(x, null, undefined).replace(/([,:])/g, '$1 ')
      : JSON.stringify(x, null, indent);
  return s.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A word quoted as Python's shlex.quote does. */
function shQuote(s: string): string {
  if (s === '') return "''";
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'"'"'`)}'`;
}

/** A connection to the target; requests and responses logged as rpc.py does with -v. */
class Session {
  #client: RpcClient | null = null;
  #id = 0;
  constructor(readonly o: Options) {}

  async #connect(): Promise<RpcClient> {
    if (this.#client) return this.#client;
    const t: RpcTarget =
      this.o.port === undefined
        ? { address: this.o.address }
        : { address: this.o.address, port: this.o.port };
    for (let attempt = 0; ; attempt++) {
      try {
        this.#client = await RpcClient.connect(t);
        return this.#client;
      } catch (e) {
        if (attempt >= this.o.retries)
          throw new Failed(
            `Error while connecting to ${this.o.address}\nIs SPDK application running?\nError details: ${(e as Error).message}`,
          );
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async call(method: string, params?: Record<string, unknown>): Promise<unknown> {
    const req = {
      jsonrpc: '2.0',
      method,
      id: ++this.#id,
      ...(params && Object.keys(params).length ? { params } : {}),
    };
    if (this.o.dryRun) {
      out(`Request:\n${pyJson({ method, params: params ?? null })}`);
      return undefined;
    }
    if (this.o.verbose !== 'ERROR') process.stderr.write(`INFO: Requests:\n${pyJson(req)}\n\n`);
    const client = await this.#connect();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(
        () => rej(new Failed(`Timeout while waiting for response:\n\n`)),
        this.o.timeout * 1000,
      );
    });
    try {
      const result = await Promise.race([client.call(method, params), timeout]);
      if (this.o.verbose !== 'ERROR')
        process.stderr.write(`INFO: response:\n${pyJson({ jsonrpc: '2.0', id: req.id, result })}\n\n`);
      return result;
    } catch (e) {
      if (e instanceof RpcError) {
        const shown = { ...(params ?? {}), method, req_id: req.id };
        throw new Failed(
          `request:\n${pyJson(shown)}\nGot JSON-RPC error response\nresponse:\n${pyJson({ code: e.code, message: e.message })}`,
        );
      }
      // spdk_kill_instance: the target may hang up before answering, as rpc.py allows.
      if (method === 'spdk_kill_instance') return {};
      throw e instanceof Failed ? e : new Failed((e as Error).message);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#client?.close();
  }
}

/** rpc.py's client-side methods: configs loaded and saved as calls of the target's methods. */
const CLIENT_SIDE: Record<string, (s: Session, argv: string[]) => Promise<void>> = {
  async save_config(s, argv) {
    const indent = intOption(argv, ['-i', '--indent'], 2);
    const subsystems = (await s.call('framework_get_subsystems')) as { subsystem: string }[] | undefined;
    if (subsystems === undefined) return;
    const cfg: { subsystems: unknown[] } = { subsystems: [] };
    for (const x of subsystems)
      cfg.subsystems.push({
        subsystem: x.subsystem,
        config: await s.call('framework_get_config', { name: x.subsystem }),
      });
    out(pyJson(cfg, indent));
  },
  async save_subsystem_config(s, argv) {
    const name = stringOption(argv, ['-n', '--name']);
    if (name === undefined) throw new ArgError('the following arguments are required: -n/--name');
    const indent = intOption(argv, ['-i', '--indent'], 2);
    out(pyJson({ subsystem: name, config: await s.call('framework_get_config', { name }) }, indent));
  },
  async load_config(s, argv) {
    const aliases = argv.includes('-i') || argv.includes('--include-aliases');
    const cfg = (await readJson(stringOption(argv, ['-j', '--json-conf']))) as {
      subsystems: {
        subsystem: string;
        config: { method: string; params?: Record<string, unknown> }[] | null;
      }[];
    };
    const subsystems = cfg.subsystems.filter((x) => x.config?.length);
    const known = (await s.call('rpc_get_methods', { include_aliases: aliases })) as string[] | undefined;
    if (known === undefined) return; // --dry-run
    if (!subsystems.length && known.includes('framework_start_init')) {
      await s.call('framework_start_init');
      return;
    }
    for (const x of subsystems)
      for (const e of x.config ?? [])
        if (!known.includes(e.method)) throw new Failed('Unknown method was included in the config file');
    // As rpc.py: each round calls what the target's state allows now; framework_start_init moves
    // the state on; stop when a round finds nothing to call.
    while (subsystems.length) {
      const now = (await s.call('rpc_get_methods', { current: true, include_aliases: aliases })) as string[];
      let found = false;
      for (const x of [...subsystems]) {
        const config = x.config ?? [];
        for (const e of [...config]) {
          if (!now.includes(e.method)) continue;
          await s.call(e.method, e.params);
          config.splice(config.indexOf(e), 1);
          found = true;
        }
        if (!config.length) subsystems.splice(subsystems.indexOf(x), 1);
      }
      if (now.includes('framework_start_init')) {
        await s.call('framework_start_init');
        found = true;
      }
      if (!found) break;
    }
    if (subsystems.length)
      out('Some configs were skipped because the RPC state that can call them passed over.');
  },
  async load_subsystem_config(s, argv) {
    const sub = (await readJson(stringOption(argv, ['-j', '--json-conf']))) as {
      config: { method: string; params?: Record<string, unknown> }[] | null;
    };
    if (!sub.config?.length) return;
    const known = (await s.call('rpc_get_methods')) as string[] | undefined;
    if (known === undefined) return;
    for (const e of sub.config)
      if (!known.includes(e.method)) throw new Failed('Unknown method was included in the config file');
    const now = (await s.call('rpc_get_methods', { current: true })) as string[];
    const left = [];
    for (const e of sub.config) {
      if (now.includes(e.method)) await s.call(e.method, e.params);
      else left.push(e);
    }
    if (left.length) out('Some configs were skipped because they cannot be called in the current RPC state.');
  },
};

function stringOption(argv: string[], flags: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    for (const f of flags) {
      if (argv[i] === f) return argv[i + 1];
      if (f.startsWith('--') && argv[i].startsWith(`${f}=`)) return argv[i].slice(f.length + 1);
    }
  }
  return undefined;
}

function intOption(argv: string[], flags: string[], dflt: number): number {
  const v = stringOption(argv, flags);
  if (v === undefined) return dflt;
  if (!/^-?\d+$/.test(v)) throw new ArgError(`argument ${flags.join('/')}: invalid int value: '${v}'`);
  return Number(v);
}

/** A JSON config from -j (a file, else the JSON itself, as rpc.py) or stdin; SPDK's comments allowed. */
async function readJson(file: string | undefined): Promise<unknown> {
  let text: string;
  if (file !== undefined) text = existsSync(file) ? readFileSync(file, 'utf8') : file;
  else {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  }
  return JSON.parse(stripJsonComments(text));
}

function pluginCommand(o: Options, name: string): RpcCommand | undefined {
  for (const p of o.plugins) for (const c of p.rpcCommands ?? []) if (c.name === name) return c;
  return undefined;
}

/** One call as rpc.py makes it from `METHOD args...`; prints its result as rpc.py does. */
async function callOne(s: Session, o: Options, method: string, argv: string[]): Promise<void> {
  const local = CLIENT_SIDE[method];
  if (local) return local(s, argv);
  // A plugin's client-side command (rpc.py --plugin's subcommands); the built-in ones come first.
  const command = pluginCommand(o, method);
  if (command && !rpcPyTable()[method]) {
    const result = await command.run(argv, (m, params) => s.call(m, params));
    if (result !== undefined && !o.dryRun) out(typeof result === 'string' ? result : pyJson(result));
    return;
  }
  const py = rpcPyTable()[method];
  if (py) {
    const params = rpcPyParams(method, py, parseRpcPyArgs(py, argv));
    const result = await s.call(method, params);
    if (result === undefined) return;
    if (py.output === 'json') out(pyJson(result).replace(/^"+|"+$/g, ''));
    else if (py.output === 'dict') out(pyJson(result));
    else if (py.output === 'array') out((result as unknown[]).map((v) => shQuote(String(v))).join(' '));
    return;
  }
  // A method rpc.py does not have (storkit_*, a plugin's): its schema's positional params and
  // --name value options; the result as JSON.
  const spec = methodCatalog(o.plugins).find((m) => m.name === method || m.aliases?.includes(method));
  if (!spec) throw new ArgError(`invalid choice: '${method}' (storkit rpc --list)`);
  const result = await s.call(method, paramsFromArgs(spec, argv));
  if (result !== undefined) out(pyJson(result));
}

/** Shell words of one batch line, as Python's shlex.split reads them. */
function shlexSplit(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ArgError('No closing quotation');
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        cur += line[j];
      }
      if (j >= line.length) throw new ArgError('No closing quotation');
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** The options before METHOD, parsed; `i` is METHOD's index; `exit` when -h or --list answered. */
async function parseOptions(
  argv: string[],
  plugins: TargetPlugin[],
): Promise<{ o: Options; i: number; server: boolean; exit?: number }> {
  const o: Options = {
    address: DEFAULT_RPC_SOCKET,
    port: undefined,
    timeout: 60,
    retries: 0,
    verbose: 'ERROR',
    dryRun: false,
    plugins: [...plugins],
  };
  let server = false;
  let i = 0;
  const val = (a: string) => {
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${a} needs a value`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-s') o.address = val(a);
    else if (a === '-p') o.port = Number(val(a));
    else if (a === '-t') o.timeout = Number(val(a));
    else if (a === '-r') o.retries = Number(val(a));
    else if (a === '-v') o.verbose = 'INFO';
    else if (a === '--verbose') {
      const v = val(a);
      if (v !== 'DEBUG' && v !== 'INFO' && v !== 'ERROR')
        throw new UsageError('--verbose takes DEBUG, INFO or ERROR');
      o.verbose = v;
    } else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--server') server = true;
    else if (a === '--go-client')
      // rpc.py's --go-client calls through SPDK's Go client library (build/go/rpc/libspdk_gorpc.so,
      // loaded with ctypes): another client for the same JSON-RPC. storkit rpc has its own client
      // and no Go library to load; taking the flag and using the same client would pretend.
      throw new UsageError(
        "--go-client: rpc.py's Go client library (libspdk_gorpc.so) is not part of storkit; storkit rpc speaks JSON-RPC itself (leave the flag out)",
      );
    else if (a === '--plugin') {
      const spec = val(a);
      o.plugins.push(await loadPlugin(spec));
    } else if (a === '--help' || a === '-h') {
      out(USAGE);
      return { o, i, server, exit: 0 };
    } else if (a === '--list') {
      const listed = [
        ...methodCatalog(o.plugins),
        ...o.plugins
          .flatMap((p) => p.rpcCommands ?? [])
          .map((c) => ({ ...c, description: `${c.description} (client-side)` })),
      ];
      for (const m of listed.sort((x, y) => x.name.localeCompare(y.name)))
        out(`${m.name.padEnd(32)} ${m.description}`);
      return { o, i, server, exit: 0 };
    } else break;
  }
  // rpc.py takes an IP address in -s with -p (default port 5260); a path is a Unix socket.
  if (o.port === undefined && /^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-f:]+:[0-9a-f:]*$/i.test(o.address))
    o.port = 5260;
  if (o.port !== undefined && (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535))
    throw new UsageError('-p takes a port');
  if (!(o.timeout > 0)) throw new UsageError('-t takes a positive number of seconds');
  if (!Number.isInteger(o.retries) || o.retries < 0) throw new UsageError('-r takes a count');
  return { o, i, server };
}

/**
 * rpc.py --server: each line of stdin is a whole command line (options, METHOD, its arguments),
 * run on a connection of its own; its output, then `**STATUS=0` (it succeeded) or `**STATUS=1`
 * (it failed, or the line did not parse: the reason on stderr). Meant for a shell coprocess that
 * calls many methods without starting a client each time. Plugins given with --server stay
 * known to every line; other options are each line's own, as in rpc.py.
 */
async function serve(plugins: TargetPlugin[]): Promise<number> {
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    let status = 1;
    try {
      const words = shlexSplit(line);
      const { o, i, exit } = await parseOptions(words, plugins);
      // -h/--list answered: rpc.py's argparse exits there, which its server counts as a failure.
      if (exit === undefined) {
        const method = words[i];
        if (method === undefined || method.startsWith('-'))
          throw new UsageError(method === undefined ? 'no METHOD given' : `unknown option ${method}`);
        const s = new Session(o);
        try {
          await callOne(s, o, method, words.slice(i + 1));
          status = 0;
        } finally {
          s.close();
        }
      }
    } catch (e) {
      if (e instanceof Failed) out(e.message);
      else if (e instanceof ArgError || e instanceof UsageError)
        process.stderr.write(`storkit rpc: error: ${e.message}\n`);
      else throw e;
    }
    out(`**STATUS=${status}`);
  }
  return 0;
}

export const rpc: Command = {
  name: 'rpc',
  summary: "call JSON-RPC methods on a running target (SPDK's rpc.py)",
  usage: USAGE,
  handlesHelp: true,
  async run(argv) {
    // `storkit rpc --list | head`: a reader that goes away is not an error.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
    const { o, i, server, exit } = await parseOptions(argv, []);
    if (exit !== undefined) return exit;
    const method = argv[i];
    if (server) {
      if (method !== undefined)
        throw new UsageError('--server reads its command lines from stdin: no METHOD');
      return serve(o.plugins);
    }
    const rest = argv.slice(i + 1);
    if (method !== undefined && (rest.includes('-h') || rest.includes('--help'))) {
      const py = rpcPyTable()[method];
      const command = pluginCommand(o, method);
      if (py) out(rpcPyUsage(method, py));
      else if (command) out(`${method}: ${command.description}`);
      else {
        const spec = methodCatalog(o.plugins).find((m) => m.name === method || m.aliases?.includes(method));
        if (!spec) throw new UsageError(`unknown method '${method}' (storkit rpc --list)`);
        out(methodHelp(spec));
      }
      return 0;
    }
    const s = new Session(o);
    try {
      if (method !== undefined) {
        if (method.startsWith('-')) throw new UsageError(`unknown option ${method}`);
        await callOne(s, o, method, rest);
        return 0;
      }
      if (process.stdin.isTTY) throw new UsageError('no METHOD given (or give one per line on stdin)');
      // rpc.py's script mode: one call per line of stdin on one connection.
      let done = '';
      for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
        if (!line.trim()) continue;
        done = `${done}\n${line.trimEnd()}`;
        const words = shlexSplit(line);
        if (words[0].startsWith('#')) continue;
        try {
          await callOne(s, o, words[0], words.slice(1));
        } catch (e) {
          if (!(e instanceof Failed)) throw e;
          out(`Exception:\n${done.trim()} <<<\n${e.message}`);
          return 1;
        }
      }
      return 0;
    } catch (e) {
      if (e instanceof ArgError) {
        process.stderr.write(`storkit rpc ${method ?? ''}: error: ${e.message}\n`);
        return 2;
      }
      if (e instanceof Failed) {
        out(e.message);
        return 1;
      }
      throw e;
    } finally {
      s.close();
    }
  },
};
