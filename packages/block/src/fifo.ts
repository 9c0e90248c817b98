/** An entry that links itself into one LinkedFifo at a time (no allocation per wait). */
export interface FifoLink<T, Q = boolean> {
  next: T | null;
  /**
   * Which queue holds the entry: that queue's `tag` while in it, its `none` once out (true and
   * false unless the queues say otherwise, as a bdev_io's do: which of a channel's queues it is in).
   */
  queued: Q;
}

/**
 * FIFO of caller-owned entries linked through the entries themselves (no allocation per wait):
 * the wait queues of the iobuf pools, the bdev layer's queueIoWait, and a bdev channel's queues of
 * bdev_ios (deferred completions, NOMEM retries, QoS, range locks).
 */
export class LinkedFifo<T extends FifoLink<T, Q>, Q = boolean> {
  head: T | null = null;
  tail: T | null = null;
  length = 0;
  /** What an entry's `queued` says while it is here, and once it left. */
  readonly tag: Q;
  readonly none: Q;
  constructor(tag?: Q, none?: Q) {
    this.tag = (tag ?? true) as Q;
    this.none = (none ?? false) as Q;
  }
  push(e: T): void {
    e.next = null;
    e.queued = this.tag;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
    this.length++;
  }
  shift(): T | null {
    const e = this.head;
    if (e === null) return null;
    this.head = e.next;
    if (this.head === null) this.tail = null;
    e.next = null;
    e.queued = this.none;
    this.length--;
    return e;
  }
  /** Takes `e` out wherever it stands; false when it was not queued here. */
  remove(e: T): boolean {
    let prev: T | null = null;
    for (let x = this.head; x !== null; prev = x, x = x.next) {
      if (x !== e) continue;
      if (prev === null) this.head = x.next;
      else prev.next = x.next;
      if (this.tail === x) this.tail = prev;
      x.next = null;
      x.queued = this.none;
      this.length--;
      return true;
    }
    return false;
  }
}
