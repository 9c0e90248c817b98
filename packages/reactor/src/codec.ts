/**
 * How a message payload travels in a ring record: `words(v)` body words, written by `encode` at a
 * word offset (`bytes` views the same memory, byte offset = 4 * word offset) and read back by
 * `decode`. Codecs of variable size store their own length. Decoded objects may be reused by the
 * codec: a handler must copy what it keeps beyond its call.
 */
export interface Codec<T> {
  readonly name: string;
  words(v: T): number;
  encode(v: T, w: Int32Array, off: number, bytes: Uint8Array): void;
  decode(w: Int32Array, off: number, bytes: Uint8Array): T;
}

const f64 = new Float64Array(1);
const f64w = new Int32Array(f64.buffer);

/** No payload. */
export const none: Codec<void> = {
  name: 'none',
  words: () => 0,
  encode() {},
  decode() {},
};

/** One signed 32-bit integer. */
export const i32: Codec<number> = {
  name: 'i32',
  words: () => 1,
  encode(v, w, off) {
    w[off] = v;
  },
  decode: (w, off) => w[off],
};

/** One unsigned 32-bit integer. */
export const u32: Codec<number> = {
  name: 'u32',
  words: () => 1,
  encode(v, w, off) {
    w[off] = v;
  },
  decode: (w, off) => w[off] >>> 0,
};

/** One double (a JS number of any value). */
export const float64: Codec<number> = {
  name: 'f64',
  words: () => 2,
  encode(v, w, off) {
    f64[0] = v;
    w[off] = f64w[0];
    w[off + 1] = f64w[1];
  },
  decode(w, off) {
    f64w[0] = w[off];
    f64w[1] = w[off + 1];
    return f64[0];
  },
};

export type FieldType = 'i32' | 'u32' | 'f64';
export type StructOf<S extends Record<string, FieldType>> = { [K in keyof S]: number };

/**
 * A fixed record of numeric fields. decode() fills one object owned by the codec and returns it
 * every time (no allocation per message): valid only during the handler call.
 */
export function struct<S extends Record<string, FieldType>>(name: string, shape: S): Codec<StructOf<S>> {
  const keys = Object.keys(shape) as (keyof S & string)[];
  const types = keys.map((k) => shape[k]);
  const offs: number[] = [];
  let words = 0;
  for (const t of types) {
    offs.push(words);
    words += t === 'f64' ? 2 : 1;
  }
  const scratch = Object.fromEntries(keys.map((k) => [k, 0])) as StructOf<S>;
  return {
    name,
    words: () => words,
    encode(v, w, off) {
      for (let i = 0; i < keys.length; i++) {
        const x = v[keys[i]];
        const o = off + offs[i];
        if (types[i] === 'f64') {
          f64[0] = x;
          w[o] = f64w[0];
          w[o + 1] = f64w[1];
        } else {
          w[o] = x;
        }
      }
    },
    decode(w, off) {
      for (let i = 0; i < keys.length; i++) {
        const o = off + offs[i];
        const t = types[i];
        if (t === 'f64') {
          f64w[0] = w[o];
          f64w[1] = w[o + 1];
          scratch[keys[i]] = f64[0] as StructOf<S>[keyof S & string];
        } else {
          scratch[keys[i]] = (t === 'u32' ? w[o] >>> 0 : w[o]) as StructOf<S>[keyof S & string];
        }
      }
      return scratch;
    },
  };
}

/** A byte string: a length word, then the bytes. decode() returns a copy the handler may keep. */
export const bytes: Codec<Uint8Array> = {
  name: 'bytes',
  words: (v) => 1 + ((v.byteLength + 3) >> 2),
  encode(v, w, off, b) {
    w[off] = v.byteLength;
    b.set(v, (off + 1) * 4);
  },
  decode(w, off, b) {
    const start = (off + 1) * 4;
    return b.slice(start, start + w[off]);
  },
};

const te = new TextEncoder();
const td = new TextDecoder();

/** A UTF-8 string: a byte-length word, then the bytes. */
export const utf8: Codec<string> = {
  name: 'utf8',
  words: (v) => 1 + ((Buffer.byteLength(v) + 3) >> 2),
  encode(v, w, off, b) {
    const start = (off + 1) * 4;
    const r = te.encodeInto(v, b.subarray(start));
    w[off] = r.written;
  },
  decode(w, off, b) {
    const start = (off + 1) * 4;
    // TextDecoder refuses views of shared memory: copy out first.
    return td.decode(b.slice(start, start + w[off]));
  },
};

/** Any JSON value, as UTF-8 text: for control messages, not the I/O path (it allocates). */
export function json<T>(): Codec<T> {
  // words() and encode() come in pairs for one send: stringify once, in words().
  let lastV: unknown;
  let lastS = '';
  return {
    name: 'json',
    words(v) {
      lastV = v;
      lastS = JSON.stringify(v) ?? 'null';
      return utf8.words(lastS);
    },
    encode(v, w, off, b) {
      utf8.encode(lastV === v ? lastS : (JSON.stringify(v) ?? 'null'), w, off, b);
      lastV = undefined;
    },
    decode: (w, off, b) => JSON.parse(utf8.decode(w, off, b)) as T,
  };
}
