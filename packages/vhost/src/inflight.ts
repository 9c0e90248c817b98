/**
 * In-flight request tracking in memory shared with the frontend (vhost-user INFLIGHT_SHMFD), so a
 * restarted backend can finish what its predecessor took from the rings but never completed. The
 * frontend only keeps the fd across reconnects; the layout is ours (split rings):
 *
 *   per queue, at queue * queueBytes(size):
 *     features u64 | version u16 | desc_num u16 | reserved u16 | used_idx u16      (16 bytes)
 *     desc[desc_num]: inflight u8 | pad[5] | reserved u16 | counter u64            (16 bytes each)
 *
 * `counter` orders resubmission (the order the requests were taken).
 */
export const INFLIGHT_VERSION = 1;
const HEADER = 16;

/** Bytes one queue's area takes (64-byte aligned). */
export function inflightQueueBytes(size: number): number {
  return Math.ceil((HEADER + 16 * size) / 64) * 64;
}

/** One queue's area of the shared in-flight buffer. */
export class InflightArea {
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  readonly size: number;
  #counter = 0;

  constructor(bytes: Uint8Array, size: number) {
    this.bytes = bytes;
    this.size = size;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get fresh(): boolean {
    return this.dv.getUint16(8, true) !== INFLIGHT_VERSION || this.dv.getUint16(10, true) !== this.size;
  }

  /** Start a fresh area: nothing in flight, used index `usedIdx`. */
  init(usedIdx: number): void {
    this.bytes.fill(0, 0, HEADER + 16 * this.size);
    this.dv.setUint16(8, INFLIGHT_VERSION, true);
    this.dv.setUint16(10, this.size, true);
    this.dv.setUint16(14, usedIdx, true);
  }

  get usedIdx(): number {
    return this.dv.getUint16(14, true);
  }

  set usedIdx(v: number) {
    this.dv.setUint16(14, v, true);
  }

  take(head: number): void {
    const o = HEADER + 16 * head;
    this.#counter++;
    this.dv.setUint32(o + 8, this.#counter % 2 ** 32, true);
    this.dv.setUint32(o + 12, Math.floor(this.#counter / 2 ** 32), true);
    this.bytes[o] = 1;
  }

  done(head: number): void {
    this.bytes[HEADER + 16 * head] = 0;
  }

  /** Heads still marked in flight, oldest first; the counter continues after the newest. */
  pending(): number[] {
    const heads: number[] = [];
    const order: number[] = [];
    for (let h = 0; h < this.size; h++) {
      const o = HEADER + 16 * h;
      if (this.bytes[o] !== 1) continue;
      heads.push(h);
      order.push(this.dv.getUint32(o + 8, true) + this.dv.getUint32(o + 12, true) * 2 ** 32);
    }
    const idx = heads.map((_, i) => i).sort((a, b) => order[a] - order[b]);
    this.#counter = order.reduce((m, c) => Math.max(m, c), 0);
    return idx.map((i) => heads[i]);
  }
}
