/**
 * rpc.py-style command lines for `storkit rpc METHOD ...`: positional params in the order the
 * method's spec gives, `--name value` / `--name=value` for the rest (dashes or underscores), values
 * converted by the param's schema type; `--json '{...}'` gives the whole params object verbatim.
 */
import { RpcError } from './errors.js';
import type { MethodSpec } from './method.js';
import { describeParams, type Schema } from './schema.js';

function convert(name: string, s: Schema | undefined, raw: string): unknown {
  const bad = (what: string) => RpcError.invalidParams(`--${name}: '${raw}' is not ${what}`);
  switch (s?.type) {
    case 'integer': {
      const v = /^-?0x[0-9a-f]+$/i.test(raw)
        ? Number.parseInt(raw, 16)
        : /^-?\d+$/.test(raw)
          ? Number(raw)
          : Number.NaN;
      if (!Number.isSafeInteger(v)) throw bad('an integer');
      return v;
    }
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw bad('a number');
      return v;
    }
    case 'boolean':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      throw bad('a boolean');
    case 'array':
      if (raw.startsWith('[')) return parseJson(name, raw);
      return raw.split(',').map((x) => convert(name, s.items, x));
    case 'object':
    case 'any':
      return raw.startsWith('{') || raw.startsWith('[') ? parseJson(name, raw) : raw;
    default:
      return raw;
  }
}

function parseJson(name: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw RpcError.invalidParams(`--${name}: not valid JSON`);
  }
}

/** Build the params object for `spec` from argv (everything after the method name). Unknown methods pass `--k v` as strings. */
export function paramsFromArgs(
  spec: MethodSpec | undefined,
  argv: readonly string[],
): Record<string, unknown> | undefined {
  const props = spec?.params?.properties ?? {};
  const out: Record<string, unknown> = {};
  const positional = [...(spec?.positional ?? [])];
  let any = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') {
      const v = parseJson('json', argv[++i] ?? '');
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw RpcError.invalidParams('--json takes a JSON object');
      Object.assign(out, v);
      any = true;
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replaceAll('-', '_');
      const f = props[name];
      let raw: string;
      if (eq > 0) raw = a.slice(eq + 1);
      else if (f?.schema.type === 'boolean' && (i + 1 >= argv.length || argv[i + 1].startsWith('--')))
        raw = 'true';
      else if (i + 1 < argv.length) raw = argv[++i];
      else throw RpcError.invalidParams(`--${name} needs a value`);
      out[name] = convert(name, f?.schema, raw);
      any = true;
      continue;
    }
    const name = positional.shift();
    if (!name) throw RpcError.invalidParams(`unexpected argument '${a}'`);
    out[name] = convert(name, props[name]?.schema, a);
    any = true;
  }
  return any ? out : undefined;
}

/** `storkit rpc METHOD --help` text. */
export function methodHelp(spec: MethodSpec): string {
  const pos = (spec.positional ?? []).map((p) => p.toUpperCase());
  return [
    `usage: storkit rpc ${spec.name}${pos.length ? ` ${pos.join(' ')}` : ''} [--param value ...]`,
    '',
    spec.description,
    '',
    'params:',
    ...describeParams(spec.params),
    ...(spec.state === 'startup'
      ? ['', 'Only before framework_start_init (start the target with --wait-for-rpc).']
      : []),
  ].join('\n');
}
