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
