// Controller IDs of one subsystem shared by every reactor's copy of it, in a SharedArrayBuffer,
// without locks. A controller lives on the reactor that accepted its admin queue (its owner); an
// I/O queue Connect may arrive on any reactor, which checks the controller here (exists, ready,
// same host) and claims its queue ID with one atomic OR. Teardown and resets are announced by the
// owner through the app's named handlers; this table only answers "may this I/O queue join".
//
// Layout (Int32 words): a header of HEADER words (word 0: next-allocation hint), then one slot per
// controller ID (cntlid = min_cntlid + slot index):
//   [0] owner reactor + 1 (0 = free; claimed with compareExchange)
//   [1] generation (bumped on every allocation, so stale I/O queues and messages are recognised)
//   [2] ready (CSTS.RDY of the owner's controller)
//   [3] host NQN hash (FNV-1a, 32 bits)
//   [4..] bitmap of claimed I/O queue IDs 1..qidCap
// Header word 1 holds the number of reactors. After the slots (8-byte aligned), the SMART counters:
// per slot, per reactor, STAT_FIELDS float64 cells (StatField). Each reactor writes only its own
// cells with plain stores (one writer each, no Atomics on the I/O path); the owner sums them for
// the health log page.

import { invalid } from './errors.js';

const HEADER = 16;
const W_OWNER = 0;
const W_GEN = 1;
const W_READY = 2;
const W_HOST = 3;
const SLOT_FIXED = 4;
const W_REACTORS = 1;

/** The SMART counters kept per controller and reactor. */
export enum StatField {
  ReadCommands = 0,
  WriteCommands = 1,
  BytesRead = 2,
  BytesWritten = 3,
}
export const STAT_FIELDS = 4;
/** Controller slots per subsystem at most (controller IDs beyond min_cntlid + this are not used). */
export const MAX_TABLE_SLOTS = 1024;
/** Highest I/O queue ID the table can track. */
export const MAX_TABLE_QID = 1024;

export interface ControllerSlot {
  owner: number;
  gen: number;
  ready: boolean;
  hostHash: number;
}

