/** A function queued to run on a thread, with its argument. */
export type MsgFn<A = unknown> = (arg: A) => void;
// Storage type: any MsgFn<A> is assignable to it, and it is only ever called with its own arg.
type AnyMsgFn = MsgFn<never>;

// A FIFO of (fn, arg) pairs in two parallel circular arrays. Index arithmetic instead of
// Array#shift, and capacity that only grows, so steady-state send/run allocates nothing.
export class MsgQueue {
  #fns: (AnyMsgFn | undefined)[];
  #args: unknown[];
  #mask: number;
  // Wrapped head plus a count keeps both small integers (Smis) however many messages pass.
  #head = 0;
  #count = 0;

  constructor(capacity = 64) {
    const cap = 1 << Math.ceil(Math.log2(Math.max(2, capacity)));
    this.#fns = new Array(cap).fill(undefined);
    this.#args = new Array(cap).fill(undefined);
    this.#mask = cap - 1;
  }

  get length(): number {
    return this.#count;
  }

  push(fn: AnyMsgFn, arg: unknown): void {
    if (this.#count > this.#mask) this.#grow();
    const i = (this.#head + this.#count) & this.#mask;
    this.#fns[i] = fn;
    this.#args[i] = arg;
    this.#count++;
  }

  /**
   * Run up to `max` of the messages queued now, oldest first; returns how many ran. Messages they
   * queue wait for the next call, so a message that re-sends itself cannot starve the pollers.
   */
  run(max: number): number {
    if (max > this.#count) max = this.#count;
    let n = 0;
    while (n < max && this.#count > 0) {
      const i = this.#head;
      const fn = this.#fns[i] as MsgFn;
      const arg = this.#args[i];
      this.#fns[i] = undefined;
      this.#args[i] = undefined;
      this.#head = (i + 1) & this.#mask;
      this.#count--;
      n++;
      fn(arg);
    }
    return n;
  }

  #grow(): void {
    const n = this.#count;
    const cap = (this.#mask + 1) * 2;
    const fns: (AnyMsgFn | undefined)[] = new Array(cap).fill(undefined);
    const args: unknown[] = new Array(cap).fill(undefined);
    for (let k = 0; k < n; k++) {
      const i = (this.#head + k) & this.#mask;
      fns[k] = this.#fns[i];
      args[k] = this.#args[i];
    }
    this.#fns = fns;
    this.#args = args;
    this.#mask = cap - 1;
    this.#head = 0;
  }
}
