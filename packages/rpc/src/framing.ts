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
  #buf: Buffer = Buffer.alloc(0);
  #scan = 0; // bytes of #buf already scanned
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1; // offset where the current value began
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held for a value not yet complete. */
  get pending(): number {
    return this.#buf.length;
  }

  /** Feed a chunk; returns the complete values (and at most one trailing error, after which the stream is unusable). */
  push(chunk: Buffer): FrameResult[] {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    const out: FrameResult[] = [];
    const b = this.#buf;
    let i = this.#scan;
    let consumed = 0;
    for (; i < b.length; i++) {
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
        this.#start = i;
        this.#depth = 1;
        continue;
      }
      if (i - this.#start >= this.maxBytes) {
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
          out.push({ kind: 'value', text: b.toString('utf8', this.#start, i + 1) });
          this.#start = -1;
          consumed = i + 1;
        }
      }
    }
    // Keep only the unfinished tail; everything before it was emitted or was whitespace.
    this.#buf = consumed >= b.length ? Buffer.alloc(0) : b.subarray(consumed);
    if (this.#start >= 0) this.#start -= consumed;
    this.#scan = i - consumed;
    return out;
  }

  #reset(): void {
    this.#buf = Buffer.alloc(0);
    this.#scan = 0;
    this.#depth = 0;
    this.#inString = false;
    this.#escape = false;
    this.#start = -1;
  }
}
