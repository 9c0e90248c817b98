import { type BdevIo, Queue } from './bdev-io.js';

/** @internal A FIFO of bdev_ios linked through `qNext` (no array shifting, no allocation). */
export class IoQueue {
  readonly kind: Queue;
  head: BdevIo | null = null;
  tail: BdevIo | null = null;
  length = 0;
  constructor(kind: Queue) {
    this.kind = kind;
  }
  push(io: BdevIo): void {
    io.qNext = null;
    io.queue = this.kind;
    if (this.tail === null) this.head = io;
    else this.tail.qNext = io;
    this.tail = io;
    this.length++;
  }
  shift(): BdevIo | null {
    const io = this.head;
    if (io === null) return null;
    this.head = io.qNext;
    if (this.head === null) this.tail = null;
    io.qNext = null;
    io.queue = Queue.NONE;
    this.length--;
    return io;
  }
  /** Unlink `io` (O(n)); returns whether it was here. */
  remove(io: BdevIo): boolean {
    let prev: BdevIo | null = null;
    for (let it = this.head; it !== null; prev = it, it = it.qNext) {
      if (it !== io) continue;
      if (prev === null) this.head = it.qNext;
      else prev.qNext = it.qNext;
      if (this.tail === it) this.tail = prev;
      it.qNext = null;
      it.queue = Queue.NONE;
      this.length--;
      return true;
    }
    return false;
  }
}
