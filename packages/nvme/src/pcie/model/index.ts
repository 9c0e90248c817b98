// Start a software NVMe controller: a PCI function model registered at an address, so
// `NvmeController.connect('trtype:PCIe traddr:<address>')` opens it as it would open hardware,
// and the controller firmware (NvmeControllerModel) running in a worker of its own (or polled
// by the caller, for deterministic tests).
import { Worker } from 'node:worker_threads';

import {
  ModelPciDevice,
  PCI_CLASS_NVME,
  PciFunctionModel,
  registerPciModel,
  unregisterPciModel,
} from '@storkit/native';

import {
  MODEL_BAR0_SIZE,
  MODEL_DEVICE,
  MODEL_VENDOR,
  NvmeControllerModel,
  type NvmeModelFault,
  type NvmeModelOptions,
  type NvmeModelStats,
} from './controller-model.js';
import type { ModelRequest, ModelWorkerData } from './worker.js';

// The worker's sync words (worker.ts): hold flag and commands done.
const SYNC_HOLD = 0;
const SYNC_COMMANDS = 1;

export {
  MODEL_BAR0_SIZE,
  MODEL_DEVICE,
  MODEL_VENDOR,
  NvmeControllerModel,
  type NvmeModelFault,
  type NvmeModelNamespace,
  type NvmeModelOptions,
  type NvmeModelStats,
} from './controller-model.js';

export interface StartModelOptions extends NvmeModelOptions {
  /** The PCI address it answers at (default: a made-up one in domain ffff). */
  address?: string;
  /** Spin on its own core rather than nap when idle (the benchmark). */
  spin?: boolean;
  /** Pin the model's worker to this CPU. */
  cpu?: number;
}

/** A software NVMe controller running in a worker. */
export class NvmeModelWorker {
  readonly address: string;
  /** The driver side of the PCI function (registered: `openPciDevice(address)` finds it). */
  readonly device: ModelPciDevice;
  readonly #worker: Worker;
  readonly #sync: Int32Array;
  readonly #waiting = new Map<number, (v: unknown) => void>();
  #seq = 0;
  #stopped: Promise<void> | null = null;

  private constructor(device: ModelPciDevice, worker: Worker, sync: SharedArrayBuffer) {
    this.address = device.address;
    this.device = device;
    this.#worker = worker;
    this.#sync = new Int32Array(sync);
    worker.on('message', (m: { id: number; result: unknown }) => {
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      w?.(m.result);
    });
    worker.on('error', (e) => {
      for (const w of this.#waiting.values()) w(Promise.reject(e));
      this.#waiting.clear();
    });
  }

  /** Start the model; resolves once its registers are up (as a device's are at power-on). */
  static async start(o: StartModelOptions): Promise<NvmeModelWorker> {
    const device = ModelPciDevice.create({
      vendor: MODEL_VENDOR,
      device: MODEL_DEVICE,
      classCode: PCI_CLASS_NVME,
      bars: [MODEL_BAR0_SIZE],
      address: o.address,
    });
    const share = device.share();
    const sync = new SharedArrayBuffer(8);
    const data: ModelWorkerData = {
      share,
      options: { ...o, namespaces: o.namespaces },
      spin: o.spin ?? false,
      cpu: o.cpu ?? null,
      sync,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
    const m = new NvmeModelWorker(device, worker, sync);
    await m.#ask({ op: 'stats' });
    registerPciModel(share);
    return m;
  }

  #ask<T>(
    r: ModelRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never,
  ): Promise<T> {
    const id = ++this.#seq;
    return new Promise<T>((resolve) => {
      this.#waiting.set(id, resolve as (v: unknown) => void);
      this.#worker.postMessage({ ...r, id });
    });
  }

  /**
   * Stop (or resume) the controller's polling, at once and without a message: a benchmark holds
   * it to time submission alone, then lets it run and times completion alone.
   */
  hold(on: boolean): void {
    Atomics.store(this.#sync, SYNC_HOLD, on ? 1 : 0);
  }

  /** Commands the controller has completed so far (read without a message). */
  get commandsDone(): number {
    return Atomics.load(this.#sync, SYNC_COMMANDS);
  }

  inject(fault: NvmeModelFault): Promise<void> {
    return this.#ask({ op: 'inject', fault });
  }

  /** A copy of namespace bytes. */
  media(nsid: number, offset: number, length: number): Promise<Uint8Array> {
    return this.#ask({ op: 'media', nsid, offset, length });
  }

  fill(nsid: number, offset: number, data: Uint8Array): Promise<void> {
    return this.#ask({ op: 'fill', nsid, offset, data });
  }

  stats(): Promise<NvmeModelStats & { faults: number }> {
    return this.#ask({ op: 'stats' });
  }

  held(): Promise<number> {
    return this.#ask({ op: 'held' });
  }

  /** Surprise removal (BAR reads all-ones). */
  remove(): Promise<void> {
    return this.#ask({ op: 'remove' });
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#ask({ op: 'stop' });
      await this.#worker.terminate();
      unregisterPciModel(this.address);
      this.device.close();
    })();
    return this.#stopped;
  }
}

/**
 * A model polled by its caller, in this thread (deterministic tests): `poll()` runs it once;
 * `run()` keeps it going from setImmediate until `stop()`.
 */
export class NvmeModelInThread {
  readonly address: string;
  readonly device: ModelPciDevice;
  readonly model: NvmeControllerModel;
  readonly #fn: PciFunctionModel;
  #running = false;

  constructor(o: StartModelOptions) {
    this.device = ModelPciDevice.create({
      vendor: MODEL_VENDOR,
      device: MODEL_DEVICE,
      classCode: PCI_CLASS_NVME,
      bars: [MODEL_BAR0_SIZE],
      address: o.address,
    });
    this.address = this.device.address;
    this.#fn = new PciFunctionModel(this.device.share());
    this.model = new NvmeControllerModel(this.#fn, o);
    registerPciModel(this.device.share());
  }

  poll(): number {
    return this.model.poll();
  }

  run(): void {
    if (this.#running) return;
    this.#running = true;
    const loop = (): void => {
      if (!this.#running) return;
      for (let i = 0; i < 64; i++) this.model.poll();
      setImmediate(loop);
    };
    setImmediate(loop);
  }

  remove(): void {
    this.#fn.remove();
  }

  stop(): void {
    this.#running = false;
    unregisterPciModel(this.address);
    this.#fn.close();
    this.device.close();
  }
}
