import type { TestHarness } from '@storkit/reactor/testing';

import { DriverQueue, type DriverSegment } from '../src/driver.js';
import { VhostUserFrontend } from '../src/index.js';
import { Blk, bits, Feature } from '../src/spec.js';
import { pumper, until } from './helpers.js';

/** Where the mock's buffers start in its memory (the rings sit below). */
export const DATA = 64 * 1024;

/**
 * A mock virtio-blk driver (rust-vmm's MockSplitQueue idea): a real vhost-user frontend over its
 * own shared memory, with direct access to the descriptor table and rings so a test can build any
 * chain, sane or hostile, and watch what the device puts in the used ring.
 */
export class MockBlk {
  readonly fe: VhostUserFrontend;
  readonly q: DriverQueue;
  readonly h: TestHarness;

  private constructor(h: TestHarness, fe: VhostUserFrontend, q: DriverQueue) {
    this.h = h;
    this.fe = fe;
    this.q = q;
  }

  static async open(
    h: TestHarness,
    path: string,
    opts: { queueSize?: number; eventIdx?: boolean; protocol?: bigint } = {},
  ): Promise<MockBlk> {
    const fe = VhostUserFrontend.connect(path, { memSize: 1 << 20, pump: pumper(h) });
    const want =
      bits(Feature.RingIndirectDesc, Blk.Feature.Flush, Blk.Feature.BlkSize) |
      (opts.eventIdx ? bits(Feature.RingEventIdx) : 0n);
    const f = await fe.negotiate(want, opts.protocol ?? 0n);
    const size = opts.queueSize ?? 16;
    const q = new DriverQueue(fe.memory.bytes, 0, 0, size);
    q.eventIdx = (f & bits(Feature.RingEventIdx)) !== 0n;
    await fe.startQueue(0, size, q.descAddr, q.availAddr, q.usedAddr);
    return new MockBlk(h, fe, q);
  }

  get mem(): Uint8Array {
    return this.fe.memory.bytes;
  }

  /** Write a request header at `at`. */
  header(at: number, type: number, sector: number): void {
    const dv = this.q.dv;
    dv.setUint32(at, type, true);
    dv.setUint32(at + 4, 0, true);
    dv.setBigUint64(at + 8, BigInt(sector), true);
  }

  /** A well-formed request: header at DATA, data at DATA+4096, status at DATA+512. */
  request(type: number, sector: number, bytes: number, slot = 0): DriverSegment[] {
    const base = DATA + slot * 0x10000;
    this.header(base, type, sector);
    this.mem[base + 512] = 0xee;
    const segs: DriverSegment[] = [{ addr: base, len: 16, write: false }];
    if (bytes > 0) segs.push({ addr: base + 4096, len: bytes, write: type !== Blk.T.Out });
    segs.push({ addr: base + 512, len: 1, write: true });
    return segs;
  }

  status(slot = 0): number {
    return this.mem[DATA + slot * 0x10000 + 512];
  }

  /** Publish and wait for `n` used entries; returns them. */
  async complete(n: number): Promise<[number, number][]> {
    this.q.kick();
    const out: [number, number][] = [];
    await until(
      this.h,
      () => {
        for (let u = this.q.takeUsed(); u !== null; u = this.q.takeUsed()) out.push(u);
        return out.length >= n;
      },
      `${n} used entries`,
    );
    return out;
  }

  close(): void {
    this.fe.close();
  }
}
