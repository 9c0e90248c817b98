// Test helpers: a harness with a malloc bdev holding an image, and a way to run callback APIs to
// completion by polling the simulated reactors.
import { type BdevDesc, bdevClose, bdevOpenExt } from '@storkit/bdev';
import { bdevMallocCreate, bdevMallocDelete } from '@storkit/bdev/modules';
import { DmaRegion } from '@storkit/native';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';

const live: TestHarness[] = [];

const openDisks = new Set<Disk>();
afterEach(() => {
  // A failed test's disks go too: the next test's Malloc0 must be free.
  for (const d of [...openDisks]) {
    try {
      d.close();
    } catch {
      openDisks.delete(d);
    }
  }
  for (const h of live.splice(0)) {
    try {
      h.close();
    } catch {
      // the failed test's own leak
    }
  }
});

export function harness(reactors = 1): TestHarness {
  const h = createTestHarness({ reactors });
  live.push(h);
  return h;
}

/** Poll until `pred` holds (fake clock advancing 10 µs per round). */
export function until(h: TestHarness, pred: () => boolean, what = 'condition', rounds = 2_000_000): void {
  for (let i = 0; i < rounds; i++) {
    if (pred()) return;
    h.pollOnce();
    h.advanceTime(10);
  }
  throw new Error(`${what} not reached`);
}

/** Run a callback-style call on thread `t` of the harness and poll until it answers. */
export function run<T = unknown>(
  h: TestHarness,
  f: (cb: (err: Error | null, v?: T) => void) => void,
  t = 0,
): T {
  let out: { err: Error | null; v?: T } | null = null;
  h.setThread(t);
  f((err, v) => {
    out = { err, v };
  });
  until(h, () => out !== null, 'callback');
  h.setThread(t);
  const o = out as unknown as { err: Error | null; v?: T };
  if (o.err !== null) throw o.err;
  return o.v as T;
}

/** Like run, but returns the error (null on success). */
export function runErr(h: TestHarness, f: (cb: (err: Error | null) => void) => void, t = 0): Error | null {
  try {
    run(h, f, t);
    return null;
  } catch (e) {
    return e as Error;
  }
}

export interface Disk {
  name: string;
  bytes: Uint8Array;
  desc: BdevDesc;
  close(): void;
}

/** A malloc bdev of `size` bytes (or holding `image`), opened for writing on the current thread. */
export function disk(
  h: TestHarness,
  opts: { size?: number; image?: Uint8Array; blockSize?: number; name?: string },
): Disk {
  h.setThread(0);
  const blockSize = opts.blockSize ?? 4096;
  const size = opts.image?.length ?? opts.size ?? 16 * 1024 * 1024;
  const name = opts.name ?? 'Malloc0';
  const { replay } = bdevMallocCreate({ name, num_blocks: size / blockSize, block_size: blockSize });
  const region = DmaRegion.attach(replay.storkit_region as number);
  const bytes = region.bytes.subarray(0, size);
  if (opts.image) bytes.set(opts.image);
  const desc = bdevOpenExt(name, true, () => {});
  const d: Disk = {
    name,
    bytes,
    desc,
    close() {
      openDisks.delete(d);
      h.setThread(0);
      bdevClose(desc);
      run(h, (cb) => bdevMallocDelete({ name }, () => cb(null)));
      region.close();
    },
  };
  openDisks.add(d);
  return d;
}

export const sleep0 = () => {};
