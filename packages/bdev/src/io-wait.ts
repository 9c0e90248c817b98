/**
 * A caller-owned entry for queueIoWait (spdk_bdev_io_wait_entry): make it once, reuse it. Its
 * callback runs on the channel's thread when a bdev_io is back in the pool.
 */
export class IoWaitEntry {
  cb: (arg: unknown) => void;
  cbArg: unknown;
  /** @internal */ next: IoWaitEntry | null = null;
  /** @internal */ queued = false;
  constructor(cb: (arg: unknown) => void, cbArg?: unknown) {
    this.cb = cb;
    this.cbArg = cbArg;
  }
}

/** @internal FIFO of wait entries, linked through the entries themselves. */
export class WaitQueue {
  head: IoWaitEntry | null = null;
  tail: IoWaitEntry | null = null;
  push(e: IoWaitEntry): void {
    e.next = null;
    e.queued = true;
    if (this.tail === null) this.head = e;
    else this.tail.next = e;
    this.tail = e;
  }
  shift(): IoWaitEntry | null {
    const e = this.head;
    if (e === null) return null;
    this.head = e.next;
    if (this.head === null) this.tail = null;
    e.next = null;
    e.queued = false;
    return e;
  }
}
