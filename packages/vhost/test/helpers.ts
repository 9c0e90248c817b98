import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { IoCb, IoStatus } from '@storkit/block';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';

let seq = 0;
/** A fresh socket path for this test process. */
export function sockPath(tag: string): string {
  return `/tmp/storkit-vhost-${process.pid}-${tag}-${seq++}.sock`;
}

export function harness(): TestHarness {
  return createTestHarness({ reactors: 1 });
}

/** Poll the harness (and let setImmediate completions run) until `cond` holds. */
export async function until(
  h: TestHarness,
  cond: () => boolean,
  what = 'condition',
  ms = 5000,
): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    h.advanceTime(250);
    h.pollOnce();
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await yieldLoop();
  }
}

/** Run one backend call to completion while polling the harness. */
export async function io(h: TestHarness, submit: (cb: IoCb) => void): Promise<IoStatus> {
  let status = null as IoStatus | null;
  submit((s) => {
    status = s;
  });
  await until(h, () => status !== null, 'I/O completion');
  return status as IoStatus;
}

/** Deterministic pattern bytes. */
export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A pump for in-process frontends: advance the fake clock past the control period and poll. */
export function pumper(h: TestHarness): () => void {
  return () => {
    h.advanceTime(250);
    h.pollOnce();
  };
}
