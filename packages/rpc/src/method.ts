import type { Infer, ObjectSchema } from './schema.js';

/**
 * When a method may be called (SPDK's SPDK_RPC_STARTUP / SPDK_RPC_RUNTIME): `startup` methods only
 * before framework_start_init (e.g. iscsi_set_options), `runtime` only after, `both` any time.
 */
export type MethodState = 'startup' | 'runtime' | 'both';

/** What a method is, without its implementation: enough for validation, rpc_get_methods and `--help`. */
export interface MethodSpec {
  readonly name: string;
  readonly description: string;
  /** Omitted: the method takes no params (and rejects any). */
  readonly params?: ObjectSchema;
  /** Default `runtime`. */
  readonly state?: MethodState;
  /** Params that `storkit rpc` takes positionally, in order (rpc.py style). */
  readonly positional?: readonly string[];
  /** Deprecated names that still answer (SPDK keeps old names as aliases). */
  readonly aliases?: readonly string[];
}

export interface MethodContext {
  /** The server's state when the call arrived. */
  readonly state: 'startup' | 'runtime';
}

export interface MethodDef<P = Record<string, unknown>> extends MethodSpec {
  /**
   * Runs with validated params (defaults filled). Returns the result (or a promise of it); throws
   * RpcError (or any error with an errno-style `code`) to fail. Must leave nothing half-created on
   * failure: validate and look things up first, then create.
   */
  handler(params: P, ctx: MethodContext): unknown;
}

/**
 * A method of any params type, as a server or subsystem holds it (a handler is a method, so a
 * `MethodDef<P>` of any P is one); the server calls it with params its schema validated.
 */
export type AnyMethodDef = MethodDef<unknown>;

/**
 * A method whose handler's params type is inferred from its schema (one definition): what
 * `validate` returns for `params`, defaults filled; `{}` for a method without params.
 */
export function defineMethod<S extends ObjectSchema | undefined = undefined>(
  def: MethodInit<S>,
): MethodDef<ParamsOf<S>> {
  return def as MethodDef<ParamsOf<S>>;
}

/** What a method's handler receives for schema `S`. */
export type ParamsOf<S extends ObjectSchema | undefined> = S extends ObjectSchema
  ? Infer<S>
  : Record<string, never>;

/** A method definition whose handler's params type follows from its schema. */
export type MethodInit<S extends ObjectSchema | undefined> = Omit<MethodSpec, 'params'> & {
  readonly params?: S;
  handler(params: ParamsOf<S>, ctx: MethodContext): unknown;
};

/**
 * A list of methods and its `add`, which infers each method's params type from its schema
 * (`add({ name, params: obj({...}), handler(p) {...} })`).
 */
export function methodList(): {
  methods: AnyMethodDef[];
  add: <S extends ObjectSchema | undefined = undefined>(def: MethodInit<S>) => void;
} {
  const methods: AnyMethodDef[] = [];
  return { methods, add: (def) => void methods.push(defineMethod(def)) };
}
