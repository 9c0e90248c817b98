import { type Codec, i32, none, u32 } from './codec.js';
import { ReactorError } from './errors.js';

/**
 * A message kind that can cross workers: a name every worker registers (at module load), a payload
 * codec, and the function that runs on the target thread.
 */
export interface Handler<T> {
  readonly name: string;
  /** 32-bit hash of the name: what a ring record carries. */
  readonly id: number;
  readonly codec: Codec<T>;
  readonly fn: (payload: T) => void;
  /**
   * @internal How the ring transport moves the payload: WIRE_CODEC through `codec`, the others
   * (the built-in none, i32 and u32 codecs) inline in a one-slot record with no codec calls.
   */
  readonly wire: number;
}

/** @internal Payload through the handler's codec. */
export const WIRE_CODEC = 0;
/** @internal No payload (codec.none). */
export const WIRE_NONE = 1;
/** @internal One word, decoded signed (codec.i32). */
export const WIRE_I32 = 2;
/** @internal One word, decoded unsigned (codec.u32). */
export const WIRE_U32 = 3;

function wireOf(c: Codec<unknown>): number {
  if (c === (none as Codec<unknown>)) return WIRE_NONE;
  if (c === (i32 as Codec<unknown>)) return WIRE_I32;
  if (c === (u32 as Codec<unknown>)) return WIRE_U32;
  return WIRE_CODEC;
}

// Open-addressed table by id: ring dispatch looks a handler up per record, and a Map lookup costs
// several times a masked array probe.
const TABLE = 1024;
let ids = new Int32Array(TABLE);
let table: (Handler<unknown> | undefined)[] = new Array(TABLE).fill(undefined);
let count = 0;
const byName = new Map<string, Handler<unknown>>();

/** FNV-1a over the UTF-16 code units: stable across workers with no negotiation. */
export function handlerId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/**
 * Define a handler. Call it at the top level of a module that every reactor worker imports, so
 * every worker knows it under the same name. Throws EEXIST for a duplicate name (or, rarely, for
 * two names whose ids collide: rename one).
 */
export function defineHandler<T>(name: string, codec: Codec<T>, fn: (payload: T) => void): Handler<T> {
  if (typeof name !== 'string' || name === '') throw new ReactorError('EINVAL', 'a handler needs a name');
  if (byName.has(name)) throw new ReactorError('EEXIST', `handler ${name} is already defined`);
  const id = handlerId(name);
  const clash = lookupHandler(id);
  if (clash !== undefined) throw new ReactorError('EEXIST', `handler ${name} collides with ${clash.name}`);
  const h: Handler<T> = { name, id, codec, fn, wire: wireOf(codec as Codec<unknown>) };
  if ((count + 1) * 2 > ids.length) grow();
  insert(h as Handler<unknown>);
  byName.set(name, h as Handler<unknown>);
  count++;
  return h;
}

/** The handler with this ring id in this worker, if defined. */
export function lookupHandler(id: number): Handler<unknown> | undefined {
  const mask = ids.length - 1;
  for (let i = id & mask; ; i = (i + 1) & mask) {
    const h = table[i];
    if (h === undefined) return undefined;
    if (ids[i] === id) return h;
  }
}

/** The handler defined under `name` in this worker. */
export function handlerByName(name: string): Handler<unknown> | undefined {
  return byName.get(name);
}

function insert(h: Handler<unknown>): void {
  const mask = ids.length - 1;
  let i = h.id & mask;
  while (table[i] !== undefined) i = (i + 1) & mask;
  ids[i] = h.id;
  table[i] = h;
}

function grow(): void {
  const old = table;
  ids = new Int32Array(ids.length * 2);
  table = new Array(ids.length).fill(undefined);
  for (const h of old) if (h !== undefined) insert(h);
}
