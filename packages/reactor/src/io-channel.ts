import { getThread, requireThread } from './current.js';
import { ReactorError } from './errors.js';
import type { Thread } from './thread.js';

/** How an io_device makes and tears down its per-thread channel context. */
export interface IoDeviceOps<C> {
  /** Unique per isolate: it is how reactors in other workers find their own instance. */
  name: string;
  /** Runs on the thread that asked for its first channel; returns the channel's context. */
  create(ch: IoChannel<C>): C;
  /** Runs on the channel's thread after its last put(). */
  destroy?(ch: IoChannel<C>): void;
}

// The registries hold devices and channels of every context type; each is only ever used with its own.
// biome-ignore lint/suspicious/noExplicitAny: see above
export type AnyDevice = IoDevice<any>;
// biome-ignore lint/suspicious/noExplicitAny: see above
export type AnyChannel = IoChannel<any>;

/** @internal */
export class IoDevice<C = unknown> {
  readonly key: object;
  readonly name: string;
  readonly ops: IoDeviceOps<C>;
  channelCount = 0;
  iterCount = 0;
  unregistering = false;
  unregisterThread: Thread | null = null;
  unregisterDone: (() => void) | null = null;
  constructor(key: object, ops: IoDeviceOps<C>) {
    this.key = key;
    this.name = ops.name;
    this.ops = ops;
  }
}

// The registry is per isolate: in a worker it holds that reactor's devices; in the test harness it
// is shared by all simulated reactors, exactly as every worker sees "its own" copy of a device.
const byKey = new Map<object, AnyDevice>();
const byName = new Map<string, AnyDevice>();

/** A thread's handle on an io_device (spdk_io_channel); ref-counted per thread. */
export class IoChannel<C = unknown> {
  readonly thread: Thread;
  /** @internal */ readonly dev: IoDevice<C>;
  /** The context create() returned. */
  ctx!: C;
  /** @internal gets minus puts not yet processed */ ref = 1;
  /** @internal */ destroyed = false;

  /** @internal */
  constructor(dev: IoDevice<C>, thread: Thread) {
    this.dev = dev;
    this.thread = thread;
  }

  get device(): object {
    return this.dev.key;
  }
  get deviceName(): string {
    return this.dev.name;
  }
  get refCount(): number {
    return this.ref;
  }

  /**
   * Release one reference (spdk_put_io_channel), on the channel's own thread. The release is
   * deferred to a message, so a get right after a put reuses the channel instead of rebuilding it.
   */
  put(): void {
    if (getThread() !== this.thread) {
      throw new ReactorError('EWRONGTHREAD', `io_channel of ${this.dev.name} must be put on its own thread`);
    }
    if (this.destroyed) throw new ReactorError('EINVAL', `io_channel of ${this.dev.name} already destroyed`);
    this.thread.sendMsg(releaseChannel, this);
  }
}

function releaseChannel(ch: AnyChannel): void {
  if (--ch.ref > 0) return;
  const dev = ch.dev;
  ch.thread.channels.delete(dev.key);
  ch.destroyed = true;
  dev.ops.destroy?.(ch);
  dev.channelCount--;
  maybeFinishUnregister(dev);
}

/** @internal */
export function maybeFinishUnregister(dev: AnyDevice): void {
  if (!dev.unregistering || dev.channelCount > 0 || dev.iterCount > 0) return;
  const t = dev.unregisterThread;
  const done = dev.unregisterDone;
  dev.unregisterThread = null;
  dev.unregisterDone = null;
  if (done !== null && t !== null && !t.exited) t.sendMsg(done);
}

/** Register an io_device (spdk_io_device_register). `device` is the key later calls pass. */
export function ioDeviceRegister<C>(device: object, ops: IoDeviceOps<C>): void {
  if (typeof device !== 'object' || device === null) {
    throw new ReactorError('EINVAL', 'an io_device key must be an object');
  }
  if (typeof ops?.create !== 'function' || typeof ops.name !== 'string' || ops.name === '') {
    throw new ReactorError('EINVAL', 'an io_device needs a name and a create callback');
  }
  if (byKey.has(device)) throw new ReactorError('EEXIST', `io_device ${ops.name} is already registered`);
  if (byName.has(ops.name)) throw new ReactorError('EEXIST', `an io_device named ${ops.name} exists`);
  const dev = new IoDevice(device, ops);
  byKey.set(device, dev);
  byName.set(ops.name, dev);
}

/**
 * Unregister an io_device (spdk_io_device_unregister). New getIoChannel calls fail at once;
 * `done` runs on the calling thread once every channel is destroyed and no forEachChannel walk
 * is in progress (never inside this call).
 */
export function ioDeviceUnregister(device: object, done?: () => void): void {
  const dev = byKey.get(device);
  if (dev === undefined) throw new ReactorError('ENODEV', 'io_device is not registered');
  const t = done === undefined ? getThread() : requireThread('ioDeviceUnregister with a callback');
  byKey.delete(device);
  byName.delete(dev.name);
  dev.unregistering = true;
  dev.unregisterThread = t;
  dev.unregisterDone = done ?? null;
  maybeFinishUnregister(dev);
}

/** The io_device registered in this isolate under `name`, if any. */
export function ioDeviceByName(name: string): object | undefined {
  return byName.get(name)?.key;
}

/** @internal */
export function lookupDevice(device: object): AnyDevice {
  const dev = byKey.get(device);
  if (dev === undefined) throw new ReactorError('ENODEV', 'io_device is not registered');
  return dev;
}

/** Names of the io_devices registered in this isolate. */
export function ioDeviceNames(): string[] {
  return [...byName.keys()];
}

/**
 * The current thread's channel to `device` (spdk_get_io_channel): created on first use by the
 * device's create callback, then shared and ref-counted. Throws ENODEV for an unknown or
 * unregistering device and ENOTHREAD outside a thread.
 */
export function getIoChannel<C = unknown>(device: object): IoChannel<C> {
  const t = requireThread('getIoChannel');
  const dev = lookupDevice(device) as IoDevice<C>;
  const have = t.channels.get(device) as IoChannel<C> | undefined;
  if (have !== undefined) {
    have.ref++;
    return have;
  }
  if (t.exiting) throw new ReactorError('ESHUTDOWN', `thread ${t.name} is exiting`);
  const ch = new IoChannel(dev, t);
  ch.ctx = dev.ops.create(ch);
  t.channels.set(device, ch);
  dev.channelCount++;
  return ch;
}
