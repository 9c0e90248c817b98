import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { findSuites, main, REPO_ROOT, runSuites } from '../src/run.js';
import type { BenchDoc } from '../src/summary.js';
import { findTargetScripts, main as targetsMain } from '../src/targets.js';

const KIT = new URL('../src/index.js', import.meta.url).href;
const RUN = new URL('../src/run.js', import.meta.url).pathname;

/** A fake repository with suites under packages/NAME/dist/bench. */
function fakeRepo(suites: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'storkit-bench-test-'));
  for (const [path, body] of Object.entries(suites)) {
    const file = join(root, path);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, body);
  }
  return root;
}

const MICRO = `import { micro } from '${KIT}';
let x = 0;
await micro('Demo', [
  { name: 'add', batch: 100, fn: () => { for (let i = 0; i < 100; i++) x += i; } },
  { name: 'baseline add', baseline: true, fn: () => { x++; } },
]);`;
const WHOLE = `import { report, runSeconds } from '${KIT}';
report('Whole', [{ name: 'rate', value: runSeconds('DEMO_S', 7) * 1000, unit: 'IOPS', better: 'higher' }]);`;

describe('bench runner', function () {
  this.timeout(60_000);
  const roots: string[] = [];
  after(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('finds built suites of packages and examples, sorted, and filters by path', () => {
    const root = fakeRepo({
      'packages/b/dist/bench/two.bench.js': '',
      'packages/a/dist/bench/one.bench.js': '',
      'packages/a/dist/bench/helper.js': '',
      'packages/a/bench/one.bench.ts': '',
      'examples/x/dist/bench/ex.bench.js': '',
    });
    roots.push(root);
    expect(findSuites(root).map((s) => s.name)).to.deep.equal(['a/one', 'b/two', 'x/ex']);
    expect(findSuites(root, ['packages/b', 'examples']).map((s) => s.name)).to.deep.equal(['b/two', 'x/ex']);
    expect(findSuites(root, ['nothing'])).to.deep.equal([]);
  });

  it('runs each suite in its own process and gathers micro and whole-run figures; failures are named', () => {
    const root = fakeRepo({
      'packages/demo/dist/bench/micro.bench.js': MICRO,
      'packages/demo/dist/bench/whole.bench.js': WHOLE,
      'packages/demo/dist/bench/crash.bench.js': `import '${KIT}'; throw new Error('boom');`,
      'packages/demo/dist/bench/silent.bench.js': `console.log('measured nothing');`,
    });
    roots.push(root);
    const doc = runSuites(findSuites(root), {
      root,
      filters: [],
      quick: true,
      suiteOutput: 'ignore',
      timeoutS: 60,
      command: 'test',
    });
    expect(doc.suites.map((s) => [s.suite, s.status])).to.deep.equal([
      ['demo/crash', 'failed'],
      ['demo/micro', 'ok'],
      ['demo/silent', 'failed'],
      ['demo/whole', 'ok'],
    ]);
    const micro = doc.records.filter((r) => r.suite === 'demo/micro');
    expect(micro.map((r) => [r.name, r.kind, r.unit, r.better, r.baseline ?? false])).to.deep.equal([
      ['add', 'micro', 'ns/op', 'lower', false],
      ['baseline add', 'micro', 'ns/op', 'lower', true],
    ]);
    for (const r of micro) expect(r.value).to.be.greaterThan(0);
    // --quick makes whole runs 1 s long.
    expect(doc.records.find((r) => r.suite === 'demo/whole')).to.include({
      name: 'rate',
      value: 1000,
      kind: 'run',
      title: 'Whole',
    });
  });

  it('npm run bench: one summary, latest.{json,md,svg} written, --json on stdout, exit 1 when a suite failed', () => {
    const root = fakeRepo({
      'packages/demo/dist/bench/micro.bench.js': MICRO,
      'packages/demo/dist/bench/crash.bench.js': 'process.exit(3);',
    });
    roots.push(root);
    const out = join(root, 'out');
    const r = spawnSync(process.execPath, [RUN, '--root', root, '--quick', '--json', '--out-dir', out], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).to.equal(1);
    const doc = JSON.parse(r.stdout) as BenchDoc;
    expect(doc.format).to.equal('storkit-bench/1');
    expect(doc.quick).to.equal(true);
    expect(doc.records.map((x) => x.name)).to.deep.equal(['add', 'baseline add']);
    expect(r.stderr).to.include('=== summary ===');
    expect(r.stderr).to.include('demo/crash failed: exit 3');
    expect(r.stderr).to.include('2 suites, 2 figures, 1 failed: demo/crash');
    expect(readdirSync(out).sort()).to.deep.equal(['latest.json', 'latest.md', 'latest.svg']);
    expect(JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')).records).to.have.length(2);
    // --compare against the document just written: every figure has a gain.
    const again = spawnSync(
      process.execPath,
      [RUN, '--root', root, '--quick', '--compare', join(out, 'latest.json'), 'micro'],
      { encoding: 'utf8' },
    );
    expect(again.status, again.stderr).to.equal(0);
    expect(again.stdout).to.match(/add\s+[\d.]+ [nµ]s\/op\s+±[\d.]+%\s+x[\d.]+/);
    // A --quick run without --out-dir writes nothing.
    expect(again.stdout).not.to.include('written:');
  });

  it('refuses an unknown filter with exit 2, and a --compare file that is not a bench document', () => {
    const root = fakeRepo({ 'packages/demo/dist/bench/micro.bench.js': MICRO });
    roots.push(root);
    expect(main(['--root', root, 'nothing-matches'])).to.equal(2);
    writeFileSync(join(root, 'bad.json'), '{"records":[]}');
    expect(() => main(['--root', root, '--compare', join(root, 'bad.json')])).to.throw(/not a storkit bench/);
  });
});

describe('bench:targets', function () {
  this.timeout(30_000);
  const roots: string[] = [];
  after(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('runs the scripts that carry the marker, with its arguments, and summarises their IOPS lines', () => {
    const root = fakeRepo({
      'packages/a/bench/pair.sh':
        '#!/usr/bin/env bash\n# bench:targets 3 x\necho "args $1 $2"\necho "QD 32: 1000 IOPS"\n',
      'packages/a/bench/unmarked.sh': '#!/usr/bin/env bash\necho "should not run"\nexit 1\n',
      'packages/b/bench/broken.sh': '#!/usr/bin/env bash\n# bench:targets\necho "QD 1: 5 IOPS"\nexit 4\n',
    });
    roots.push(root);
    expect(findTargetScripts(root).map((s) => [s.file.slice(root.length + 1), s.args])).to.deep.equal([
      ['packages/a/bench/pair.sh', ['3', 'x']],
      ['packages/b/bench/broken.sh', []],
    ]);
    const r = spawnSync(
      process.execPath,
      [new URL('../src/targets.js', import.meta.url).pathname, '--root', root],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).to.equal(1);
    expect(r.stdout).to.include('args 3 x');
    expect(r.stdout).not.to.include('should not run');
    const summary = r.stdout.slice(r.stdout.indexOf('=== summary ==='));
    expect(summary).to.include('packages/a/bench/pair.sh\n  QD 32: 1000 IOPS');
    expect(summary).to.include('packages/b/bench/broken.sh  FAILED\n  QD 1: 5 IOPS');
    expect(targetsMain(['--root', root, 'nothing'])).to.equal(2);
  });

  it("finds the repository's own side-by-side scripts", () => {
    const names = findTargetScripts(REPO_ROOT).map((s) => s.file.slice(REPO_ROOT.length));
    expect(names).to.include.members([
      'packages/iscsi/bench/side-by-side.sh',
      'packages/nvmf/bench/tgt-perf.sh',
      'packages/vhost/bench/side-by-side.sh',
    ]);
  });
});
