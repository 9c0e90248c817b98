// bdev_error: "EE_<base>", a passthrough that fails I/O on demand (SPDK's vbdev_error):
// bdev_error_inject_error picks an I/O type (or all), an error type and how many I/Os to hit.
// The counts live in a small DmaRegion every reactor's instance maps, so `num` means num I/Os in
// all, as in SPDK, whichever reactors submit them. An error bdev whose base does not exist yet is
// kept and made when the base appears (examine), as SPDK's is: spdk_tgt's save_config writes it
// before its base.
import { randomUUID } from 'node:crypto';
import { DmaRegion } from '@storkit/native';
import type { IoChannel } from '@storkit/reactor';
import type { Bdev, BdevModule } from '../bdev.js';
import type { BdevIo } from '../bdev-io.js';
import type { BdevDesc } from '../desc.js';
import { BdevError } from '../errors.js';
import { bdevIoComplete } from '../io-path.js';
import {
  bdevGetByName,
  bdevModuleRegister,
  bdevRegister,
  bdevUnregister,
  requireThread,
} from '../registry.js';
import { ENOMEM, IoStatus, IoType } from '../types.js';
import { type Created, ParamReader } from './params.js';
import {
  type BaseChannels,
  baseSupports,
  isClaimed,
  openBase,
  registerVbdevDevice,
  releaseVbdev,
  submitToBase,
} from './vbdev.js';

/** bdev_error_create params. */
export interface ErrorCreateParams {
  base_name: string;
  uuid?: string;
  /** storkit: the shared counts' DmaRegion, made by the reactor that created the bdev first. */
  storkit_region?: number;
}

/** bdev_error_inject_error params (SPDK schema). */
export interface ErrorInjectParams {
  name: string;
  io_type: 'read' | 'write' | 'unmap' | 'flush' | 'write_zeroes' | 'reset' | 'compare' | 'all' | 'clear';
  error_type: 'failure' | 'pending' | 'corrupt_data' | 'nomem';
  num?: number;
  corrupt_offset?: number;
  corrupt_value?: number;
  /** storkit: set on replays; the shared counts were already set by the first reactor. */
  storkit_counts_set?: boolean;
}

const ERR_NONE = 0;
const ERR_FAILURE = 1;
const ERR_PENDING = 2;
const ERR_CORRUPT = 3;
const ERR_NOMEM = 4;

interface Injection {
  kind: number;
  corruptOffset: number;
  corruptValue: number;
}

interface ErrBdev {
  name: string;
  baseName: string;
  /** The uuid the bdev takes when it is made (given, or drawn at create so every reactor agrees). */
  uuid: string | undefined;
  desc: BdevDesc | null;
  bdev: Bdev | null;
  key: object;
  /** By IoType (1..9). */
  readonly inj: Injection[];
  /** I/Os still to hit, by IoType, shared by every reactor's instance. */
  readonly counts: Int32Array;
  readonly region: DmaRegion;
  /** I/Os held by "pending" errors, completed by abort or reset. */
  readonly pending: Set<BdevIo>;
}

export const errorModule: BdevModule = {
  name: 'error',
  examine(bdev) {
    for (const e of errs.values()) {
      if (e.baseName !== bdev.name || e.bdev !== null) continue;
      try {
        build(e);
      } catch (err) {
        // The base is claimed by another module: the error bdev stays pending, as SPDK's does.
        // Anything else is a fault of ours or of the config (its name taken meanwhile): it surfaces.
        if (!isClaimed(err)) throw err;
      }
    }
  },
};
bdevModuleRegister(errorModule);
const errs = new Map<string, ErrBdev>();

/** Claim one hit of `t`'s injection, if any are left (other reactors claim from the same count). */
function take(e: ErrBdev, t: number): boolean {
  let c = Atomics.load(e.counts, t);
  while (c > 0) {
    const prev = Atomics.compareExchange(e.counts, t, c, c - 1);
    if (prev === c) return true;
    c = prev;
  }
  return false;
}

function readDone(status: IoStatus, io: BdevIo): void {
  const e = io.bdev.ctx as ErrBdev;
  const inj = e.inj[io.type];
  if (status === IoStatus.SUCCESS && inj.kind === ERR_CORRUPT && take(e, io.type)) corrupt(io, inj);
  bdevIoComplete(io, status);
}

function corrupt(io: BdevIo, inj: Injection): void {
  let off = inj.corruptOffset;
  for (const v of io.iovs) {
    if (off < v.length) {
      v[off] ^= inj.corruptValue;
      return;
    }
    off -= v.length;
  }
}

