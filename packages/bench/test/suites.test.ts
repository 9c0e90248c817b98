// The repository's own suites: each reports through the kit (or it would be missing from the
// summary), and every micro-benchmark suite runs, briefly, in CI so none rots while the APIs it
// measures change under it.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import { findSuites, REPO_ROOT, runSuites } from '../src/run.js';

function sources(): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  for (const top of ['packages', 'examples']) {
    const dir = join(REPO_ROOT, top);
    if (!existsSync(dir)) continue;
    for (const pkg of readdirSync(dir)) {
      const bench = join(dir, pkg, 'bench');
      if (!existsSync(bench)) continue;
      for (const f of readdirSync(bench))
        if (f.endsWith('.bench.ts'))
          out.push({ path: `${top}/${pkg}/bench/${f}`, text: readFileSync(join(bench, f), 'utf8') });
    }
  }
  return out;
}

describe("the repository's benchmark suites", function () {
  this.timeout(180_000);

  it('every suite reports through @storkit/bench (micro or report), so it reaches the summary', () => {
    const all = sources();
    expect(all.length).to.be.greaterThan(10);
    const silent = all.filter(
      (s) => !/from '@storkit\/bench'/.test(s.text) || !/\b(micro|report)\(/.test(s.text),
    );
    expect(silent.map((s) => s.path)).to.deep.equal([]);
    // Micro-benchmarks go through tinybench by way of the kit, not a Bench of their own.
    const ownBench = all.filter((s) => /from 'tinybench'/.test(s.text));
    expect(ownBench.map((s) => s.path)).to.deep.equal([]);
  });

  it('every micro-benchmark suite runs and records figures (--quick)', () => {
    const micro = new Set(
      sources()
        .filter((s) => /\bmicro\(/.test(s.text))
        .map((s) => s.path),
    );
    const suites = findSuites(REPO_ROOT).filter((s) => {
      const [pkg, name] = s.name.split('/');
      return [...micro].some((p) => p.endsWith(`/${pkg}/bench/${name}.bench.ts`));
    });
    expect(suites.length).to.equal(micro.size);
    const doc = runSuites(suites, {
      root: REPO_ROOT,
      filters: [],
      quick: true,
      suiteOutput: 'ignore',
      timeoutS: 120,
      command: 'test',
    });
    expect(doc.suites.filter((s) => s.status !== 'ok')).to.deep.equal([]);
    for (const s of suites)
      expect(
        doc.records.some((r) => r.suite === s.name),
        s.name,
      ).to.equal(true);
  });
});
