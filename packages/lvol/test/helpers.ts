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

export function until(h: TestHarness, pred: () => boolean, what = 'condition', rounds = 2_000_000): void {
  for (let i = 0; i < rounds; i++) {
    if (pred()) return;
    h.pollOnce();
    h.advanceTime(10);
  }
  throw new Error(`${what} not reached`);
}

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

export function runErr(h: TestHarness, f: (cb: (err: Error | null) => void) => void, t = 0): Error | null {
  try {
    run(h, f, t);
    return null;
  } catch (e) {
    return e as Error;
  }
}

/** Wait for every examine in progress (a base bdev just registered, its lvstore loading). */
export function examined(h: TestHarness): void {
  run(h, (cb) => bdevWaitForExamine(() => cb(null)));
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
      run(h, (cb) => bdevMallocDelete({ name }, () => cb(null)));
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
    run(
      h,
      (cb) => {
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
      },
      t,
    );
  } finally {
    h.setThread(t);
    ch.put();
    bdevClose(desc);
  }
}
