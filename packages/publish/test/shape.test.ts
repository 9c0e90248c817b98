// Each public package.json is ready for `npm publish`: found by walking the workspaces, so a
// package added later is held to the same rules without anyone listing it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import { publishable, REPO_ROOT, runtimeDeps, type Workspace, workspaces } from '../src/workspaces.js';

const all = workspaces(REPO_ROOT);
const pub = publishable(REPO_ROOT);
const byName = new Map(all.map((w) => [w.manifest.name, w]));

/** Bare module specifiers a package's sources import (static and dynamic). */
function importsOf(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|js)$/.test(f) && !f.endsWith('.d.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(
          /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g,
        )) {
          const spec = m[1] ?? m[2];
          if (spec.startsWith('.') || spec.startsWith('node:')) continue;
          const parts = spec.split('/');
          out.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]);
        }
      }
    }
  };
  walk(dir);
  return out;
}

describe('publishing shape of every public package', () => {
  it('finds the packages by walking the workspaces, the libraries public and the tools private', () => {
    const names = pub.map((w) => w.manifest.name);
    expect(names).to.include.members([
      '@storkit/native-binding',
      '@storkit/native',
      '@storkit/reactor',
      '@storkit/cli',
    ]);
    expect(names).not.to.include('@storkit/bench');
    expect(names.filter((n) => n.includes('example'))).to.deep.equal([]);
    // The import scan behind 'declares every package its sources import' sees real imports (it can fail).
    expect([...importsOf(join(REPO_ROOT, 'packages', 'reactor', 'src'))]).to.include.members([
      'comlink',
      'piscina',
      '@storkit/native',
    ]);
    // A private package under packages/ is a tool of this repository and says so; a library copied from
    // an older package.json with "private": true would otherwise be skipped here without a word.
    for (const w of all.filter((x) => x.rel.startsWith('packages/') && x.manifest.private === true))
      expect(
        (w.manifest as { storkit?: { tool?: string } }).storkit?.tool,
        `${w.rel} is private: a library drops "private" (packages/publish/README.md); a tool says what it is for in "storkit": { "tool": "..." }`,
      ).to.be.a('string');
    // Every directory under packages/ is a workspace.
    for (const d of readdirSync(join(REPO_ROOT, 'packages')))
      if (existsSync(join(REPO_ROOT, 'packages', d, 'package.json')))
        expect(
          all.some((w) => w.rel === `packages/${d}`),
          d,
        ).to.equal(true);
  });

  for (const w of pub) {
    describe(w.manifest.name, () => {
      const m = w.manifest;
      it('has the fields npm publish and installers read: license, engines, files, types, exports, access', () => {
        expect(m.version).to.match(/^\d+\.\d+\.\d+/);
        expect(m.description, 'description').to.be.a('string').and.not.equal('');
        expect(m.license).to.equal('BSD-3-Clause');
        expect(m.engines?.node).to.equal('>=20.19');
        expect(m.files, 'files').to.be.an('array').that.is.not.empty;
        expect(m.publishConfig?.access).to.equal('public');
        expect(existsSync(join(w.dir, 'README.md')), 'README.md').to.equal(true);
        expect(m.types, 'types').to.be.a('string');
        expect(m.main, 'main').to.be.a('string');
        if (m.napi) return;
        expect(m.type).to.equal('module');
        expect(m.files).to.not.include('dist');
        for (const [sub, e] of Object.entries(m.exports ?? {})) {
          expect(e.types, `exports[${sub}].types`).to.match(/^\.\/dist\/src\/.*\.d\.ts$/);
          expect(e.default, `exports[${sub}].default`).to.match(/^\.\/dist\/src\/.*\.js$/);
        }
        expect(m.exports?.['.']?.default).to.equal(m.main);
        expect(m.exports?.['.']?.types).to.equal(m.types);
      });

      it('has a README that names each of its entry points and links an example', () => {
        const readme = readFileSync(join(w.dir, 'README.md'), 'utf8');
        for (const sub of Object.keys(m.exports ?? {}).filter((k) => !k.includes('*')))
          expect(readme, `README names ${m.name}${sub.slice(1)}`).to.include(m.name + sub.slice(1));
        if (m.napi) return;
        const links = [...readme.matchAll(/\]\((\.\.\/\.\.\/examples\/[a-z0-9-]+)\)/g)].map((x) => x[1]);
        expect(links, 'README links an example ([name](../../examples/NAME))').to.not.be.empty;
        for (const l of links) expect(existsSync(join(w.dir, l, 'README.md')), l).to.equal(true);
      });

      it('depends only on public packages of this repository at their own version', () => {
        for (const [dep, range] of Object.entries(runtimeDeps(m))) {
          const ws = byName.get(dep);
          if (ws === undefined) continue;
          expect(ws.manifest.private, `${dep} is private`).to.not.equal(true);
          expect(range, dep).to.equal(ws.manifest.version);
        }
      });

      if (!m.napi)
        it('declares every package its sources import', () => {
          const declared = new Set(Object.keys(runtimeDeps(m)));
          const missing = [...importsOf(join(w.dir, 'src'))].filter((p) => p !== m.name && !declared.has(p));
          expect(missing).to.deep.equal([]);
        });
    });
  }

  it('ships the native binding the napi-rs way: a loader package, one optional package per platform target', () => {
    const bindings = pub.filter((w) => w.manifest.napi);
    expect(bindings.map((w) => w.manifest.name)).to.deep.equal(['@storkit/native-binding']);
    for (const w of bindings as Workspace[]) {
      const m = w.manifest;
      expect(m.files).to.deep.equal(['index.js', 'index.d.ts']);
      expect(m.scripts?.prepublishOnly).to.match(/^napi pre-publish -t npm/);
      const loader = readFileSync(join(w.dir, 'index.js'), 'utf8');
      const platforms = readdirSync(join(w.dir, 'npm'));
      expect(platforms.length).to.equal(m.napi!.targets.length);
      for (const p of platforms) {
        const pm = JSON.parse(readFileSync(join(w.dir, 'npm', p, 'package.json'), 'utf8'));
        expect(pm.name).to.equal(`${m.name}-${p}`);
        expect(pm.version).to.equal(m.version);
        expect(pm.main).to.equal(`${m.napi!.binaryName}.${p}.node`);
        expect(pm.files).to.deep.equal([pm.main]);
        expect(pm.os).to.be.an('array').that.is.not.empty;
        expect(pm.cpu).to.be.an('array').that.is.not.empty;
        // The generated loader falls back to exactly this package when no local binary sits next to it.
        expect(loader).to.include(`require('${pm.name}')`);
      }
    }
  });
});

