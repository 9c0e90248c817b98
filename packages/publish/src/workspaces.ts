// The repository's packages, found rather than listed: the root package.json's `workspaces`
// patterns expanded ("dir" or "dir/*"), each with its manifest. A package is published unless it
// says `"private": true` (examples, the bench kit and this tool).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository this file was built in (packages/publish/dist/src/workspaces.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The package.json fields the publishing checks read. */
export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  type?: string;
  description?: string;
  license?: string;
  engines?: { node?: string };
  files?: string[];
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports?: Record<string, { types?: string; default?: string }>;
  publishConfig?: { access?: string };
  napi?: { binaryName: string; targets: string[] };
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

export interface Workspace {
  /** Absolute directory. */
  dir: string;
  /** Directory relative to the repository root (`packages/native`). */
  rel: string;
  manifest: Manifest;
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
}

/** Every workspace of the repository at `root`, in the order of its patterns, then by name. */
export function workspaces(root: string): Workspace[] {
  const patterns = (readManifest(root) as Manifest & { workspaces?: string[] }).workspaces ?? [];
  const out: Workspace[] = [];
  for (const p of patterns) {
    const rels = p.endsWith('/*')
      ? readdirSync(join(root, p.slice(0, -2)))
          .sort()
          .map((d) => `${p.slice(0, -2)}/${d}`)
      : [p];
    for (const rel of rels) {
      const dir = join(root, rel);
      if (!existsSync(join(dir, 'package.json'))) continue;
      out.push({ dir, rel, manifest: readManifest(dir) });
    }
  }
  return out;
}

/** The workspaces npm would publish. */
export function publishable(root: string): Workspace[] {
  return workspaces(root).filter((w) => w.manifest.private !== true);
}

/** Runtime dependencies of a manifest (what an installer resolves), by name. */
export function runtimeDeps(m: Manifest): Record<string, string> {
  return { ...m.dependencies, ...m.optionalDependencies, ...m.peerDependencies };
}
