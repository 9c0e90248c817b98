// The packages as npm would publish them: every public workspace packed (npm pack), the tarballs
// installed into an empty project with no registry copy of storkit (third-party packages come from
// npm's cache or registry), every example copied there and built against them alone, every entry
// point loaded, and the copy of examples/hello-reactor run with the commands of its README. Nothing
// is published.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { type Packed, packAll } from '../src/pack.js';
import { publishable, REPO_ROOT, readManifest } from '../src/workspaces.js';

/** The lines of a README's first ```sh block that start with `npm ` (comments cut). */
export function readmeCommands(readme: string): string[] {
  const block = /```sh\n([\s\S]*?)```/.exec(readme);
  if (block === null) throw new Error('README has no ```sh block');
  return block[1]
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npm '));
}

/** Copy an example directory the way a newcomer would: its files, no build output. */
export function copyExample(name: string, to: string): string {
  const dir = join(to, name);
  cpSync(join(REPO_ROOT, 'examples', name), dir, {
    recursive: true,
    filter: (src) => !/\/(dist|node_modules)$/.test(src) && !src.endsWith('.tsbuildinfo'),
  });
  return dir;
}

function sh(cmd: string, cwd: string, timeoutS = 300): string {
  const r = spawnSync('sh', ['-c', cmd], {
    cwd,
    encoding: 'utf8',
    timeout: timeoutS * 1000,
    env: {
      ...process.env,
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    },
  });
  if (r.status !== 0)
    throw new Error(
      `${cmd} (in ${cwd}): ${r.error?.message ?? `exit ${r.status}`}\n${r.stdout}\n${r.stderr}`,
    );
  return r.stdout;
}

