// @storkit/ioat/testing: a device model of the I/OAT engine. No machine here has the hardware and
// QEMU has no model of it, so the model stands in: a worker that executes descriptors from DMA
// memory as the engine does. Each channel is a PCI function made with the PCI layer's
// ModelPciDevice (a PciDevice like VFIO's and uio's), so the driver cannot tell it from hardware.
import { Worker } from 'node:worker_threads';

import { ModelPciDevice } from '@storkit/native';

import { IoatError } from './errors.js';
import { CTL_HOLD, CTL_STOP, CTL_UNPLUG, CTL_WAKE } from './model/control.js';
import { type EngineOptions, STAT, STAT_SLOTS } from './model/engine.js';
import { BAR0_SIZE, IOAT_CLASS_CODE, IOAT_VENDOR_ID } from './spec.js';

export type { EngineOptions } from './model/engine.js';

/** SKX's device ID: what the model reports. */
const MODEL_DEVICE_ID = 0x2021;

export interface IoatModelOptions extends EngineOptions {
  /** Channels, each its own PCI function (default 1, at most 32). */
  channels?: number;
  /** CPU to pin the model's worker to (default: not pinned). */
  core?: number;
}

/** What one channel of the model has done. */
export interface ModelStats {
  descriptors: number;
  /** New DMACOUNT values the engine saw (stores between two looks count once). */
  dmacountChanges: number;
  halts: number;
  resets: number;
  bytes: number;
}

let models = 0;

/**
 * A running device model. `devices[i]` is channel i's PCI function (driver side): attach a
 * channel to it here, or `attachPciDevice(devices[i].share())` in another worker.
 */
export class IoatModel {
  readonly devices: ModelPciDevice[];
  readonly #stats: SharedArrayBuffer[];
  readonly #control: Int32Array;
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  #stopped = false;

  private constructor(
    devices: ModelPciDevice[],
    stats: SharedArrayBuffer[],
    control: Int32Array,
    worker: Worker,
  ) {
    this.devices = devices;
    this.#stats = stats;
    this.#control = control;
    this.#worker = worker;
    this.#exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  }

  static async start(opts: IoatModelOptions = {}): Promise<IoatModel> {
    const n = opts.channels ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 32)
      throw new IoatError('EINVAL', `channels must be 1..32, got ${n}`);
    const bus = (++models % 256).toString(16).padStart(2, '0');
    const devices: ModelPciDevice[] = [];
    const stats: SharedArrayBuffer[] = [];
    for (let i = 0; i < n; i++) {
      devices.push(
        ModelPciDevice.create({
          vendor: IOAT_VENDOR_ID,
          device: MODEL_DEVICE_ID,
          classCode: IOAT_CLASS_CODE,
          bars: [BAR0_SIZE],
          address: `ffff:${bus}:${(4 + (i >> 3)).toString(16).padStart(2, '0')}.${i & 7}`,
        }),
      );
      stats.push(new SharedArrayBuffer(STAT_SLOTS * 8));
    }
    const control = new SharedArrayBuffer((CTL_UNPLUG + n) * 4);
    const engine: EngineOptions = {
      xfercap: opts.xfercap,
      fill: opts.fill,
      version: opts.version,
      resetDelayUs: opts.resetDelayUs,
    };
    const worker = new Worker(new URL('./model/worker.js', import.meta.url), {
      workerData: { shares: devices.map((d) => d.share()), stats, control, engine, core: opts.core ?? null },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new IoatError('ENODEV', `I/OAT model worker exited (${code})`)));
      });
    } catch (e) {
      for (const d of devices) d.close();
      throw e;
    }
    return new IoatModel(devices, stats, new Int32Array(control), worker);
  }

  stats(channel = 0): ModelStats {
    const s = new Float64Array(this.#buf(channel));
    return {
      descriptors: s[STAT.DESCRIPTORS],
      dmacountChanges: s[STAT.DMACOUNT_CHANGES],
      halts: s[STAT.HALTS],
      resets: s[STAT.RESETS],
      bytes: s[STAT.BYTES],
    };
  }

  /** Pull channel `i` off the bus, as a surprise removal: it stops, its BAR reads all-ones. */
  async unplug(channel: number): Promise<void> {
    this.#buf(channel);
    Atomics.store(this.#control, CTL_UNPLUG + channel, 1);
    this.#wake();
    while (Atomics.load(this.#control, CTL_UNPLUG + channel) !== 2)
      await new Promise((r) => setTimeout(r, 1));
  }

  /**
   * Hold every engine (it looks at nothing and runs nothing, as a stalled device) or let it go
   * on: with the engines held a driver's submissions pile up in its ring, so a benchmark can time
   * submission alone.
   */
  hold(on: boolean): void {
    Atomics.store(this.#control, CTL_HOLD, on ? 1 : 0);
    this.#wake();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    Atomics.store(this.#control, CTL_STOP, 1);
    this.#wake();
    const timer = setTimeout(() => void this.#worker.terminate(), 5000);
    await this.#exited;
    clearTimeout(timer);
    for (const d of this.devices) d.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #buf(channel: number): SharedArrayBuffer {
    const s = this.#stats[channel];
    if (s === undefined) throw new IoatError('ENODEV', `no channel ${channel}`);
    return s;
  }

  #wake(): void {
    Atomics.store(this.#control, CTL_WAKE, 1);
    Atomics.notify(this.#control, CTL_WAKE);
  }
}
