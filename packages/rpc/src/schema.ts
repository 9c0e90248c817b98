/**
 * A small schema language for RPC params: enough to validate every SPDK method's params, name the
 * offending field in the error, fill defaults, and generate `storkit rpc METHOD --help`.
 * (SPDK keeps the same facts in schema/schema.yaml.)
 */
import { RpcError } from './errors.js';

interface Base {
  description?: string;
}
/** A string; with `enum`, one of its members (`T` is their union, what the handler receives). */
export interface StringSchema<T extends string = string> extends Base {
  type: 'string';
  enum?: readonly T[];
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
  /** Case-insensitive enum match (SPDK accepts `tcp` and `TCP` for trtype); the canonical spelling is kept. */
  ignoreCase?: boolean;
}
export interface IntegerSchema extends Base {
  type: 'integer';
  min?: number;
  max?: number;
}
export interface NumberSchema extends Base {
  type: 'number';
  min?: number;
  max?: number;
}
export interface BooleanSchema extends Base {
  type: 'boolean';
}
export interface ArraySchema<I extends Schema = Schema> extends Base {
  type: 'array';
  items: I;
  minItems?: number;
  maxItems?: number;
}
/**
 * One property of an object schema. `required` and `default` decide whether the validated params
 * always hold the key (required, or filled from the default) or may lack it.
 */
export interface Field<S extends Schema = Schema> {
  schema: S;
  required?: boolean;
  default?: unknown;
  /**
   * A parameter SPDK has and storkit accepts (so SPDK's configs load) but does not act on: any
   * value other than SPDK's default is reported to the server's `onInert` (the app warns once).
   */
  inert?: { spdkDefault: unknown };
}

/** A value given for an inert parameter that differs from SPDK's default. */
export interface InertNote {
  path: string;
  value: unknown;
  spdkDefault: unknown;
}
/** A property the validated params always hold: required, or filled from its default. */
export interface PresentField<S extends Schema = Schema> extends Field<S> {
  readonly present: true;
}
export type Fields = Readonly<Record<string, Field>>;
export interface ObjectSchema<F extends Fields = Fields, X extends boolean = boolean> extends Base {
  type: 'object';
  properties: F;
  /** Accept (and keep) keys not listed. SPDK rejects unknown keys, so the default is false. */
  additional?: X;
}
export interface AnySchema extends Base {
  type: 'any';
}
export type Schema =
  | StringSchema
  | IntegerSchema
  | NumberSchema
  | BooleanSchema
  | ArraySchema
  | ObjectSchema
  | AnySchema;

/**
 * The TypeScript type of what `validate(schema, x)` returns: the one definition of a method's
 * params is its schema, and handlers get this type.
 */
export type Infer<S> =
  S extends StringSchema<infer T>
    ? T
    : S extends IntegerSchema | NumberSchema
      ? number
      : S extends BooleanSchema
        ? boolean
        : S extends ArraySchema<infer I>
          ? Infer<I>[]
          : S extends ObjectSchema<infer F, infer X>
            ? InferObject<F> & (true extends X ? Record<string, unknown> : unknown)
            : unknown;

type Flat<T> = { [K in keyof T]: T[K] } & {};
type InferObject<F extends Fields> = Flat<
  { -readonly [K in keyof F as F[K] extends PresentField ? K : never]: Infer<F[K]['schema']> } & {
    -readonly [K in keyof F as F[K] extends PresentField ? never : K]?: Infer<F[K]['schema']>;
  }
>;

