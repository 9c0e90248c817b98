// The engine behind `storkit nvme-perf` (SPDK's perf): keeps `queueDepth` I/Os in flight over one
// or more polled qpairs (SPDK's -P: the depth is spread round robin over them) for `seconds`,
// resubmitting from the completion callback. Contexts, buffers and the
// latency histogram are allocated up front; the loop itself allocates nothing. Buffers live in one
// DMA region, so a PCIe controller reads and writes them in place (zero copy).

import { DmaRegion, readTicks, ticksToUs } from '@storkit/native';

import type { NvmeController } from '../host/controller.js';
import type { Completion, HostQpair } from '../host/qpair.js';
import { LatencyHistogram } from './histogram.js';

/** How long a loop turn polls native qpairs before it yields to the event loop. */
const SPIN_MS = 1;

export type Workload = 'read' | 'write' | 'randread' | 'randwrite' | 'rw' | 'randrw';

export interface PerfOptions {
  nsid?: number;
  queueDepth: number;
  ioSize: number;
  workload: Workload;
  /** Percentage of reads for rw/randrw. */
  readPercent?: number;
  seconds: number;
  /** Seconds to run before counting. */
  warmup?: number;
}

export interface PerfResult {
  ios: number;
  reads: number;
  writes: number;
  errors: number;
  seconds: number;
  iops: number;
  mibps: number;
  avgUs: number;
  minUs: number;
  maxUs: number;
  histogram: LatencyHistogram;
}

class Ctx {
  readonly buf: Uint8Array;
  readonly qp: HostQpair;
  start = 0;
  isRead = false;
  constructor(buf: Uint8Array, fill: number, qp: HostQpair) {
    this.buf = buf.fill(fill);
    this.qp = qp;
  }
}

// xorshift32: a fast, allocation-free PRNG for offsets and the read/write mix.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

export async function runPerf(
  ctrlr: NvmeController,
  qpairs: HostQpair | readonly HostQpair[],
  o: PerfOptions,
): Promise<PerfResult> {
  const qps: readonly HostQpair[] = Array.isArray(qpairs) ? qpairs : [qpairs as HostQpair];
  if (qps.length === 0) throw new Error('no qpair to drive');
  const failed = (): Error | null => {
    for (const q of qps) if (q.failed) return q.failed;
    return null;
  };
  const nsid = o.nsid ?? 1;
  const ns = await ctrlr.identifyNamespace(nsid);
  if (ns.nsze === 0) throw new Error(`namespace ${nsid} is not active`);
  if (o.ioSize % ns.blockSize)
    throw new Error(`I/O size ${o.ioSize} is not a multiple of the ${ns.blockSize}-byte block`);
  if (o.ioSize > ctrlr.maxTransferSize)
    throw new Error(`I/O size ${o.ioSize} exceeds MDTS (${ctrlr.maxTransferSize})`);
  const nlb = o.ioSize / ns.blockSize;
  const slots = Math.floor(ns.nsze / nlb);
  const random = o.workload.startsWith('rand');
  const readPct =
    o.workload === 'read' || o.workload === 'randread'
      ? 100
      : o.workload === 'write' || o.workload === 'randwrite'
        ? 0
        : (o.readPercent ?? 50);
  const rand = rng(0x9e3779b9);
  const hist = new LatencyHistogram();
  let seq = 0;
  let counting = (o.warmup ?? 0) === 0;
  let stopping = false;
  let inflight = 0;
  let ios = 0;
  let reads = 0;
  let writes = 0;
  let errors = 0;

  const submit = (c: Ctx): boolean => {
    const slot = random ? Math.floor(rand() * slots) : seq++ % slots;
    c.isRead = readPct === 100 || (readPct > 0 && rand() * 100 < readPct);
    c.start = readTicks();
    return c.isRead
      ? c.qp.read(nsid, slot * nlb, nlb, c.buf, done, c)
      : c.qp.write(nsid, slot * nlb, nlb, c.buf, done, c);
  };
  const done: Completion<Ctx> = (c, status) => {
    inflight--;
    if (counting) {
      hist.record(ticksToUs(readTicks() - c.start));
      ios++;
      if (status !== 0) errors++;
      else if (c.isRead) reads++;
      else writes++;
    }
    if (!stopping) {
      // The slot of the I/O that just completed is free again, so this cannot fail for lack of one.
      if (submit(c)) inflight++;
    }
  };

  // One buffer per I/O in flight, 4 KiB aligned, in DMA memory.
  const stride = Math.ceil(o.ioSize / 4096) * 4096;
  const region = DmaRegion.create(stride * o.queueDepth);
  const ctxs = Array.from(
    { length: o.queueDepth },
    (_, i) =>
      new Ctx(region.bytes.subarray(i * stride, i * stride + o.ioSize), i & 0xff, qps[i % qps.length]),
  );
  for (const c of ctxs) if (submit(c)) inflight++;
  const warmupEnd = performance.now() + (o.warmup ?? 0) * 1000;
  let t0 = performance.now();
  let end = t0 + o.seconds * 1000 + (o.warmup ?? 0) * 1000;
  // Poll. node:net qpairs get their bytes from the event loop, so each poll yields with
  // setImmediate. Others read the transport themselves: poll them back to back for a while
  // (SPDK's busy poll) and give the event loop (timers, the admin queue) a turn in between.
  const spinMs = qps.some((q) => q.needsEventLoop) ? 0 : SPIN_MS;
  await new Promise<void>((resolve) => {
    const loop = (): void => {
      const turn = performance.now();
      let now = turn;
      do {
        for (let i = 0; i < qps.length; i++) qps[i].processCompletions(0);
        now = performance.now();
        if (!counting && now >= warmupEnd) {
          counting = true;
          t0 = now;
          end = now + o.seconds * 1000;
        }
        if (!stopping && now >= end) stopping = true;
        if ((stopping && inflight === 0) || failed() !== null) {
          resolve();
          return;
        }
      } while (now - turn < spinMs);
      setImmediate(loop);
    };
    setImmediate(loop);
  });
  const err = failed();
  if (err === null) region.close();
  // A failed qpair may still hold buffers in flight: their region goes with the process.
  if (err !== null) throw err;
  const secs = (performance.now() - t0) / 1000;
  return {
    ios,
    reads,
    writes,
    errors,
    seconds: secs,
    iops: ios / secs,
    mibps: (ios * o.ioSize) / secs / (1 << 20),
    avgUs: hist.mean,
    minUs: hist.min,
    maxUs: hist.max,
    histogram: hist,
  };
}
