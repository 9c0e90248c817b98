// The command line of SPDK's rpc.py for one method, parsed as rpc.py's argparse parser does:
// positional arguments in order, -x VALUE / -xVALUE / --long VALUE / --long=VALUE options,
// store_true and store_false flags, int and float conversions, choices, nargs '?'. The interface comes from
// table.json (scripts/rpcpy-table.sh reads it out of SPDK's rpc.py); what each method then sends
// is convert.ts's business.
import { readFileSync } from 'node:fs';

export interface RpcPyArg {
  flags: string[];
  dest: string;
  action: 'Store' | 'StoreTrue' | 'StoreFalse';
  type: 'int' | 'float' | 'str' | null;
  nargs: null | 0 | '?';
  default: unknown;
  const: unknown;
  choices: unknown[] | null;
  required: boolean;
  help: string | null;
}

/** How rpc.py prints a method's result: print_json/print_dict (JSON), print_array, print, nothing. */
export type RpcPyOutput = 'none' | 'json' | 'dict' | 'array' | 'print';

export interface RpcPyMethod {
  help: string | null;
  output: RpcPyOutput;
  args: RpcPyArg[];
}

let table: Record<string, RpcPyMethod> | null = null;

/** rpc.py's interface of every method storkit has, by name. */
export function rpcPyTable(): Record<string, RpcPyMethod> {
  table ??= JSON.parse(readFileSync(new URL('../../../src/rpcpy/table.json', import.meta.url), 'utf8'));
  return table as Record<string, RpcPyMethod>;
}

/** A command line rpc.py would refuse: argparse's message. */
export class ArgError extends Error {
  override name = 'ArgError';
}

function convert(a: RpcPyArg, raw: string, shown: string): unknown {
  let v: unknown = raw;
  if (a.type === 'int') {
    if (!/^[-+]?\d+$/.test(raw.trim())) throw new ArgError(`argument ${shown}: invalid int value: '${raw}'`);
    v = Number.parseInt(raw, 10);
  } else if (a.type === 'float') {
    const n = Number(raw);
    if (raw.trim() === '' || Number.isNaN(n))
      throw new ArgError(`argument ${shown}: invalid float value: '${raw}'`);
    v = n;
  }
  if (a.choices && !a.choices.includes(v))
    throw new ArgError(
      `argument ${shown}: invalid choice: '${raw}' (choose from ${a.choices.map((c) => `'${c}'`).join(', ')})`,
    );
  return v;
}

/**
 * Parse `argv` (after the method name) into argparse's namespace: every dest with its value or its
 * default. As rpc.py does, `--long_name` is read as `--long-name`.
 */
export function parseRpcPyArgs(m: RpcPyMethod, argv: readonly string[]): Record<string, unknown> {
  const ns: Record<string, unknown> = {};
  // As argparse: the first argument naming a dest gives its default.
  for (const a of m.args) if (!(a.dest in ns)) ns[a.dest] = a.default;
  const positional = m.args.filter((a) => a.flags.length === 0);
  const byFlag = new Map<string, RpcPyArg>();
  for (const a of m.args) for (const f of a.flags) byFlag.set(f, a);
  const seen = new Set<RpcPyArg>();
  let pos = 0;
  for (let i = 0; i < argv.length; i++) {
    let tok = argv[i];
    if (tok.startsWith('-') && tok.length > 1 && !/^-\d/.test(tok)) {
      let inline: string | undefined;
      if (tok.startsWith('--')) {
        const eq = tok.indexOf('=');
        if (eq > 0) {
          inline = tok.slice(eq + 1);
          tok = tok.slice(0, eq);
        }
        // rpc.py turns --long_name into --long-name on its command line but not in a script from
        // stdin, and a few of its flags are spelled with underscores: either spelling finds them.
        if (!byFlag.has(tok)) tok = tok.replace(/_/g, '-');
      } else if (tok.length > 2 && !byFlag.has(tok)) {
        inline = tok.slice(2);
        tok = tok.slice(0, 2);
      }
      const a = byFlag.get(tok);
      if (!a) throw new ArgError(`unrecognized arguments: ${argv[i]}`);
      seen.add(a);
      if (a.action === 'StoreTrue') ns[a.dest] = true;
      else if (a.action === 'StoreFalse') ns[a.dest] = false;
      else {
        const raw = inline ?? argv[++i];
        if (raw === undefined) throw new ArgError(`argument ${a.flags.join('/')}: expected one argument`);
        ns[a.dest] = convert(a, raw, a.flags.join('/'));
      }
      continue;
    }
    const a = positional[pos++];
    if (!a) throw new ArgError(`unrecognized arguments: ${argv.slice(i).join(' ')}`);
    seen.add(a);
    ns[a.dest] = convert(a, tok, a.dest);
  }
  const missing = m.args.filter((a) => a.required && !seen.has(a) && a.nargs !== '?');
  if (missing.length)
    throw new ArgError(
      `the following arguments are required: ${missing.map((a) => (a.flags.length ? a.flags.join('/') : a.dest)).join(', ')}`,
    );
  return ns;
}

/** rpc.py's usage line of a method, for `storkit rpc METHOD -h`. */
export function rpcPyUsage(name: string, m: RpcPyMethod): string {
  const opt = m.args
    .filter((a) => a.flags.length)
    .map((a) => {
      const f = a.flags[0];
      const v = a.action === 'Store' ? ` ${a.dest.toUpperCase()}` : '';
      return a.required ? `${f}${v}` : `[${f}${v}]`;
    });
  const pos = m.args.filter((a) => !a.flags.length).map((a) => (a.nargs === '?' ? `[${a.dest}]` : a.dest));
  const lines = [`usage: storkit rpc ${name} [-h] ${[...opt, ...pos].join(' ')}`.trimEnd(), ''];
  if (m.help) lines.push(m.help, '');
  if (pos.length) {
    lines.push('positional arguments:');
    for (const a of m.args.filter((x) => !x.flags.length))
      lines.push(`  ${a.dest.padEnd(24)} ${a.help ?? ''}`);
    lines.push('');
  }
  lines.push('options:');
  lines.push(`  ${'-h, --help'.padEnd(24)} show this help message and exit`);
  for (const a of m.args.filter((x) => x.flags.length)) {
    const f = a.flags.join(', ') + (a.action === 'Store' ? ` ${a.dest.toUpperCase()}` : '');
    lines.push(`  ${f.padEnd(24)} ${a.help ?? ''}`);
  }
  return lines.join('\n');
}
