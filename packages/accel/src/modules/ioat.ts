// The ioat module (SPDK's module/accel/ioat): copies and fills on I/OAT DMA channels. Enabled by
// ioat_scan_accel_module; at start it attaches the channels given to this isolate and fails the
// start if there are none (as SPDK does). A reactor's threads share its channel (they run in
// turn on one OS thread); completions reach each task's own thread through its accel channel.
//
// The engine reaches DMA regions only. A buffer elsewhere (plain JavaScript memory) is copied by
// the CPU instead, and counted (cpu_fallback in accel_get_stats), so a faster engine never fails
// an operation it cannot reach.
import { IOAT_ECANCELED, IoatChannel, type IoatDevice } from '@storkit/ioat';
import { attachPciDevice, DmaRegion, type PciDevice, type PciDeviceShare } from '@storkit/native';
import type { Thread } from '@storkit/reactor';

import { ACCEL_EIO, ACCEL_ENOMEM, AccelError } from '../errors.js';
import type { AccelModule } from '../module.js';
import { ACCEL_OPC } from '../opcodes.js';
import type { AccelTask } from '../task.js';
import { runOnCpu } from './software.js';

interface IoatModuleChannel {
  ioat: IoatChannel;
  cpuFallback: number;
}

let scanned = false;
const given: (PciDevice | PciDeviceShare)[] = [];
let channels: IoatChannel[] = [];
const attached: { close(): void }[] = [];
let next = 0;

/**
 * The I/OAT functions this isolate may use (devices it opened, or shares of devices another worker
 * opened and enabled bus mastering on). Replaces what was given before; startup only.
 */
export function accelIoatSetDevices(devices: readonly (PciDevice | PciDeviceShare)[]): void {
  if (channels.length > 0) throw new AccelError('EBUSY', 'the ioat module is running');
  given.length = 0;
  given.push(...devices);
}

/**
 * ioat_scan_accel_module: take part (the start then needs at least one channel); false: take no
 * part again (before a start).
 */
export function accelIoatScan(enable = true): void {
  if (channels.length > 0) throw new AccelError('EBUSY', 'the ioat module is running');
  scanned = enable;
}

/** @internal tests: not scanned, no devices (the module must not be running). */
export function ioatResetForTests(): void {
  accelIoatSetDevices([]);
  scanned = false;
}

/** Whether ioat_scan_accel_module was called. */
export function accelIoatScanned(): boolean {
  return scanned;
}

/**
 * Whether the engine takes the task: its buffers in open DMA regions, and a copy's ranges apart
 * (the engine does not copy as memmove does; the driver refuses overlapping ranges).
 */
function reachable(t: AccelTask): boolean {
  const dst = DmaRegion.of(t.dst);
  if (dst === undefined || dst.closed) return false;
  if (t.op !== ACCEL_OPC.COPY) return true;
  const src = DmaRegion.of(t.src);
  if (src === undefined || src.closed) return false;
  if (src !== dst) return true;
  const x = t.dst.byteOffset + t.dstOff;
  const y = t.src.byteOffset + t.srcOff;
  return x + t.len <= y || y + t.len <= x;
}

function done(t: AccelTask, status: number): void {
  t.complete(status === 0 ? 0 : status === IOAT_ECANCELED ? status : ACCEL_EIO);
}

export const ioatModule: AccelModule<IoatModuleChannel> = {
  name: 'ioat',
  priority: 10,
  supportsOpcode: (op) => op === ACCEL_OPC.COPY || op === ACCEL_OPC.FILL,
  enabled: () => scanned,

  async init() {
    for (const d of given) {
      let dev: IoatDevice;
      if ('share' in d) dev = d;
      else {
        const a = attachPciDevice(d);
        attached.push(a);
        dev = a;
      }
      channels.push(await IoatChannel.attach(dev));
    }
    if (channels.length === 0) throw new AccelError('ENODEV', 'No available ioat devices');
  },

  async fini() {
    for (const c of channels) await c.detach();
    channels = [];
    for (const a of attached) a.close();
    attached.length = 0;
    next = 0;
  },

  createChannel(thread: Thread): IoatModuleChannel {
    // Threads of one reactor share a channel; reactors get channels round robin.
    let ioat = channels.find((c) => c.owner?.host === thread.host);
    if (ioat === undefined) {
      ioat = channels[next++ % channels.length];
      ioat.claim('reactor');
    }
    return { ioat, cpuFallback: 0 };
  },

  inline(mc, t) {
    if (reachable(t)) return false;
    mc.cpuFallback++;
    runOnCpu(t);
    return true;
  },

  submit(mc, t) {
    if (!reachable(t)) {
      mc.cpuFallback++;
      runOnCpu(t);
      return 0;
    }
    const dst = DmaRegion.of(t.dst) as DmaRegion;
    const src = t.op === ACCEL_OPC.COPY ? (DmaRegion.of(t.src) as DmaRegion) : dst;
    const ok =
      t.op === ACCEL_OPC.COPY
        ? mc.ioat.buildCopyAt(
            dst,
            t.dst.byteOffset + t.dstOff,
            src,
            t.src.byteOffset + t.srcOff,
            t.len,
            done,
            t,
          )
        : mc.ioat.buildFillAt(
            dst,
            t.dst.byteOffset + t.dstOff,
            t.fill * 0x01010101,
            t.fill * 0x01010101,
            t.len,
            done,
            t,
          );
    return ok ? 0 : ACCEL_ENOMEM;
  },

  flush: (mc) => mc.ioat.flush(),
  poll: (mc) => mc.ioat.processEvents(),

  stats: (mc) => ({ cpu_fallback: mc.cpuFallback }),
};
