// `--plugin SPEC` of storkit tgt and storkit rpc: a file (a path, relative to the working directory)
// or a package name (resolved as an import from the working directory would be), whose default
// export is a TargetPlugin (@storkit/app/plugin).
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { asTargetPlugin, type TargetPlugin } from '@storkit/app/plugin';

import { UsageError } from '../command.js';

export async function loadPlugin(spec: string, cwd = process.cwd()): Promise<TargetPlugin> {
  let url: string;
  try {
    const file =
      spec.startsWith('.') || isAbsolute(spec)
        ? resolve(cwd, spec)
        : createRequire(resolve(cwd, 'x.js')).resolve(spec);
    url = pathToFileURL(file).href;
  } catch (e) {
    throw new UsageError(`--plugin ${spec}: ${(e as Error).message.split('\n')[0]}`);
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (e) {
    throw new UsageError(`--plugin ${spec}: cannot load it: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    return asTargetPlugin(mod.default, spec);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