describe('packed packages, installed from their tarballs', function () {
  this.timeout(900_000);
  let tmp = '';
  let packed: Packed[] = [];
  /** The project the examples were copied into (the tarballs installed once). */
  let copies = '';

  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'storkit-packed-'));
    packed = packAll(REPO_ROOT, join(tmp, 'tgz'));
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('packs every public workspace, and a platform package for the native binding', () => {
    const names = packed.map((p) => p.name).sort();
    const expected = publishable(REPO_ROOT).map((w) => w.manifest.name);
    expect(names).to.include.members(expected);
    expect(names.filter((n) => !expected.includes(n))).to.deep.equal([
      '@storkit/native-binding-linux-x64-gnu',
    ]);
  });

  it('each tarball holds what its main, types, exports and bin name, and no tests or benchmarks', () => {
    for (const p of packed) {
      const m = JSON.parse(
        execFileSync('tar', ['-xOzf', p.tarball, 'package/package.json'], { encoding: 'utf8' }),
      );
      const targets = [m.main, m.types, ...Object.values(m.bin ?? {})];
      for (const e of Object.values(m.exports ?? {}) as { types: string; default: string }[])
        targets.push(e.types, e.default);
      for (const t of targets.filter((x) => x !== undefined)) {
        // A pattern (`./dist/src/reactor-modules/*.js`) must match at least one file.
        const [pre, post] = t.replace(/^\.\//, '').split('*');
        const hits = p.files.filter((f) =>
          post === undefined ? f === pre : f.startsWith(pre) && f.endsWith(post),
        );
        expect(hits, `${p.name}: ${t}`).to.not.be.empty;
      }
      expect(
        p.files.filter((f) => /(^|\/)(test|bench)\//.test(f) || f.endsWith('.tsbuildinfo')),
        p.name,
      ).to.deep.equal([]);
      for (const b of Object.values(m.bin ?? {}) as string[]) {
        const head = execFileSync('tar', ['-xOzf', p.tarball, `package/${b.replace(/^\.\//, '')}`], {
          encoding: 'utf8',
        });
        expect(head.startsWith('#!/usr/bin/env node'), `${p.name} bin ${b}`).to.equal(true);
      }
      if (p.name === '@storkit/native-binding') {
        // The loader package has no binary; napi pre-publish named the platform package.
        expect(p.files.filter((f) => f.endsWith('.node'))).to.deep.equal([]);
        expect(m.optionalDependencies).to.deep.equal({ '@storkit/native-binding-linux-x64-gnu': m.version });
      }
      if (p.name === '@storkit/native-binding-linux-x64-gnu')
        expect(p.files).to.include('storkit.linux-x64-gnu.node');
    }
  });

  it('every example builds in a copy, against the installed packages alone (their typings, their exports)', () => {
    // One install for all: the examples are copied under a project that has the tarballs (and the
    // examples' dev tools) in its node_modules, which Node and tsc find from each copy.
    const project = join(tmp, 'project');
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'copies', private: true, type: 'module' }),
    );
    const dev = Object.entries(
      readManifest(join(REPO_ROOT, 'examples', 'hello-reactor')).devDependencies ?? {},
    );
    sh(
      `npm install --prefer-offline ${packed.map((p) => p.tarball).join(' ')} ${dev.map(([n, v]) => `'${n}@${v}'`).join(' ')}`,
      project,
    );
    const examples = readdirSync(join(REPO_ROOT, 'examples')).filter((d) =>
      existsSync(join(REPO_ROOT, 'examples', d, 'package.json')),
    );
    expect(examples).to.include.members(['hello-reactor', 'iscsi-target', 'nvmf-target', 'vhost-blk']);
    for (const name of examples) copyExample(name, project);
    // What each copy's `npm run build` (tsc -p .) does, in one tsc run.
    sh(`npx tsc -b ${examples.join(' ')}`, project);
    for (const name of examples) expect(existsSync(join(project, name, 'dist', 'src')), name).to.equal(true);
    copies = project;
  });

  it("every entry point of every package loads from the install; the binary is the platform package's", () => {
    const specs = packed
      .filter((p) => p.name !== '@storkit/native-binding-linux-x64-gnu')
      .flatMap((p) => {
        const m = JSON.parse(readFileSync(join(copies, 'node_modules', p.name, 'package.json'), 'utf8'));
        if (!m.exports) return [p.name];
        return Object.entries(m.exports as Record<string, { default: string }>).flatMap(([sub, e]) => {
          if (!sub.includes('*')) return [p.name + sub.slice(1)];
          // A pattern export: every file it matches in the tarball.
          const [pre, post] = e.default.replace(/^\.\//, '').split('*');
          return p.files
            .filter((f) => f.startsWith(pre) && f.endsWith(post))
            .map((f) => p.name + sub.slice(1).replace('*', f.slice(pre.length, f.length - post.length)));
        });
      });
    expect(specs).to.include('@storkit/app/reactor-modules/bdev');
    const loaded = sh(
      `node --input-type=module -e "for (const s of ${JSON.stringify(specs).replace(/"/g, "'")}) await import(s); const n = await import('@storkit/native'); console.log('ok', typeof n.ticks())"`,
      copies,
    );
    expect(loaded.trim()).to.equal('ok number');
    expect(
      existsSync(
        join(copies, 'node_modules/@storkit/native-binding-linux-x64-gnu/storkit.linux-x64-gnu.node'),
      ),
    ).to.equal(true);
    expect(
      readdirSync(join(copies, 'node_modules/@storkit/native-binding')).filter((f) => f.endsWith('.node')),
    ).to.deep.equal([]);
  });

  it("the copy of examples/hello-reactor runs its README's commands", () => {
    const dir = join(copies, 'hello-reactor');
    const cmds = readmeCommands(readFileSync(join(dir, 'README.md'), 'utf8'));
    expect(cmds[0]).to.equal('npm install');
    const start = cmds.find((c) => c.startsWith('npm start'));
    expect(start, 'README names an npm start command').to.be.a('string');
    const out = sh(start!, dir);
    const result = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((v) => 'hops' in v);
    const tokens = Number(/--tokens (\d+)/.exec(start!)![1]);
    const laps = Number(/--laps (\d+)/.exec(start!)![1]);
    expect(result).to.include({ status: 0, tokens, hops: tokens * laps * result.perReactor.length });
    // The copy's own test runs there too.
    expect(cmds).to.include('npm test');
    expect(sh('npm test', dir)).to.match(/1 passing/);
  });
});
