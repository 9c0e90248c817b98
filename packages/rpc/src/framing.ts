/**
 * Splits a byte stream into back-to-back JSON values, the framing SPDK's JSON-RPC server and
 * rpc.py use: no length prefix, no delimiter required, whitespace allowed between values. Only
 * objects and arrays may stand at the top level (a request is one of those). The scan is
 * incremental: each byte is looked at once however the stream is chunked.
 */
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export type FrameResult =
  | { kind: 'value'; text: string }
  | { kind: 'error'; reason: 'too-large' | 'not-json-container' };

export class JsonFramer {
  /** Held bytes live in `#buf[#head, #tail)`; the array grows by doubling, so a request that
   * arrives a byte at a time costs linear copying, not quadratic. */
  #buf: Buffer = Buffer.alloc(0);
  #head = 0;
  #tail = 0;
  #scan = 0; // bytes after #head already scanned
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1; // offset after #head where the current value began
  #copied = 0;
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held for a value not yet complete. */
  get pending(): number {
    return this.#tail - this.#head;
  }

  /** Bytes copied into the holding buffer so far: at most about twice what was pushed. */
  get copied(): number {
    return this.#copied;
  }

  /** Feed a chunk; returns the complete values (and at most one trailing error, after which the stream is unusable). */
  push(chunk: Buffer): FrameResult[] {
    let b: Buffer;
    let base: number;
    let end: number;
    if (this.#tail === this.#head) {
      // Nothing held: scan the chunk where it lies.
      b = chunk;
      base = 0;
      end = chunk.length;
    } else {
      this.#append(chunk);
      b = this.#buf;
      base = this.#head;
      end = this.#tail;
    }
    const out: FrameResult[] = [];
    let i = base + this.#scan;
    let consumed = base;
    for (; i < end; i++) {
      const c = b[i];
      if (this.#start < 0) {
        if (isSpace(c)) {
          consumed = i + 1;
          continue;
        }
        if (c !== OPEN_OBJ && c !== OPEN_ARR) {
          out.push({ kind: 'error', reason: 'not-json-container' });
          this.#reset();
          return out;
        }
        this.#start = i - base;
        this.#depth = 1;
        continue;
      }
      if (i - base - this.#start >= this.maxBytes) {
        out.push({ kind: 'error', reason: 'too-large' });
        this.#reset();
        return out;
      }
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (c === BACKSLASH) this.#escape = true;
        else if (c === QUOTE) this.#inString = false;
        continue;
      }
      if (c === QUOTE) this.#inString = true;
      else if (c === OPEN_OBJ || c === OPEN_ARR) this.#depth++;
      else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
        if (--this.#depth === 0) {
          out.push({ kind: 'value', text: b.toString('utf8', base + this.#start, i + 1) });
          this.#start = -1;
          consumed = i + 1;
        }
      }
    }
    // Keep only the unfinished tail; everything before it was emitted or was whitespace.
    if (this.#start >= 0) this.#start -= consumed - base;
    this.#scan = i - consumed;
    if (b === chunk) {
      this.#head = this.#tail = 0;
      if (consumed < end) this.#append(chunk.subarray(consumed));
    } else {
      this.#head = consumed;
      if (this.#head === this.#tail) this.#head = this.#tail = 0;
    }
    return out;
  }

  #append(bytes: Buffer): void {
    const held = this.#tail - this.#head;
    if (this.#tail + bytes.length > this.#buf.length) {
      const need = held + bytes.length;
      if (need <= this.#buf.length >>> 1) {
        // Room enough once the consumed head is dropped: slide the held bytes down.
        this.#buf.copy(this.#buf, 0, this.#head, this.#tail);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(need * 2, 4096));
        this.#buf.copy(grown, 0, this.#head, this.#tail);
        this.#buf = grown;
      }
      this.#copied += held;
      this.#head = 0;
      this.#tail = held;
    }
    bytes.copy(this.#buf, this.#tail);
    this.#tail += bytes.length;
    this.#copied += bytes.length;
  }

  #reset(): void {
    this.#buf = Buffer.alloc(0);
    this.#head = 0;
    this.#tail = 0;
    this.#scan = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escape = false;
    this.#start = -1;
  }
}
