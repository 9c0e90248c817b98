// The lvol layer's on-disk names (SPDK lib/lvol): the lvstore's super blob carries "uuid" and
// "name" xattrs (C strings, NUL included); each lvol blob carries "name" (a 64-byte field, the
// name NUL-padded) and "uuid" (37 bytes: the lowercase UUID and its NUL).
import { randomUUID } from 'node:crypto';
import { LvolError } from './errors.js';

/** SPDK_LVS_NAME_MAX / SPDK_LVOL_NAME_MAX: 64 bytes including the NUL. */
export const NAME_MAX = 64;
export const BSTYPE = 'LVOLSTORE';
/** SPDK_LVS_OPTS_CLUSTER_SZ */
export const DEFAULT_CLUSTER_SIZE = 4 * 1024 * 1024;

const enc = new TextEncoder();
const dec = new TextDecoder();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0)
    throw new LvolError('EINVAL', `${what} name must be a non-empty string`);
  if (enc.encode(name).length >= NAME_MAX)
    throw new LvolError('EINVAL', `${what} name "${name}" is too long (at most ${NAME_MAX - 1} bytes)`);
  if (name.includes('\0')) throw new LvolError('EINVAL', `${what} name contains a NUL`);
  return name;
}

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export function newUuid(): string {
  return randomUUID().toLowerCase();
}

/** A C string value: the bytes and a NUL. */
export function cstr(s: string): Uint8Array {
  const b = enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** An lvol's name field: NAME_MAX bytes, NUL-padded. */
export function nameField(s: string): Uint8Array {
  const out = new Uint8Array(NAME_MAX);
  out.set(enc.encode(s));
  return out;
}

/** The text of a C string value (up to the first NUL). */
export function text(v: Uint8Array | undefined): string | undefined {
  if (v === undefined) return undefined;
  const end = v.indexOf(0);
  return dec.decode(end < 0 ? v : v.subarray(0, end));
}