function submit(chan: IoChannel<unknown>, io: BdevIo): void {
  const e = io.bdev.ctx as ErrBdev;
  const base = (chan.ctx as BaseChannels).chans[0];
  if (e.desc === null || base === null) throw new BdevError('ENODEV', 'error bdev base is gone');
  if (io.type === IoType.ABORT && io.abortTarget !== null && e.pending.delete(io.abortTarget)) {
    bdevIoComplete(io.abortTarget, IoStatus.ABORTED);
    bdevIoComplete(io, IoStatus.SUCCESS);
    return;
  }
  if (io.type === IoType.RESET) {
    for (const p of e.pending) bdevIoComplete(p, IoStatus.ABORTED);
    e.pending.clear();
  }
  const inj = e.inj[io.type];
  if (inj !== undefined && inj.kind !== ERR_CORRUPT && inj.kind !== ERR_NONE && take(e, io.type)) {
    if (inj.kind === ERR_FAILURE) bdevIoComplete(io, IoStatus.FAILED);
    else if (inj.kind === ERR_NOMEM) bdevIoComplete(io, IoStatus.NOMEM);
    else e.pending.add(io);
    return;
  }
  if (inj !== undefined && inj.kind === ERR_CORRUPT && io.type === IoType.WRITE && take(e, io.type)) {
    corrupt(io, inj);
  }
  const cb = io.type === IoType.READ ? readDone : passDone;
  if (submitToBase(e.desc, base, io, io.offsetBlocks, io.numBlocks, io.iovs, cb, io) === ENOMEM) {
    bdevIoComplete(io, IoStatus.NOMEM);
  }
}

function passDone(status: IoStatus, io: BdevIo): void {
  bdevIoComplete(io, status);
}

function noInjection(): Injection {
  return { kind: ERR_NONE, corruptOffset: 0, corruptValue: 0 };
}

/** bdev_error_create: makes "EE_<base_name>". */
export function bdevErrorCreate(params: ErrorCreateParams): Created<ErrorCreateParams> {
  requireThread('bdev_error_create');
  const r = new ParamReader('bdev_error_create', params);
  r.only(['base_name', 'uuid', 'storkit_region']);
  const baseName = r.str('base_name');
  const uuid = r.uuid('uuid');
  const name = `EE_${baseName}`;
  if (bdevGetByName(name) !== undefined || errs.has(name))
    throw new BdevError('EEXIST', `bdev_error_create: ${name} exists`);
  const handle = r.p.storkit_region === undefined ? undefined : r.int('storkit_region', { min: 0 });
  const region =
    handle === undefined ? DmaRegion.create(4096, { hugepages: 'never' }) : DmaRegion.attach(handle);
  const counts = new Int32Array(region.bytes.buffer, region.bytes.byteOffset, 16);
  const e: ErrBdev = {
    name,
    baseName,
    uuid,
    desc: null,
    bdev: null,
    key: {},
    inj: [],
    counts,
    region,
    pending: new Set(),
  };
  for (let t = 0; t <= 9; t++) e.inj.push(noInjection());
  if (bdevGetByName(baseName) === undefined) {
    // Deferred until the base registers (examine); the uuid is fixed now for every reactor.
    e.uuid ??= randomUUID();
  } else {
    try {
      build(e);
    } catch (err) {
      region.close();
      throw err;
    }
  }
  errs.set(name, e);
  return {
    name,
    replay: { base_name: baseName, uuid: e.bdev?.uuid ?? e.uuid, storkit_region: region.handle },
  };
}

function build(e: ErrBdev): void {
  const desc = openBase(e.baseName, errorModule, () => {
    if (e.bdev !== null && !e.bdev.isRemoving) bdevUnregister(e.bdev);
  });
  e.desc = desc;
  const getCh = registerVbdevDevice(e.key, `vbdev_error/${e.name}`, () => [e.desc]);
  try {
    e.bdev = register(e, desc, getCh);
  } catch (err) {
    // Not made after all (its name was taken while it waited): the base is free again.
    e.desc = null;
    releaseVbdev(e.key, [desc], () => {});
    throw err;
  }
}

