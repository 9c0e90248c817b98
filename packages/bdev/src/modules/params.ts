// Validation of SPDK-style JSON params: clear errors naming the method and the parameter.
import { BdevError } from '../errors.js';

export type Params = Record<string, unknown>;

export class ParamReader {
  readonly method: string;
  readonly p: Params;
  constructor(method: string, p: unknown) {
    this.method = method;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) {
      throw new BdevError('EINVAL', `${method}: params must be an object`);
    }
    this.p = p as Params;
  }

  fail(msg: string): never {
    throw new BdevError('EINVAL', `${this.method}: ${msg}`);
  }

  str(k: string): string;
  str(k: string, def: string | undefined): string | undefined;
  str(k: string, ...def: [string?]): string | undefined {
    const v = this.p[k];
    if (v === undefined) {
      if (def.length > 0) return def[0];
      this.fail(`missing required parameter ${k}`);
    }
    if (typeof v !== 'string' || v === '') this.fail(`${k} must be a non-empty string`);
    return v;
  }

  int(k: string, opts: { min?: number; max?: number; def?: number } = {}): number {
    const v = this.p[k];
    if (v === undefined) {
      if (opts.def !== undefined) return opts.def;
      this.fail(`missing required parameter ${k}`);
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      this.fail(`${k} must be an integer, got ${JSON.stringify(v)}`);
    if (opts.min !== undefined && v < opts.min) this.fail(`${k} must be >= ${opts.min}, got ${v}`);
    if (opts.max !== undefined && v > opts.max) this.fail(`${k} must be <= ${opts.max}, got ${v}`);
    return v;
  }

  bool(k: string, def: boolean): boolean {
    const v = this.p[k];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.fail(`${k} must be true or false`);
    return v;
  }

  strList(k: string): string[] {
    const v = this.p[k];
    if (v === undefined) this.fail(`missing required parameter ${k}`);
    // SPDK accepts base_bdevs as an array or as one space-separated string.
    const list = typeof v === 'string' ? v.trim().split(/\s+/) : v;
    if (!Array.isArray(list) || list.some((x) => typeof x !== 'string' || x === '')) {
      this.fail(`${k} must be a list of names`);
    }
    return list as string[];
  }

  /** Reject parameters this method does not know (typos must not pass silently). */
  only(known: readonly string[]): void {
    for (const k of Object.keys(this.p)) if (!known.includes(k)) this.fail(`unknown parameter ${k}`);
  }

  uuid(k: string): string | undefined {
    const v = this.str(k, undefined);
    if (v !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) {
      this.fail(`${k} is not a UUID: ${v}`);
    }
    return v;
  }

  blockSize(k = 'block_size'): number {
    const v = this.int(k);
    if (v < 512 || (v & (v - 1)) !== 0) this.fail(`${k} must be a power of two >= 512, got ${v}`);
    return v;
  }
}

/** What every create function returns: the bdev name and the params that replay it elsewhere. */
export interface Created<P> {
  name: string;
  /** Plain JSON: run the same create with these on every other reactor (same uuid, shared handles). */
  replay: P;
}