/** FNV-1a over the NQN's UTF-16 code units (NQNs are ASCII), as an int32. */
export function nqnHash(nqn: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < nqn.length; i++) {
    h ^= nqn.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export class ControllerTable {
  readonly sab: SharedArrayBuffer;
  readonly minCntlid: number;
  readonly slots: number;
  /** I/O queue IDs 1..qidCap can be claimed. */
  readonly qidCap: number;
  /** Reactors with SMART counter cells. */
  readonly reactors: number;
  /** The SMART counter cells (see `statBase`). */
  readonly stats: Float64Array;
  readonly #w: Int32Array;
  readonly #stride: number;

  static #idBytes(minCntlid: number, maxCntlid: number, qidCap: number): number {
    const slots = Math.min(maxCntlid - minCntlid + 1, MAX_TABLE_SLOTS);
    const cap = Math.min(qidCap, MAX_TABLE_QID);
    return (((HEADER + slots * (SLOT_FIXED + Math.ceil(cap / 32))) * 4 + 7) >>> 3) << 3;
  }

  /** Bytes for a table over [minCntlid, maxCntlid] tracking qids up to qidCap, for `reactors`. */
  static bytes(minCntlid: number, maxCntlid: number, qidCap: number, reactors = 1): number {
    const slots = Math.min(maxCntlid - minCntlid + 1, MAX_TABLE_SLOTS);
    return ControllerTable.#idBytes(minCntlid, maxCntlid, qidCap) + slots * reactors * STAT_FIELDS * 8;
  }

  /**
   * A new table for `reactors` reactors, or a view of one made elsewhere (same range and qidCap,
   * same `sab`; the reactor count is read from it).
   */
  constructor(minCntlid: number, maxCntlid: number, qidCap: number, sab?: SharedArrayBuffer, reactors = 1) {
    if (!(minCntlid >= 1 && maxCntlid >= minCntlid && qidCap >= 1))
      throw invalid('bad controller table range');
    if (!(Number.isInteger(reactors) && reactors >= 1 && reactors <= 1024))
      throw invalid('bad reactor count');
    this.minCntlid = minCntlid;
    this.slots = Math.min(maxCntlid - minCntlid + 1, MAX_TABLE_SLOTS);
    this.qidCap = Math.min(qidCap, MAX_TABLE_QID);
    this.#stride = SLOT_FIXED + Math.ceil(this.qidCap / 32);
    if (sab) {
      const n = sab.byteLength >= HEADER * 4 ? new Int32Array(sab, 0, HEADER)[W_REACTORS] : 0;
      if (n >= 1) reactors = n;
    }
    this.reactors = reactors;
    const bytes = ControllerTable.bytes(minCntlid, maxCntlid, qidCap, reactors);
    this.sab = sab ?? new SharedArrayBuffer(bytes);
    if (this.sab.byteLength !== bytes) throw invalid('controller table of the wrong size');
    this.#w = new Int32Array(this.sab);
    if (!sab) this.#w[W_REACTORS] = reactors;
    const off = ControllerTable.#idBytes(minCntlid, maxCntlid, qidCap);
    this.stats = new Float64Array(this.sab, off, this.slots * reactors * STAT_FIELDS);
  }

  /** Index in `stats` of the first counter `reactor` keeps for `cntlid` (-1 when out of range). */
  statBase(cntlid: number, reactor: number): number {
    const i = cntlid - this.minCntlid;
    if (!(i >= 0 && i < this.slots && Number.isInteger(i)) || !(reactor >= 0 && reactor < this.reactors))
      return -1;
    return (i * this.reactors + reactor) * STAT_FIELDS;
  }

  /** One counter of a controller summed over every reactor. */
  statSum(cntlid: number, field: StatField): number {
    const b = this.statBase(cntlid, 0);
    if (b < 0) return 0;
    let n = 0;
    for (let r = 0; r < this.reactors; r++) n += this.stats[b + r * STAT_FIELDS + field];
    return n;
  }

  #base(cntlid: number): number {
    const i = cntlid - this.minCntlid;
    return i >= 0 && i < this.slots && Number.isInteger(i) ? HEADER + i * this.#stride : -1;
  }

  /** Claim a free controller ID for a controller owned by `owner`; undefined when all are taken. */
  alloc(owner: number, hostHash: number): { cntlid: number; gen: number } | undefined {
    const w = this.#w;
    const start = Atomics.load(w, 0);
    for (let k = 0; k < this.slots; k++) {
      const i = (start + k) % this.slots;
      const b = HEADER + i * this.#stride;
      if (Atomics.compareExchange(w, b + W_OWNER, 0, owner + 1) !== 0) continue;
      Atomics.store(w, 0, (i + 1) % this.slots);
      const gen = (Atomics.add(w, b + W_GEN, 1) + 1) | 0;
      Atomics.store(w, b + W_READY, 0);
      Atomics.store(w, b + W_HOST, hostHash);
      for (let j = SLOT_FIXED; j < this.#stride; j++) Atomics.store(w, b + j, 0);
      // A new controller starts its SMART counters at zero (the ID's previous user's are gone).
      this.stats.fill(0, i * this.reactors * STAT_FIELDS, (i + 1) * this.reactors * STAT_FIELDS);
      return { cntlid: this.minCntlid + i, gen };
    }
    return undefined;
  }

  /** Release a controller ID (by its owner, once the controller is gone). */
  free(cntlid: number, gen: number): void {
    const b = this.#base(cntlid);
    if (b < 0 || Atomics.load(this.#w, b + W_GEN) !== gen) return;
    Atomics.store(this.#w, b + W_READY, 0);
    Atomics.store(this.#w, b + W_OWNER, 0);
  }

  setReady(cntlid: number, gen: number, ready: boolean): void {
    const b = this.#base(cntlid);
    if (b < 0 || Atomics.load(this.#w, b + W_GEN) !== gen) return;
    Atomics.store(this.#w, b + W_READY, ready ? 1 : 0);
  }

  /** The controller behind an ID, or undefined when the ID is free or out of range. */
  lookup(cntlid: number): ControllerSlot | undefined {
    const b = this.#base(cntlid);
    if (b < 0) return undefined;
    const w = this.#w;
    const owner = Atomics.load(w, b + W_OWNER) - 1;
    if (owner < 0) return undefined;
    return {
      owner,
      gen: Atomics.load(w, b + W_GEN),
      ready: Atomics.load(w, b + W_READY) === 1,
      hostHash: Atomics.load(w, b + W_HOST),
    };
  }

  /** Claim I/O queue `qid` of a controller; false when taken (on any reactor) or out of range. */
  claimQid(cntlid: number, gen: number, qid: number): boolean {
    const b = this.#base(cntlid);
    if (b < 0 || qid < 1 || qid > this.qidCap || Atomics.load(this.#w, b + W_GEN) !== gen) return false;
    const bit = 1 << ((qid - 1) & 31);
    const old = Atomics.or(this.#w, b + SLOT_FIXED + ((qid - 1) >>> 5), bit);
    return (old & bit) === 0;
  }

  releaseQid(cntlid: number, gen: number, qid: number): void {
    const b = this.#base(cntlid);
    if (b < 0 || qid < 1 || qid > this.qidCap || Atomics.load(this.#w, b + W_GEN) !== gen) return;
    Atomics.and(this.#w, b + SLOT_FIXED + ((qid - 1) >>> 5), ~(1 << ((qid - 1) & 31)));
  }

  /** Claimed I/O queue IDs of a controller (introspection, tests). */
  claimedQids(cntlid: number): number[] {
    const b = this.#base(cntlid);
    const out: number[] = [];
    if (b < 0) return out;
    for (let q = 1; q <= this.qidCap; q++)
      if (Atomics.load(this.#w, b + SLOT_FIXED + ((q - 1) >>> 5)) & (1 << ((q - 1) & 31))) out.push(q);
    return out;
  }
}
