// Helpers for tests that run code in worker_threads against the same @storkit/native.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';

/** URL of this package's built entry point, for `import()` inside eval'd workers. */
export const NATIVE = new URL('../src/index.js', import.meta.url).href;

/**
 * Start an eval'd worker. `body` is the body of an async function with `n` (the native
 * module), `data` (workerData) and `port` (parentPort) in scope.
 */
export function startWorker(body: string, data: unknown): Worker {
  const src = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData.__mod).then(async (n) => {
  const data = workerData; const port = parentPort;
  ${body}
}).catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });`;
  const w = new Worker(src, { eval: true, workerData: { ...(data as object), __mod: NATIVE } });
  // Listen from the start: a worker may exit before the test gets around to awaiting it.
  exits.set(w, new Promise((resolve) => w.once('exit', resolve)));
  return w;
}

const exits = new WeakMap<Worker, Promise<number>>();

/** The next message from a worker; rejects on an error message, error event or early exit. */
export function nextMessage<T>(w: Worker): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      w.off('message', onMsg);
      w.off('error', reject);
      w.off('exit', onExit);
    };
    const onMsg = (m: T & { error?: string }) => {
      done();
      if (m && typeof m === 'object' && 'error' in m) reject(new Error(m.error));
      else resolve(m);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`worker exited (${code}) before replying`));
    };
    w.on('message', onMsg);
    w.once('error', reject);
    w.once('exit', onExit);
  });
}

/** Resolves with the exit code, even if the worker exited before this was called. */
export function exited(w: Worker): Promise<number> {
  const p = exits.get(w);
  if (!p) throw new Error('exited() needs a worker from startWorker()');
  return p;
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collect garbage and let finalizers (native and FinalizationRegistry) run. */
export async function collect(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 1));
  }
}