function register(e: ErrBdev, desc: BdevDesc, getCh: () => IoChannel<unknown>): Bdev {
  const base = desc.bdev;
  const name = e.name;
  return bdevRegister({
    name,
    uuid: e.uuid,
    productName: 'Error Injection Disk',
    blockSize: base.blockSize,
    numBlocks: base.numBlocks,
    writeCache: base.writeCache,
    optimalIoBoundary: base.optimalIoBoundary,
    splitOnOptimalIoBoundary: base.splitOnOptimalIoBoundary,
    maxRwBlocks: base.maxRwBlocks,
    maxSegments: base.maxSegments,
    maxSegmentSize: base.maxSegmentSize,
    module: errorModule,
    ctx: e,
    fn: {
      submitRequest: submit,
      ioTypeSupported: (t) => t === IoType.ABORT || (t !== IoType.COMPARE_AND_WRITE && baseSupports(base, t)),
      getIoChannel: getCh,
      destruct: (done) => {
        for (const p of e.pending) bdevIoComplete(p, IoStatus.ABORTED);
        e.pending.clear();
        const d = e.desc;
        e.desc = null;
        errs.delete(name);
        e.region.close();
        releaseVbdev(e.key, [d], done);
      },
    },
  });
}

/** bdev_error_delete. */
export function bdevErrorDelete(params: { name: string }, done?: () => void): void {
  const r = new ParamReader('bdev_error_delete', params);
  r.only(['name']);
  const name = r.str('name');
  const e = errs.get(name);
  if (e === undefined) throw new BdevError('ENODEV', `bdev_error_delete: no error bdev ${name}`);
  if (e.bdev === null) {
    // Still waiting for its base: forget it.
    errs.delete(name);
    e.region.close();
    done?.();
    return;
  }
  bdevUnregister(e.bdev, () => done?.());
}

const TYPES: Record<string, IoType[]> = {
  read: [IoType.READ],
  write: [IoType.WRITE],
  unmap: [IoType.UNMAP],
  flush: [IoType.FLUSH],
  write_zeroes: [IoType.WRITE_ZEROES],
  reset: [IoType.RESET],
  compare: [IoType.COMPARE],
  all: [
    IoType.READ,
    IoType.WRITE,
    IoType.UNMAP,
    IoType.FLUSH,
    IoType.WRITE_ZEROES,
    IoType.RESET,
    IoType.COMPARE,
  ],
  clear: [
    IoType.READ,
    IoType.WRITE,
    IoType.UNMAP,
    IoType.FLUSH,
    IoType.WRITE_ZEROES,
    IoType.RESET,
    IoType.COMPARE,
  ],
};
const KINDS: Record<string, number> = {
  failure: ERR_FAILURE,
  pending: ERR_PENDING,
  corrupt_data: ERR_CORRUPT,
  nomem: ERR_NOMEM,
};

/**
 * bdev_error_inject_error: the next `num` I/Os of `io_type` get `error_type`; io_type "clear" resets.
 * Returns the params to replay on the other reactors: they take the error kind, not the count again.
 */
export function bdevErrorInjectError(params: ErrorInjectParams): ErrorInjectParams {
  const r = new ParamReader('bdev_error_inject_error', params);
  r.only(['name', 'io_type', 'error_type', 'num', 'corrupt_offset', 'corrupt_value', 'storkit_counts_set']);
  const countsSet = r.bool('storkit_counts_set', false);
  const name = r.str('name');
  const ioType = r.str('io_type');
  const errorType = r.str('error_type');
  const num = r.int('num', { min: 0, def: 1 });
  const types = TYPES[ioType];
  if (types === undefined) r.fail(`io_type must be one of ${Object.keys(TYPES).join(', ')}, got ${ioType}`);
  const kind = KINDS[errorType];
  if (kind === undefined)
    r.fail(`error_type must be one of ${Object.keys(KINDS).join(', ')}, got ${errorType}`);
  const corruptOffset = r.int('corrupt_offset', { min: 0, def: 0 });
  const corruptValue = r.int('corrupt_value', { min: 0, max: 255, def: kind === ERR_CORRUPT ? 0xff : 0 });
  if (kind === ERR_CORRUPT && corruptValue === 0) r.fail('corrupt_value must be non-zero for corrupt_data');
  const e = errs.get(name);
  if (e === undefined) throw new BdevError('ENODEV', `bdev_error_inject_error: no error bdev ${name}`);
  for (const t of types) {
    e.inj[t] = ioType === 'clear' ? noInjection() : { kind, corruptOffset, corruptValue };
    if (!countsSet) Atomics.store(e.counts, t, ioType === 'clear' ? 0 : num);
  }
  return { ...params, storkit_counts_set: true };
}
