// The piscina task of the offload module: one operation over shared memory, in a pool thread.
// Buffers arrive as (region handle, offset) for DMA regions, whose views this thread attaches once
// and keeps, or as views of SharedArrayBuffers.
import { compareRange, copyRange, crc32cRange, DmaRegion } from '@storkit/native';

/** A buffer piece the pool thread can reach. */
export type SharedPiece =
  | { handle: number; off: number; len: number }
  | { view: Uint8Array; off: number; len: number };

export interface OffloadJob {
  op: number;
  /** copy/fill/dualcast: dst first (dst2 second); compare: the two buffers; crc: the source pieces. */
  dst: SharedPiece[];
  src: SharedPiece[];
  seed: number;
  fill: number;
}

export interface OffloadResult {
  status: number;
  result: number;
}

const views = new Map<number, DmaRegion>();

function bytes(p: SharedPiece): Uint8Array {
  if ('view' in p) return p.view;
  let r = views.get(p.handle);
  if (r === undefined || r.closed) {
    r = DmaRegion.attach(p.handle);
    views.set(p.handle, r);
  }
  return r.bytes;
}

// Opcodes as ACCEL_OPC (no import: this file is loaded alone by each pool thread).
export default function run(job: OffloadJob): OffloadResult {
  const [d] = job.dst;
  const s = job.src[0];
  switch (job.op) {
    case 0: // copy
    case 2: // dualcast
      for (const x of job.dst) copyRange(bytes(x), x.off, bytes(s), s.off, s.len);
      return { status: 0, result: 0 };
    case 1: // fill
      bytes(d).fill(job.fill, d.off, d.off + d.len);
      return { status: 0, result: 0 };
    case 3: // compare
      return { status: compareRange(bytes(s), s.off, bytes(d), d.off, s.len) === 0 ? 0 : -84, result: 0 };
    case 4: // crc32c
    case 5: {
      // copy_crc32c
      if (job.op === 5) copyRange(bytes(d), d.off, bytes(s), s.off, s.len);
      let crc = job.seed;
      for (const x of job.src) crc = crc32cRange(bytes(x), x.off, x.off + x.len, crc);
      return { status: 0, result: crc };
    }
  }
  return { status: -22, result: 0 };
}
