import {
  type BdevDesc,
  bdevClose,
  bdevGetIoChannel,
  bdevOpenExt,
  bdevReadv,
  bdevWaitForExamine,
  bdevWritev,
  IoStatus,
} from '@storkit/bdev';
import { bdevMallocCreate, bdevMallocDelete } from '@storkit/bdev/modules';
import { DmaRegion } from '@storkit/native';
import { createTestHarness, type TestHarness } from '@storkit/reactor/testing';

/**
 * The harnesses this file's `harness()` made, closed after each test. Only these: the hook is a
 * root hook, run after every test of every file in the process; closing every open harness there
 * (closeTestHarnesses) closed other files' harnesses made in their `before` hooks.
 */
const live: TestHarness[] = [];

afterEach(() => {
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

/** Wait for every examine in progress (a base bdev just registered, its lvstore loading). */
export function examined(h: TestHarness): void {
  h.run((cb) => bdevWaitForExamine(() => cb(null)));
}

export interface Malloc {
  name: string;
  region: DmaRegion;
  bytes: Uint8Array;
  remove(): void;
}

/** A malloc bdev of `size` bytes or holding `image` (over `region` to reuse another's bytes). */
export function malloc(
  h: TestHarness,
  name: string,
  o: { size?: number; image?: Uint8Array; region?: number; blockSize?: number },
): Malloc {
  h.setThread(0);
  const bs = o.blockSize ?? 4096;
  const size = o.image?.length ?? o.size ?? 16 * 1024 * 1024;
  const { replay } = bdevMallocCreate({
    name,
    num_blocks: size / bs,
    block_size: bs,
    ...(o.region !== undefined ? { storkit_region: o.region } : {}),
  });
  const region = DmaRegion.attach(replay.storkit_region as number);
  const bytes = region.bytes.subarray(0, size);
  if (o.image) bytes.set(o.image);
  return {
    name,
    region,
    bytes,
    remove() {
      h.run((cb) => bdevMallocDelete({ name }, () => cb(null)));
      region.close();
    },
  };
}

/** Read or write a bdev by name through the bdev layer on thread `t`. */
export function bdevIo(
  h: TestHarness,
  name: string,
  write: boolean,
  offset: number,
  buf: Uint8Array,
  t = 0,
): void {
  h.setThread(t);
  const desc: BdevDesc = bdevOpenExt(name, write, () => {});
  const ch = bdevGetIoChannel(desc);
  const n = buf.length / desc.bdev.blockSize;
  try {
    h.run((cb) => {
      const f = write ? bdevWritev : bdevReadv;
      const rc = f(
        desc,
        ch,
        [buf],
        offset,
        n,
        (st) =>
          cb(st === IoStatus.SUCCESS ? null : Object.assign(new Error(`I/O status ${st}`), { status: st })),
        null,
      );
      if (rc !== 0) cb(new Error(`submit ${rc}`));
    }, t);
  } finally {
    h.setThread(t);
    ch.put();
    bdevClose(desc);
  }
}
