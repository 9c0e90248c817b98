/** An entry that links itself into one LinkedFifo at a time (no allocation per wait). */
export interface FifoLink<T> {
  next: T | null;
  /** True while the entry is in a queue. */
  queued: boolean;
}

/**
 * FIFO of caller-owned entries linked through the entries themselves (no allocation per wait):
 * the wait queues of the iobuf pools and of the bdev layer's queueIoWait.
 */
export class LinkedFifo<T extends FifoLink<T>> {
  head: T | null = null;
  tail: T | null = null;
  length = 0;
  push(e: T): void {
    e.next = null;
    e.queued = true;
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
    e.queued = false;
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
      x.queued = false;
      this.length--;
      return true;
    }
    return false;
  }
}