describe('every example: copy-able, built and tested in CI', () => {
  const rootRefs = (
    JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { references: { path: string }[] }
  ).references.map((r) => r.path);
  const examples = all.filter((w) => w.rel.startsWith('examples/'));

  it('finds the examples', () => {
    expect(examples.map((w) => w.rel)).to.include.members([
      'examples/hello-reactor',
      'examples/iscsi-target',
    ]);
  });

  for (const w of examples) {
    it(`${w.rel}: private, README, a standalone tsconfig, build/start/test scripts, its imports declared, a test, built by tsc -b`, () => {
      const m = w.manifest;
      expect(m.private).to.equal(true);
      expect(existsSync(join(w.dir, 'README.md'))).to.equal(true);
      // JSONC: drop // comment lines before parsing.
      const ts = JSON.parse(
        readFileSync(join(w.dir, 'tsconfig.json'), 'utf8')
          .split('\n')
          .filter((l) => !l.trim().startsWith('//'))
          .join('\n'),
      );
      expect(ts.extends, 'tsconfig extends nothing outside the directory').to.equal(undefined);
      expect(ts.references, 'tsconfig references nothing outside the directory').to.equal(undefined);
      expect(Object.keys(m.scripts ?? {})).to.include.members(['build', 'start', 'test']);
      const declared = new Set([...Object.keys(runtimeDeps(m)), ...Object.keys(m.devDependencies ?? {})]);
      const used = [...importsOf(join(w.dir, 'src')), ...importsOf(join(w.dir, 'test'))];
      expect(used.filter((p) => !declared.has(p))).to.deep.equal([]);
      expect(readdirSync(join(w.dir, 'test')).some((f) => f.endsWith('.test.ts'))).to.equal(true);
      expect(
        rootRefs,
        'referenced by the root tsconfig, so tsc -b builds it and npm test runs its test',
      ).to.include(w.rel);
    });
  }
});
