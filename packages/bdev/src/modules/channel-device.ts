import { getIoChannel, type IoChannel, ioDeviceRegister } from '@storkit/reactor';

const devices = new Map<string, object>();

/**
 * A module-wide io_device with an empty per-thread context, for modules whose channel carries no
 * state (malloc, null): registered once per isolate under `name`.
 */
export function moduleChannel(name: string): IoChannel<unknown> {
  let key = devices.get(name);
  if (key === undefined) {
    key = { name };
    ioDeviceRegister(key, { name, create: () => null });
    devices.set(name, key);
  }
  return getIoChannel(key);
}
