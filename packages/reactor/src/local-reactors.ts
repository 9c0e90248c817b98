import type { Thread } from './thread.js';

/** What this isolate knows about the reactors it runs (one in a worker, N in the test harness). */
export interface LocalReactor {
  readonly index: number;
  readonly threads: readonly Thread[];
  /** The live thread with this id, if it runs on this reactor. */
  thread(id: number): Thread | undefined;
}

const reactors: LocalReactor[] = [];
// Sized for the mesh's 256-reactor limit so lookups of remote indices stay in bounds (send() asks
// for every message whether its target reactor runs here).
const byIndex: (LocalReactor | undefined)[] = new Array(256).fill(undefined);

/** @internal */
export function addLocalReactor(r: LocalReactor): void {
  // One reactor per index: a reactor created at an index another still holds (a test harness that
  // was never closed) supersedes it, so the count and the index map keep agreeing.
  const old = byIndex[r.index];
  if (old !== undefined) reactors.splice(reactors.indexOf(old), 1);
  reactors.push(r);
  reactors.sort((a, b) => a.index - b.index);
  byIndex[r.index] = r;
}

/** @internal */
export function removeLocalReactor(r: LocalReactor): void {
  const i = reactors.indexOf(r);
  if (i >= 0) reactors.splice(i, 1);
  if (byIndex[r.index] === r) byIndex[r.index] = undefined;
}

/** The reactor with this index if it runs in this isolate. */
export function localReactor(index: number): LocalReactor | undefined {
  return byIndex[index];
}

/** The reactors running in this isolate, by index. */
export function localReactors(): readonly LocalReactor[] {
  return reactors;
}

/** Every live thread of this isolate, reactor by reactor, in creation order. */
export function* localThreads(): Generator<Thread> {
  for (const r of reactors) yield* r.threads;
}
