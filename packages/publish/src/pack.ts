#!/usr/bin/env node
// npm run pack -- [--out DIR]: a tarball per public workspace, as `npm publish` would upload it (the
// tree must be built: `npm run build`). The native binding goes the napi-rs way: its main package
// holds only the loader and typings and names one optional dependency per platform
// (@storkit/native-binding-linux-x64-gnu, ...), each holding that platform's prebuilt .node. This
// runs napi's own steps on a staged copy (`napi artifacts` moves the built binary into
// npm/<platform>/, `napi pre-publish` writes the optionalDependencies), so the repository is untouched.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { publishable, REPO_ROOT, readManifest, type Workspace } from './workspaces.js';

export interface Packed {
  name: string;
  version: string;
  /** Absolute path of the .tgz. */
  tarball: string;
  /** Paths inside the package (`dist/src/index.js`). */
  files: string[];
}

/** Run a command; throw with its output if it fails. */
export function run(cmd: string, args: readonly string[], cwd: string): string {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${cwd}) failed: ${r.error?.message ?? `exit ${r.status}`}\n${r.stdout}${r.stderr}`,
    );
  return r.stdout;
}

/** `npm pack` package directories into `out`, in one npm run (npm's start-up is most of the cost). */
export function npmPack(dirs: readonly string[], out: string): Packed[] {
  if (dirs.length === 0) return [];
  // --ignore-scripts: the tree is built already; a prepack would only rebuild it.
  const json = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out, ...dirs], out);
  return (
    JSON.parse(json) as { name: string; version: string; filename: string; files: { path: string }[] }[]
  ).map((r) => ({
    name: r.name,
    version: r.version,
    tarball: join(out, r.filename),
    files: r.files.map((f) => f.path),
  }));
}

function napiBin(): string {
  const req = createRequire(import.meta.url);
  const pkg = req.resolve('@napi-rs/cli/package.json');
  const bin = (req(pkg) as { bin: Record<string, string> }).bin.napi;
  return join(pkg, '..', bin);
}

/** Pack a napi-rs binding: its platform packages (each with its built binary), then the main package. */
export function packNapi(ws: Workspace, out: string): Packed[] {
  const stage = mkdtempSync(join(tmpdir(), 'storkit-napi-stage-'));
  try {
    const m = ws.manifest;
    for (const f of ['package.json', 'README.md', 'npm', ...(m.files ?? [])])
      if (existsSync(join(ws.dir, f))) cpSync(join(ws.dir, f), join(stage, f), { recursive: true });
    // The build's outputs: <binaryName>.<platform>.node next to the loader.
    const built = readdirSync(ws.dir).filter(
      (f) => f.startsWith(`${m.napi!.binaryName}.`) && f.endsWith('.node'),
    );
    if (built.length === 0) throw new Error(`${m.name}: no built binary in ${ws.rel} (run npm run build)`);
    for (const f of built) cpSync(join(ws.dir, f), join(stage, f));
    const napi = napiBin();
    run(process.execPath, [napi, 'artifacts', '--output-dir', '.', '--npm-dir', 'npm'], stage);
    run(
      process.execPath,
      [napi, 'pre-publish', '-t', 'npm', '--skip-optional-publish', '--no-gh-release'],
      stage,
    );
    // Platforms not built on this machine have no binary: each is packed on a runner of its own.
    const platforms = readdirSync(join(stage, 'npm'))
      .sort()
      .map((p) => join(stage, 'npm', p))
      .filter((dir) => readdirSync(dir).some((f) => f.endsWith('.node')));
    if (platforms.length === 0)
      throw new Error(
        `${m.name}: no platform package got a binary (${Object.keys(readManifest(stage).optionalDependencies ?? {}).join(', ')})`,
      );
    return npmPack([...platforms, stage], out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Pack every public workspace of the repository at `root` into `out`. */
export function packAll(root: string, out: string): Packed[] {
  mkdirSync(out, { recursive: true });
  const all = publishable(root);
  return [
    ...all.filter((ws) => ws.manifest.napi).flatMap((ws) => packNapi(ws, out)),
    ...npmPack(
      all.filter((ws) => !ws.manifest.napi).map((ws) => ws.dir),
      out,
    ),
  ];
}

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: { out: { type: 'string' }, root: { type: 'string' } },
  });
  const out = resolve(values.out ?? join(REPO_ROOT, 'dist-pack'));
  const packed = packAll(resolve(values.root ?? REPO_ROOT), out);
  for (const p of packed) console.log(`${p.name}@${p.version}  ${p.tarball}  (${p.files.length} files)`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