const MAX_DEPTH = 32;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function define(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function fail(path: string, msg: string): never {
  throw RpcError.invalidParams(`${path || 'params'}: ${msg}`);
}

/**
 * Check `value` against `schema`; returns the value with defaults filled in (a new object for
 * objects, so the caller's input is never mutated). Throws RpcError(-32602) naming the bad field.
 */
export function validate(schema: Schema, value: unknown, path = '', depth = 0, inert?: InertNote[]): unknown {
  if (depth > MAX_DEPTH) fail(path, 'nested too deeply');
  switch (schema.type) {
    case 'any':
      return value;
    case 'string': {
      if (typeof value !== 'string') fail(path, `expected a string, got ${typeName(value)}`);
      if (schema.minLength !== undefined && value.length < schema.minLength)
        fail(path, `must be at least ${schema.minLength} characters`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength)
        fail(path, `must be at most ${schema.maxLength} characters`);
      if (schema.pattern && !schema.pattern.test(value)) fail(path, `'${value}' has the wrong form`);
      if (schema.enum) {
        const hit = schema.ignoreCase
          ? schema.enum.find((e) => e.toLowerCase() === value.toLowerCase())
          : schema.enum.find((e) => e === value);
        if (hit === undefined) fail(path, `'${value}' is not one of ${schema.enum.join(', ')}`);
        return hit;
      }
      return value;
    }
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value))
        fail(
          path,
          `expected ${schema.type === 'integer' ? 'an integer' : 'a number'}, got ${typeName(value)}`,
        );
      if (schema.type === 'integer' && !Number.isSafeInteger(value))
        fail(path, `expected an integer, got ${value}`);
      if (schema.min !== undefined && value < schema.min)
        fail(path, `${value} is below the minimum ${schema.min}`);
      if (schema.max !== undefined && value > schema.max)
        fail(path, `${value} is above the maximum ${schema.max}`);
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(path, `expected a boolean, got ${typeName(value)}`);
      return value;
    case 'array': {
      if (!Array.isArray(value)) fail(path, `expected an array, got ${typeName(value)}`);
      if (schema.minItems !== undefined && value.length < schema.minItems)
        fail(path, `needs at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems)
        fail(path, `takes at most ${schema.maxItems} items`);
      return value.map((v, i) => validate(schema.items, v, `${path}[${i}]`, depth + 1, inert));
    }
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        fail(path, `expected an object, got ${typeName(value)}`);
      const src = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(src)) {
        // Own properties only: a key named after an Object.prototype member ('constructor',
        // 'toString', '__proto__') is an unknown parameter like any other, and is stored as a
        // plain key (never through the __proto__ setter, which would let it stand in for fields).
        const f = Object.hasOwn(schema.properties, key) ? schema.properties[key] : undefined;
        const p = path ? `${path}.${key}` : key;
        if (!f) {
          if (!schema.additional) fail(p, 'unknown parameter');
          define(out, key, src[key]);
          continue;
        }
        define(out, key, validate(f.schema, src[key], p, depth + 1, inert));
        if (f.inert && inert && !sameJson(out[key], f.inert.spdkDefault))
          inert.push({ path: p, value: out[key], spdkDefault: f.inert.spdkDefault });
      }
      for (const [key, f] of Object.entries(schema.properties)) {
        if (Object.hasOwn(out, key)) continue;
        if (f.required) fail(path ? `${path}.${key}` : key, 'required parameter missing');
        if (f.default !== undefined) out[key] = structuredClone(f.default);
      }
      return out;
    }
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** One line per parameter, for `--help`. */
export function describeParams(schema: ObjectSchema | undefined): string[] {
  if (!schema) return ['  (no parameters)'];
  const lines: string[] = [];
  for (const [name, f] of Object.entries(schema.properties)) {
    const t = schemaType(f.schema);
    const req = f.required
      ? 'required'
      : f.default !== undefined
        ? `default ${JSON.stringify(f.default)}`
        : f.inert
          ? `accepted, not acted on: SPDK's default ${JSON.stringify(f.inert.spdkDefault)}`
          : 'optional';
    lines.push(
      `  --${name.replaceAll('_', '-')} ${t}  (${req})${f.schema.description ? `  ${f.schema.description}` : ''}`,
    );
  }
  return lines.length ? lines : ['  (no parameters)'];
}

export function schemaType(s: Schema): string {
  switch (s.type) {
    case 'string':
      return s.enum ? s.enum.join('|') : 'STRING';
    case 'integer':
      return 'INT';
    case 'number':
      return 'NUM';
    case 'boolean':
      return 'BOOL';
    case 'array':
      return `[${schemaType(s.items)}...]`;
    case 'object':
      return 'JSON';
    case 'any':
      return 'JSON';
  }
}

// Terse builders keep method definitions readable: `obj({ name: req(str()), block_size: opt(int({min: 512}), 512) })`.
export function str<const T extends string>(
  o: Omit<StringSchema<T>, 'type' | 'enum'> & { enum: readonly T[] },
): StringSchema<T>;
export function str(o?: Omit<StringSchema, 'type'>): StringSchema;
export function str(o: Omit<StringSchema, 'type'> = {}): StringSchema {
  return { type: 'string', ...o };
}
export const int = (o: Omit<IntegerSchema, 'type'> = {}): IntegerSchema => ({ type: 'integer', ...o });
export const num = (o: Omit<NumberSchema, 'type'> = {}): NumberSchema => ({ type: 'number', ...o });
export const bool = (o: Omit<BooleanSchema, 'type'> = {}): BooleanSchema => ({ type: 'boolean', ...o });
export const arr = <I extends Schema>(
  items: I,
  o: Omit<ArraySchema, 'type' | 'items'> = {},
): ArraySchema<I> => ({
  type: 'array',
  items,
  ...o,
});
export function obj<const F extends Fields>(properties: F): ObjectSchema<F, false>;
export function obj<const F extends Fields, X extends boolean = false>(
  properties: F,
  o: Omit<ObjectSchema<F, X>, 'type' | 'properties'>,
): ObjectSchema<F, X>;
export function obj(properties: Fields, o: Omit<ObjectSchema, 'type' | 'properties'> = {}): ObjectSchema {
  return { type: 'object', properties, ...o };
}
export const any = (o: Omit<AnySchema, 'type'> = {}): AnySchema => ({ type: 'any', ...o });
export const req = <S extends Schema>(schema: S): PresentField<S> => ({
  schema,
  required: true,
  present: true,
});
/**
 * An SPDK parameter storkit accepts without acting on it; `spdkDefault` is what SPDK assumes when
 * it is absent (another value is reported once through the server's `onInert`).
 */
export const inert = <S extends Schema>(schema: S, spdkDefault: Infer<S>): Field<S> => ({
  schema,
  inert: { spdkDefault },
});
export function opt<S extends Schema>(schema: S): Field<S>;
export function opt<S extends Schema>(schema: S, dflt: Infer<S>): PresentField<S>;
export function opt<S extends Schema>(schema: S, dflt?: unknown): Field<S> {
  return dflt === undefined ? { schema } : ({ schema, default: dflt, present: true } as PresentField<S>);
}

/**
 * `S`, provided what it validates to fits `T` (a module's own params type): a method whose
 * handler takes `T` declares its schema as `Fits<S, T>`, and a schema that drifts from the module
 * fails to compile where the method is defined.
 */
export type Fits<S extends Schema, T> = S & (Infer<S> extends T ? unknown : never);

/** `params` without the keys `schema` marks inert (accepted, not acted on): what a module gets. */
export function withoutInert<P>(schema: ObjectSchema, params: P): P {
  const out = { ...params } as Record<string, unknown>;
  for (const [k, f] of Object.entries(schema.properties)) if (f.inert) delete out[k];
  return out as P;
}
