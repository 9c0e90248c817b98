// Test helpers: a harness with a malloc bdev holding an image, and a way to run callback APIs to
// completion by polling the simulated reactors.
import { type BdevDesc, bdevClose, bdevOpenExt } from '@storkit/bdev';
import { bdevMallocCreate, bdevMallocDelete } from '@storkit/bdev/modules';
import { DmaRegion } from '@storkit/native';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';

/**
 * The harnesses this file's `harness()` made: closed after each test. Only these: this hook is a
 * root hook (it runs after every test of every file in the process), and another file's harness,
 * made in its own `before`, must live on until that file's `after` (closeTestHarnesses here closed
 * accel's I/OAT test harness under it in CI, and every later file failed).
 */
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
      h.run((cb) => bdevMallocDelete({ name }, () => cb(null)));
      region.close();
    },
  };
  openDisks.add(d);
  return d;
}

export const sleep0 = () => {};
