// The offload module: operations run in a piscina pool, so a reactor never stalls on a
// multi-megabyte CRC or copy; it takes nothing unless assigned (accel_assign_opc -o crc32c -m
// offload). Dispatch costs tens of microseconds, so jobs under `minBytes` run on the reactor's CPU
// at once, and so do jobs over memory a pool thread cannot reach (plain JavaScript buffers):
// both are counted (inline, unreachable in accel_get_stats). Only jobs handed to the pool
// allocate (the message that carries them).
import { DmaRegion } from '@storkit/native';
import { OffloadPool } from '@storkit/reactor';

import { ACCEL_EIO, ACCEL_ENOMEM, AccelError } from '../errors.js';
import type { AccelModule } from '../module.js';
import { ACCEL_OPC, ACCEL_OPC_COUNT } from '../opcodes.js';
import type { AccelTask } from '../task.js';
import type { OffloadJob, OffloadResult, SharedPiece } from './offload-task.js';
import { runOnCpu } from './software.js';

export interface AccelOffloadOptions {
  /** Pool threads (default 2: the machine's other cores take the work while the reactor sleeps). */
  threads: number;
  /** Jobs smaller than this run on the reactor (default 64 KiB). */
  minBytes: number;
  /** Jobs queued in the pool beyond those running before submits get ACCEL_ENOMEM (default 256). */
  maxQueue: number;
}

export const OFFLOAD_DEFAULTS: Readonly<AccelOffloadOptions> = {
  threads: 2,
  minBytes: 64 * 1024,
  maxQueue: 256,
};
let options: AccelOffloadOptions = { ...OFFLOAD_DEFAULTS };
let pool: OffloadPool | null = null;

interface OffloadChannel {
  inline: number;
  unreachable: number;
  offloaded: number;
}

/** Set the module's options (before the framework starts). */
export function accelOffloadSetOptions(o: Partial<AccelOffloadOptions>): void {
  if (pool !== null) throw new AccelError('EBUSY', 'the offload pool is running');
  options = accelOffloadCheckOptions(o, options);
}

/** `base` with `o` applied, or AccelError for a bad value. */
export function accelOffloadCheckOptions(
  o: Partial<AccelOffloadOptions>,
  base: AccelOffloadOptions = OFFLOAD_DEFAULTS,
): AccelOffloadOptions {
  const next = { ...base, ...o };
  if (!Number.isInteger(next.threads) || next.threads < 1 || next.threads > 64) {
    throw new AccelError('EINVAL', 'threads must be an integer in 1..64');
  }
  if (!Number.isInteger(next.minBytes) || next.minBytes < 0)
    throw new AccelError('EINVAL', 'minBytes must be >= 0');
  if (!Number.isInteger(next.maxQueue) || next.maxQueue < 1)
    throw new AccelError('EINVAL', 'maxQueue must be >= 1');
  return next;
}

/** @internal tests: back to the defaults (the pool must not be running). */
export function offloadResetForTests(): void {
  accelOffloadSetOptions({ ...OFFLOAD_DEFAULTS });
}

export function accelOffloadGetOptions(): AccelOffloadOptions {
  return { ...options };
}

/** A piece the pool can reach, or null. */
function piece(buf: Uint8Array, off: number, len: number): SharedPiece | null {
  const r = DmaRegion.of(buf);
  if (r !== undefined && !r.closed) return { handle: r.handle, off: buf.byteOffset + off, len };
  if (buf.buffer instanceof SharedArrayBuffer) return { view: buf, off, len };
  return null;
}

function job(t: AccelTask): OffloadJob | null {
  const dst: SharedPiece[] = [];
  const src: SharedPiece[] = [];
  const add = (to: SharedPiece[], buf: Uint8Array, off: number): boolean => {
    const p = piece(buf, off, t.len);
    if (p === null) return false;
    to.push(p);
    return true;
  };
  switch (t.op) {
    case ACCEL_OPC.FILL:
      if (!add(dst, t.dst, t.dstOff)) return null;
      break;
    case ACCEL_OPC.DUALCAST:
      if (!add(dst, t.dst, t.dstOff) || !add(dst, t.dst2, t.dst2Off) || !add(src, t.src, t.srcOff))
        return null;
      break;
    case ACCEL_OPC.CRC32C:
      if (t.iovs === null) {
        if (!add(src, t.src, t.srcOff)) return null;
      } else {
        const v = t.iovs;
        for (let i = 0; i < v.count; i++) {
          const p = piece(v.bufs[i], v.offs[i], v.lens[i]);
          if (p === null) return null;
          src.push(p);
        }
      }
      break;
    default:
      if (!add(dst, t.dst, t.dstOff) || !add(src, t.src, t.srcOff)) return null;
  }
  return { op: t.op, dst, src, seed: t.seed, fill: t.fill };
}

function finished(this: AccelTask, err: Error | null, r?: OffloadResult): void {
  if (err !== null || r === undefined) this.complete(ACCEL_EIO);
  else this.complete(r.status, r.result);
}

export const offloadModule: AccelModule<OffloadChannel> = {
  name: 'offload',
  priority: 0,
  supportsOpcode: (op) => op >= 0 && op < ACCEL_OPC_COUNT,
  enabled: () => true,

  async fini() {
    const p = pool;
    pool = null;
    await p?.close();
  },

  createChannel: () => ({ inline: 0, unreachable: 0, offloaded: 0 }),

  inline(mc, t) {
    if (t.len < options.minBytes) mc.inline++;
    else if (job(t) === null) mc.unreachable++;
    else return false;
    runOnCpu(t);
    return true;
  },

  submit(mc, t) {
    if (t.len < options.minBytes) {
      mc.inline++;
      runOnCpu(t);
      return 0;
    }
    const j = job(t);
    if (j === null) {
      mc.unreachable++;
      runOnCpu(t);
      return 0;
    }
    pool ??= new OffloadPool({
      filename: new URL('./offload-task.js', import.meta.url),
      threads: options.threads,
      maxQueue: options.maxQueue,
    });
    if (!pool.run(j, finished.bind(t))) return ACCEL_ENOMEM;
    mc.offloaded++;
    return 0;
  },

  stats: (mc) => ({ inline: mc.inline, unreachable: mc.unreachable, offloaded: mc.offloaded }),
};
