// @storkit/app/plugin: how code outside this repository adds to the target app without changing it.
// SPDK links a bdev module into spdk_tgt; storkit imports one: a plugin is an ES module whose default
// export is a TargetPlugin, loaded with `storkit tgt --plugin FILE` (or `new Target({ plugins })`).
// Its reactor modules are imported by every reactor after the app's own; its bdev methods are served
// like the built-in ones (validated by their schema, created on reactor 0 and replayed on the others
// with rollback, deleted everywhere, written by save_config in the bdev section in creation order).
import { type Control, declareControl, defineControl } from '@storkit/reactor';
import type { Infer, MethodSpec, ObjectSchema } from '@storkit/rpc';

import type { Created } from './controls/bdev.js';

export type { Created } from './controls/bdev.js';

/** A bdev module's create and delete methods, declared once; both sides import the declaration. */
export interface BdevMethods<P = never> {
  /** The create method: SPDK style `bdev_<module>_create`, its schema, positional params for `storkit rpc`. */
  readonly create: MethodSpec & { readonly params: ObjectSchema };
  /** The delete method (`bdev_<module>_delete`), which takes `{ name }`. */
  readonly delete: { readonly name: string; readonly description: string };
  /** @internal The control operations behind them (defined in the reactors by defineBdevMethods). */
  readonly ops: { readonly create: Control<P, Created<P>>; readonly delete: Control<{ name: string }, true> };
}

/** What `storkit tgt --plugin FILE` imports: the module's default export. */
export interface TargetPlugin {
  /** For messages and logs. */
  readonly name: string;
  /** Imported by every reactor, after the app's modules: register bdev modules, define controls. */
  readonly reactorModules?: readonly URL[];
  /** Bdev create/delete methods, served like the built-in ones. */
  // biome-ignore lint/suspicious/noExplicitAny: each entry has its own params type
  readonly bdevMethods?: readonly BdevMethods<any>[];
  /** Client-side commands `storkit rpc --plugin FILE` adds (rpc.py's plugin subcommands). */
  readonly rpcCommands?: readonly RpcCommand[];
}

/**
 * A command of `storkit rpc --plugin FILE` that runs in the client, as the subcommands an rpc.py
 * plugin adds in spdk_rpc_plugin_initialize do: it takes its own arguments and calls the target's
 * methods (any number, in any order) through `call`, which fails as rpc.py's client does (the
 * batch or --server line then fails). What it returns is printed: a string as it is, anything
 * else as JSON; nothing for undefined.
 */
export interface RpcCommand {
  /** The command's name on the command line (not a method of the target). */
  readonly name: string;
  /** One line for `storkit rpc --list` and `-h`. */
  readonly description: string;
  run(
    argv: readonly string[],
    call: (method: string, params?: Record<string, unknown>) => Promise<unknown>,
  ): Promise<unknown>;
}

/**
 * Declare a bdev module's methods. `params` is the create method's schema (SPDK's parameter names);
 * the create function receives what it validates to. The delete method takes `{ name }`.
 */
export function declareBdevMethods<S extends ObjectSchema>(spec: {
  create: string;
  delete: string;
  description: string;
  params: S;
  positional?: readonly string[];
}): BdevMethods<Infer<S>> {
  for (const m of [spec.create, spec.delete])
    if (!/^bdev_[a-z0-9_]+$/.test(m)) throw new Error(`bdev method name ${m} is not bdev_<name>`);
  return {
    create: {
      name: spec.create,
      description: spec.description,
      params: spec.params,
      positional: spec.positional,
    },
    delete: { name: spec.delete, description: `Delete a bdev made by ${spec.create}` },
    ops: {
      create: declareControl<Infer<S>, Created<Infer<S>>>(`plugin.${spec.create}`),
      delete: declareControl<{ name: string }, true>(`plugin.${spec.delete}`),
    },
  };
}

/** What a bdev module does on one reactor for its methods. */
export interface BdevMethodsImpl<P> {
  /**
   * Create this reactor's instance. Returns the bdev's name and the params that create the same
   * bdev on the other reactors (with the uuid it generated, any shared handles); throw to refuse.
   */
  create(params: P): { name: string; replay: P };
  /** Delete this reactor's instance; `done` once it is gone. Throw (e.g. ENODEV) to refuse. */
  delete(params: { name: string }, done: () => void): void;
}

/** In a plugin's reactor module: define the methods' work on this reactor. */
export function defineBdevMethods<P>(m: BdevMethods<P>, impl: BdevMethodsImpl<P>): void {
  defineControl(m.ops.create, (p, done) => {
    const c = impl.create(p);
    done(null, { names: [c.name], replay: c.replay });
  });
  defineControl(m.ops.delete, (p, done) => impl.delete(p, () => done(null, true)));
}

/** Check that a loaded module's default export is a TargetPlugin; say what is wrong if not. */
export function asTargetPlugin(v: unknown, from: string): TargetPlugin {
  const p = v as TargetPlugin;
  const bad = (why: string) => Object.assign(new Error(`plugin ${from}: ${why}`), { code: 'EINVAL' });
  if (typeof p !== 'object' || p === null) throw bad('its default export is not a plugin object');
  if (typeof p.name !== 'string' || p.name === '') throw bad('no name');
  if (
    p.reactorModules !== undefined &&
    !(Array.isArray(p.reactorModules) && p.reactorModules.every((u) => u instanceof URL))
  )
    throw bad('reactorModules must be URLs (new URL("./file.js", import.meta.url))');
  if (
    p.bdevMethods !== undefined &&
    !(Array.isArray(p.bdevMethods) && p.bdevMethods.every((m) => m?.ops?.create))
  )
    throw bad('bdevMethods must come from declareBdevMethods');
  if (
    p.rpcCommands !== undefined &&
    !(
      Array.isArray(p.rpcCommands) &&
      p.rpcCommands.every(
        (c) => typeof c?.name === 'string' && /^[\w-]+$/.test(c.name) && typeof c.run === 'function',
      )
    )
  )
    throw bad('rpcCommands must each have a name (letters, digits, _ and -) and a run function');
  return p;
}
