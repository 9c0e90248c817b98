// Where a PCIe queue pair's memory lives: one DMA region per qpair holding its submission queue,
// its completion queue (both page aligned, as CAP.CQR requires contiguous queues) and one list
// area per command slot for PRP lists, SGL segments and DSM range lists.

import { PAGE } from './data-pointer.js';

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;

export interface QueueLayout {
  /** Queue entries (slots + 1: a full queue keeps one entry empty). */
  entries: number;
  sqOffset: number;
  cqOffset: number;
  listOffset: number;
  /** Bytes of list area per slot: a power of two up to a page, so it never crosses one. */
  listBytes: number;
  bytes: number;
}

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** The layout for `slots` commands of up to `maxTransfer` bytes. */
export function queueLayout(slots: number, maxTransfer: number): QueueLayout {
  const entries = slots + 1;
  const sqBytes = roundUp(entries * SQE_BYTES, PAGE);
  const cqBytes = roundUp(entries * CQE_BYTES, PAGE);
  // A transfer that starts mid-page touches one page more than its length needs.
  const entriesNeeded = Math.ceil(maxTransfer / PAGE) + 1;
  let listBytes = 256;
  while (listBytes < entriesNeeded * 8 && listBytes < PAGE) listBytes *= 2;
  return {
    entries,
    sqOffset: 0,
    cqOffset: sqBytes,
    listOffset: sqBytes + cqBytes,
    listBytes,
    bytes: sqBytes + cqBytes + slots * listBytes,
  };
}

/** The largest transfer one command may carry given MDTS bytes: PRP lists fit one page. */
export function pcieMaxTransfer(mdtsBytes: number): number {
  return Math.min(mdtsBytes, (PAGE / 8 - 1) * PAGE);
}
