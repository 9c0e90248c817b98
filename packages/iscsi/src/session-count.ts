// The number of live sessions of a target, for `max_sessions` (SPDK: the maximum number of
// sessions in the whole target). One Int32 in a SharedArrayBuffer, without locks: a target used
// alone owns its own; in `storkit tgt` the main thread makes one and hands it to every reactor's
// copy of the target, so the limit holds across reactors (as @storkit/nvmf's ControllerTable
// shares controller IDs). A new session claims a place with compareExchange (never over the
// limit, not even for a moment: a refused claim leaves nothing to roll back, so it cannot make a
// concurrent claim on another reactor fail); a session gives its place back once, when it ends.

import { IscsiError } from './errors.js';

export class SessionCount {
  /** Bytes a shared count needs. */
  static readonly BYTES = 4;
  readonly sab: SharedArrayBuffer;
  readonly #cell: Int32Array;

  /** A new count at 0, or a view of one made elsewhere (`sab` of another `SessionCount`). */
  constructor(sab?: SharedArrayBuffer) {
    if (sab !== undefined && !(sab instanceof SharedArrayBuffer && sab.byteLength >= SessionCount.BYTES))
      throw new IscsiError('EINVAL', 'session count needs a SharedArrayBuffer of 4 bytes');
    this.sab = sab ?? new SharedArrayBuffer(SessionCount.BYTES);
    this.#cell = new Int32Array(this.sab, 0, 1);
  }

  /** Live sessions over every holder of this count. */
  get value(): number {
    return Atomics.load(this.#cell, 0);
  }

  /** Takes a place for a new session; false (and nothing taken) when `max` are live already. */
  claim(max: number): boolean {
    let n = Atomics.load(this.#cell, 0);
    for (;;) {
      if (n >= max) return false;
      const seen = Atomics.compareExchange(this.#cell, 0, n, n + 1);
      if (seen === n) return true;
      n = seen; // another reactor claimed or released in between: retry from what it left
    }
  }

  /** Gives back a place taken with `claim` (once per successful claim). */
  release(): void {
    Atomics.sub(this.#cell, 0, 1);
  }
}
